//! The validation report of `recode data stats`: what is in a ReCode file and what is wrong with it.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use recode_reward::Mode;
use serde::Serialize;

use crate::example::{dependency_key, UpdateExample, FIELDS};
use crate::load::Dataset;

/// Percentiles of token counts (nearest-rank).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthPercentiles {
    /// Median.
    pub p50: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 95th percentile.
    pub p95: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Longest.
    pub max: usize,
}

impl LengthPercentiles {
    /// Nearest-rank percentiles of `values` (`None` when empty).
    pub fn of(mut values: Vec<usize>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: f64| {
            let r = (p / 100.0 * values.len() as f64).ceil() as usize;
            values[r.clamp(1, values.len()) - 1]
        };
        Some(Self {
            p50: rank(50.0),
            p90: rank(90.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: *values.last().expect("non-empty"),
        })
    }
}

/// Token-length percentiles of rendered prompts and of targets (`new_code`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLengths {
    /// Tokenizer file used.
    pub tokenizer: String,
    /// Whole rendered training prompt (ChatML unless another template was given).
    pub prompt: Option<LengthPercentiles>,
    /// Reference new code.
    pub target: Option<LengthPercentiles>,
}

/// A row that failed to load (with `--keep-going`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadLine {
    /// The error, naming file, line and field.
    pub error: String,
}

/// Everything `recode data stats` reports; serialised as one JSON object with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// Files read.
    pub files: Vec<String>,
    /// Rows loaded.
    pub rows: usize,
    /// Rows that could not be loaded (only with `--keep-going`).
    pub bad_lines: Vec<BadLine>,
    /// Rows per library, spellings merged under the most frequent one (`seaborn` → `Seaborn`).
    pub per_dependency: BTreeMap<String, usize>,
    /// For libraries written several ways: each spelling and its count.
    pub dependency_spellings: BTreeMap<String, BTreeMap<String, usize>>,
    /// Rows identical to an earlier row (all six fields).
    pub exact_duplicates: usize,
    /// Rows whose old and new code are equal after the reward's normalisation.
    pub identical_old_new: usize,
    /// Mean ES* of answering every row with its old code unchanged (rows with both codes):
    /// the score a policy that only copies its input reaches, so a trained model's ES* can be
    /// read against it.
    pub copy_es_star: Option<f64>,
    /// Null values per column.
    pub null_fields: BTreeMap<String, usize>,
    /// Empty or whitespace-only values per column.
    pub empty_fields: BTreeMap<String, usize>,
    /// `new_version` values without the `==` prefix.
    pub missing_version_prefix: usize,
    /// `old_code` values that do not parse as Python 3.
    pub old_code_syntax_errors: usize,
    /// `new_code` values that do not parse as Python 3.
    pub new_code_syntax_errors: usize,
    /// Line numbers behind each problem count, for follow-up (`exact_duplicates`, …).
    pub problem_lines: BTreeMap<String, Vec<usize>>,
    /// Token-length percentiles, when a tokenizer was given.
    pub token_lengths: Option<TokenLengths>,
}

/// Maps each spelling of a library to its canonical display name: the most frequent spelling
/// among rows with the same lower-cased name (ties: the lexicographically smallest).
pub fn canonical_dependency_names<'a>(
    examples: impl IntoIterator<Item = &'a UpdateExample>,
) -> HashMap<String, String> {
    let mut spellings: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for ex in examples {
        if let Some(dep) = ex.dependency.as_deref() {
            *spellings
                .entry(dependency_key(dep))
                .or_default()
                .entry(dep.trim().to_string())
                .or_default() += 1;
        }
    }
    let mut names = HashMap::new();
    for counts in spellings.values() {
        let best = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(s, _)| s.clone())
            .expect("at least one spelling");
        for spelling in counts.keys() {
            names.insert(spelling.clone(), best.clone());
        }
    }
    names
}

