//! `recode data mine`: both versions installed on one interpreter, a snapshot of each, the diff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use recode_venv::EnvManager;
use serde::{Deserialize, Serialize};

use crate::changelog::{attach, fetch_sdist, file_section, read_changelogs};
use crate::diff::{diff, ApiChange, DiffContext, FilterCounts};
use crate::envs::pair_envs;
use crate::snapshot::take_snapshot;
use crate::Result;

/// What to mine.
#[derive(Debug, Clone)]
pub struct MineOptions {
    /// Distribution (PyPI name).
    pub dist: String,
    /// Old version.
    pub old: String,
    /// New version.
    pub new: String,
    /// Only these modules (default: every public module of the distribution).
    pub modules: Vec<String>,
    /// Interpreter request (`3.11`); default: the newest on which both versions work.
    pub python: Option<String>,
    /// Limit per snapshot.
    pub snapshot_timeout: Duration,
    /// Read the new version's sdist change log and attach the lines naming each symbol.
    pub sdist: bool,
}

/// Figures of one mining run (`--report`, console table).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MineReport {
    /// Distribution.
    pub dist: String,
    /// Old version.
    pub old_version: String,
    /// New version.
    pub new_version: String,
    /// Interpreter used for both.
    pub python: String,
    /// Public symbols (canonical ids) in the old and the new version.
    pub symbols_old: usize,
    /// See `symbols_old`.
    pub symbols_new: usize,
    /// Modules that failed to import (`old:mod` / `new:mod` → error line); not fatal.
    pub import_errors: BTreeMap<String, String>,
    /// Changes after dedupe and filters, by kind.
    pub changes_by_kind: BTreeMap<String, usize>,
    /// Total changes.
    pub changes: usize,
    /// Dropped by each filter.
    pub filtered: FilterCounts,
    /// Share of changes with warning or changelog evidence.
    pub with_evidence: f64,
    /// Seconds: environments, each snapshot, total.
    pub seconds_envs: f64,
    /// Seconds of the old snapshot.
    pub seconds_snapshot_old: f64,
    /// Seconds of the new snapshot.
    pub seconds_snapshot_new: f64,
    /// Seconds overall.
    pub seconds_total: f64,
    /// Interpreters tried before the one used.
    pub pythons_tried: Vec<String>,
    /// Change-log files read from the sdist (`--sdist`) and the lines of their cut sections.
    pub changelog_files: Vec<String>,
    /// Lines in the cut sections.
    pub changelog_lines: usize,
    /// Why no change log was read (not fatal).
    pub changelog_error: Option<String>,
}

/// Mines the API changes of `opts.dist` between its two versions.
pub fn mine(mgr: &EnvManager, opts: &MineOptions) -> Result<(Vec<ApiChange>, MineReport)> {
    let start = Instant::now();
    let envs = pair_envs(
        mgr,
        &opts.dist,
        &opts.old,
        &opts.new,
        opts.python.as_deref(),
    )?;
    let seconds_envs = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let old = take_snapshot(
        &envs.old.python(),
        &opts.dist,
        &opts.old,
        &opts.modules,
        opts.snapshot_timeout,
    )?;
    let seconds_snapshot_old = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let new = take_snapshot(
        &envs.new.python(),
        &opts.dist,
        &opts.new,
        &opts.modules,
        opts.snapshot_timeout,
    )?;
    let seconds_snapshot_new = t.elapsed().as_secs_f64();
    let ctx = DiffContext {
        dist: opts.dist.clone(),
        old_version: opts.old.clone(),
        new_version: opts.new.clone(),
        python: envs.python.version.clone(),
    };
    // Asked-for modules that import in neither version: a typo, not "no changes".
    for m in &opts.modules {
        let imported = |s: &crate::snapshot::Snapshot| matches!(s.modules.get(m), Some(None));
        if !imported(&old) && !imported(&new) {
            let why = old
                .modules
                .get(m)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "not found".into());
            return Err(crate::CurateError::Snapshot {
                dist: opts.dist.clone(),
                version: format!("{} and {}", opts.old, opts.new),
                detail: format!(
                    "--module {m} imports in neither version ({why}); top-level modules: {}",
                    new.top_level.join(", ")
                ),
            });
        }
    }
    let (mut changes, filtered) = diff(&old, &new, &ctx);
    let mut changelog = (Vec::new(), 0, None);
    if opts.sdist {
        changelog = attach_changelog(mgr, &envs.new.python(), opts, &mut changes);
    }
    let mut report = MineReport {
        dist: opts.dist.clone(),
        old_version: opts.old.clone(),
        new_version: opts.new.clone(),
        python: envs.python.version.clone(),
        symbols_old: old.symbols.len(),
        symbols_new: new.symbols.len(),
        changes: changes.len(),
        filtered,
        seconds_envs,
        seconds_snapshot_old,
        seconds_snapshot_new,
        pythons_tried: envs.tried.clone(),
        changelog_files: changelog.0,
        changelog_lines: changelog.1,
        changelog_error: changelog.2,
        ..MineReport::default()
    };
    for (tag, snap) in [("old", &old), ("new", &new)] {
        for (m, e) in &snap.modules {
            if let Some(e) = e {
                report.import_errors.insert(format!("{tag}:{m}"), e.clone());
            }
        }
    }
    for c in &changes {
        *report
            .changes_by_kind
            .entry(c.kind.as_str().to_string())
            .or_default() += 1;
    }
    let evidenced = changes
        .iter()
        .filter(|c| !c.evidence.warnings.is_empty() || !c.evidence.changelog.is_empty())
        .count();
    report.with_evidence = evidenced as f64 / changes.len().max(1) as f64;
    report.seconds_total = start.elapsed().as_secs_f64();
    Ok((changes, report))
}

/// Reads the new version's change log and attaches evidence; returns (files, section lines,
/// error). Failures are recorded, never fatal.
fn attach_changelog(
    mgr: &EnvManager,
    python: &std::path::Path,
    opts: &MineOptions,
    changes: &mut [ApiChange],
) -> (Vec<String>, usize, Option<String>) {
    let dest = mgr
        .root()
        .join("sdists")
        .join(format!("{}-{}", opts.dist, opts.new));
    let files = fetch_sdist(python, &opts.dist, &opts.new, &dest)
        .and_then(|sdist| read_changelogs(python, &sdist));
    let files = match files {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("no change log: {e}");
            return (Vec::new(), 0, Some(e));
        }
    };
    let mut lines = Vec::new();
    let mut used = Vec::new();
    for (name, text) in &files {
        if let Some(s) = file_section(name, text, &opts.old, &opts.new) {
            used.push(name.clone());
            lines.extend(s);
        }
    }
    attach(changes, &lines);
    let error = used.is_empty().then(|| {
        format!(
            "no heading for {} in {} change-log file(s): {}",
            opts.new,
            files.len(),
            files
                .iter()
                .map(|f| f.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    (used, lines.len(), error)
}
