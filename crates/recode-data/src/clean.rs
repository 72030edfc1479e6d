//! `recode data clean`: drop rows that cannot train a model and canonicalise names and versions.
//!
//! Rules run in this order and a row is dropped for the first one that applies:
//! 1. a required field (`dependency`, `new_version`, `update_info`, `old_code`, `new_code`) is null or blank;
//! 2. the row repeats an earlier kept row exactly (compared after canonicalisation);
//! 3. old and new code are equal after the reward's normalisation (nothing to learn);
//! 4. `new_code` does not parse as Python 3 (the reward would score the reference as a syntax error).
//!
//! Canonicalisation writes each library under its most frequent spelling and every version
//! as `==X.Y.Z`, the form the published prompt code expects.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use recode_reward::Mode;
use serde::Serialize;

use crate::example::{canonical_version, UpdateExample};
use crate::load::Row;
use crate::stats::canonical_dependency_names;

/// Fields a row needs to become a training prompt and reward target.
pub const REQUIRED_FIELDS: [&str; 5] = [
    "dependency",
    "new_version",
    "update_info",
    "old_code",
    "new_code",
];

/// Which rules run; every one can be switched off.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    /// Drop rows with a null or blank required field.
    pub drop_null_required: bool,
    /// Drop exact repeats.
    pub drop_duplicates: bool,
    /// Drop rows whose old and new code normalise to the same text.
    pub drop_identical: bool,
    /// Drop rows whose `new_code` is not valid Python 3.
    pub drop_unparsable_target: bool,
    /// Write each library under one spelling.
    pub canonicalise_names: bool,
    /// Write every version as `==X.Y.Z`.
    pub canonicalise_versions: bool,
    /// Normalisation used by the identical-code rule.
    pub mode: Mode,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            drop_null_required: true,
            drop_duplicates: true,
            drop_identical: true,
            drop_unparsable_target: true,
            canonicalise_names: true,
            canonicalise_versions: true,
            mode: Mode::Paper,
        }
    }
}

/// Why a row was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Rule 1.
    NullRequiredField,
    /// Rule 2.
    ExactDuplicate,
    /// Rule 3.
    IdenticalOldNew,
    /// Rule 4.
    UnparsableTarget,
}

/// A dropped row: where it was and why.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    /// Line in the input.
    pub line: usize,
    /// The rule that dropped it.
    pub reason: DropReason,
    /// The field concerned, for rule 1.
    pub field: Option<&'static str>,
}

/// What cleaning did.
#[derive(Debug, Clone, Serialize)]
pub struct CleanReport {
    /// Rows read.
    pub input_rows: usize,
    /// Rows written.
    pub output_rows: usize,
    /// Count per reason.
    pub dropped: BTreeMap<DropReason, usize>,
    /// Kept rows whose library name was rewritten.
    pub renamed_dependencies: usize,
    /// Kept rows whose version was rewritten.
    pub canonicalised_versions: usize,
    /// Every dropped row.
    pub dropped_rows: Vec<Dropped>,
}

/// Cleans `rows`, returning the kept examples (in input order) and the report.
pub fn clean(rows: &[Row], opts: &CleanOptions) -> (Vec<UpdateExample>, CleanReport) {
    let names = canonical_dependency_names(rows.iter().map(|r| &r.example));
    let mut renamed_dependencies = 0;
    let mut canonicalised_versions = 0;
    let canon: Vec<(UpdateExample, bool, bool)> = rows
        .iter()
        .map(|r| {
            let mut ex = r.example.clone();
            let mut renamed = false;
            let mut reversioned = false;
            if opts.canonicalise_names {
                if let Some(dep) = ex.dependency.as_mut() {
                    let want = &names[dep.trim()];
                    if dep != want {
                        *dep = want.clone();
                        renamed = true;
                    }
                }
            }
            if opts.canonicalise_versions {
                if let Some(v) = ex.new_version.as_mut() {
                    let want = format!("=={}", canonical_version(v));
                    if *v != want {
                        *v = want;
                        reversioned = true;
                    }
                }
            }
            (ex, renamed, reversioned)
        })
        .collect();

    // The parser-backed rules are the slow part: evaluate them in parallel up front.
    let slow: Vec<(bool, bool)> = canon
        .par_iter()
        .map(|(ex, _, _)| {
            let identical = opts.drop_identical
                && match (ex.old_code.as_deref(), ex.new_code.as_deref()) {
                    (Some(o), Some(n)) => {
                        recode_reward::normalize_code(o, opts.mode)
                            == recode_reward::normalize_code(n, opts.mode)
                    }
                    _ => false,
                };
            let unparsable = opts.drop_unparsable_target
                && ex
                    .new_code
                    .as_deref()
                    .is_some_and(|c| !recode_reward::is_valid_python(c));
            (identical, unparsable)
        })
        .collect();

    let mut kept = Vec::new();
    let mut dropped_rows = Vec::new();
    let mut seen = HashSet::new();
    for ((row, (ex, renamed, reversioned)), &(identical, unparsable)) in
        rows.iter().zip(&canon).zip(&slow)
    {
        let null_field = REQUIRED_FIELDS
            .iter()
            .find(|f| ex.field(f).is_none_or(|v| v.trim().is_empty()));
        let verdict = if let (true, Some(f)) = (opts.drop_null_required, null_field) {
            Some((DropReason::NullRequiredField, Some(*f)))
        } else if opts.drop_duplicates && seen.contains(ex) {
            Some((DropReason::ExactDuplicate, None))
        } else if identical {
            Some((DropReason::IdenticalOldNew, None))
        } else if unparsable {
            Some((DropReason::UnparsableTarget, None))
        } else {
            None
        };
        match verdict {
            Some((reason, field)) => dropped_rows.push(Dropped {
                line: row.line,
                reason,
                field,
            }),
            None => {
                seen.insert(ex);
                renamed_dependencies += usize::from(*renamed);
                canonicalised_versions += usize::from(*reversioned);
                kept.push(ex.clone());
            }
        }
    }
    let mut dropped = BTreeMap::new();
    for d in &dropped_rows {
        *dropped.entry(d.reason).or_insert(0) += 1;
    }
    let report = CleanReport {
        input_rows: rows.len(),
        output_rows: kept.len(),
        dropped,
        renamed_dependencies,
        canonicalised_versions,
        dropped_rows,
    };
    (kept, report)
}