/// Builds the report; `mode` selects the normalisation used to compare old and new code.
pub fn compute(ds: &Dataset, mode: Mode) -> StatsReport {
    let rows = &ds.rows;
    let mut problem_lines: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut flag =
        |key: &str, line: usize| problem_lines.entry(key.to_string()).or_default().push(line);

    // Parsing dominates: run the per-row checks in parallel.
    let checks: Vec<(bool, bool, bool, Option<f64>)> = rows
        .par_iter()
        .map(|r| {
            let ex = &r.example;
            let old_bad = ex
                .old_code
                .as_deref()
                .is_some_and(|c| !recode_reward::is_valid_python(c));
            let new_bad = ex
                .new_code
                .as_deref()
                .is_some_and(|c| !recode_reward::is_valid_python(c));
            let (identical, copy_es_star) = match (ex.old_code.as_deref(), ex.new_code.as_deref()) {
                (Some(o), Some(n)) => (
                    recode_reward::normalize_code(o, mode)
                        == recode_reward::normalize_code(n, mode),
                    Some(copy_answer_es_star(o, n, mode)),
                ),
                _ => (false, None),
            };
            (old_bad, new_bad, identical, copy_es_star)
        })
        .collect();

    let mut seen = std::collections::HashSet::new();
    let (mut exact_duplicates, mut identical_old_new, mut missing_version_prefix) = (0, 0, 0);
    let (mut old_code_syntax_errors, mut new_code_syntax_errors) = (0, 0);
    let mut null_fields: BTreeMap<String, usize> =
        FIELDS.iter().map(|f| (f.to_string(), 0)).collect();
    let mut empty_fields = null_fields.clone();
    let copies: Vec<f64> = checks.iter().filter_map(|c| c.3).collect();
    let copy_es_star =
        (!copies.is_empty()).then(|| copies.iter().sum::<f64>() / copies.len() as f64);
    for (r, &(old_bad, new_bad, identical, _)) in rows.iter().zip(&checks) {
        let ex = &r.example;
        if !seen.insert(ex) {
            exact_duplicates += 1;
            flag("exact_duplicates", r.line);
        }
        if identical {
            identical_old_new += 1;
            flag("identical_old_new", r.line);
        }
        if old_bad {
            old_code_syntax_errors += 1;
            flag("old_code_syntax_errors", r.line);
        }
        if new_bad {
            new_code_syntax_errors += 1;
            flag("new_code_syntax_errors", r.line);
        }
        if ex
            .new_version
            .as_deref()
            .is_some_and(|v| !v.trim_start().starts_with("=="))
        {
            missing_version_prefix += 1;
            flag("missing_version_prefix", r.line);
        }
        for name in FIELDS {
            match ex.field(name) {
                None => {
                    *null_fields.get_mut(name).expect("field") += 1;
                    flag(&format!("null_{name}"), r.line);
                }
                Some(v) if v.trim().is_empty() => *empty_fields.get_mut(name).expect("field") += 1,
                Some(_) => {}
            }
        }
    }

    let names = canonical_dependency_names(ds.examples());
    let mut per_dependency = BTreeMap::new();
    let mut spellings: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for ex in ds.examples() {
        let Some(dep) = ex.dependency.as_deref() else {
            continue;
        };
        let canon = names[dep.trim()].clone();
        *per_dependency.entry(canon.clone()).or_insert(0) += 1;
        *spellings
            .entry(canon)
            .or_default()
            .entry(dep.trim().to_string())
            .or_insert(0) += 1;
    }
    spellings.retain(|_, s| s.len() > 1);

    StatsReport {
        files: ds.sources.iter().map(|p| p.display().to_string()).collect(),
        rows: rows.len(),
        bad_lines: ds
            .errors
            .iter()
            .map(|e| BadLine {
                error: e.to_string(),
            })
            .collect(),
        per_dependency,
        dependency_spellings: spellings,
        exact_duplicates,
        identical_old_new,
        copy_es_star,
        null_fields,
        empty_fields,
        missing_version_prefix,
        old_code_syntax_errors,
        new_code_syntax_errors,
        problem_lines,
        token_lengths: None,
    }
}

/// ES* of a completion whose answer is `old_code` verbatim, scored against `new_code` exactly
/// as the reward scores a model's answer (an unparsable old code scores −2, as it would).
pub fn copy_answer_es_star(old_code: &str, new_code: &str, mode: Mode) -> f64 {
    let completion = format!(" </think>\n<answer>\n```python\n{old_code}\n```\n</answer>");
    recode_reward::score(&completion, new_code, mode).es_star
}

/// Token-length percentiles of rendered prompts and targets with a `tokenizer.json`.
pub fn token_lengths(
    ds: &Dataset,
    tokenizer_path: &std::path::Path,
    template: &crate::template::ChatTemplate,
) -> crate::error::Result<TokenLengths> {
    let tok = tokenizers::Tokenizer::from_file(tokenizer_path).map_err(|source| {
        crate::error::DataError::Tokenizer {
            path: tokenizer_path.to_path_buf(),
            source,
        }
    })?;
    let count = |text: &str| tok.encode(text, false).map(|e| e.len()).unwrap_or(0);
    let mut prompts = Vec::with_capacity(ds.rows.len());
    for ex in ds.examples() {
        prompts.push(crate::prompt::render_training_prompt(ex, template)?);
    }
    let prompt = prompts.par_iter().map(|p| count(p)).collect();
    let target = ds
        .rows
        .par_iter()
        .filter_map(|r| r.example.new_code.as_deref().map(count))
        .collect();
    Ok(TokenLengths {
        tokenizer: tokenizer_path.display().to_string(),
        prompt: LengthPercentiles::of(prompt),
        target: LengthPercentiles::of(target),
    })
}
