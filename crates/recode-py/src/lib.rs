//! Python bindings of [`recode_reward`], built with maturin into the `recode` wheel
//! (native part `recode._native`, re-exported by `recode/__init__.py`; `recode.trl` holds
//! TRL-style reward functions in pure Python on top of these).
//!
//! Batch functions release the GIL and score on rayon threads.
//!
//! verl and the assistant prefix: `recode data export --format verl` stores the open assistant
//! turn of ReCode's prompt (`"Let me solve this step by step.\n<think>"`) in
//! `extra_info.assistant_prefix`, because verl cannot continue an assistant message. The
//! reward is defined on the text after that prefix, so `compute_score` (and
//! `compute_score_batch`, per row) strips `extra_info["assistant_prefix"]` from the start of
//! `solution_str` when it is there: a response with the prefix (the model wrote it, or the
//! engine glued it back) and one without it score the same. Without `extra_info`, or when the
//! response does not start with the prefix, `solution_str` is scored as given.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use recode_reward::{Mode, RewardBreakdown, RewardKind};

fn parse_mode(mode: &str) -> PyResult<Mode> {
    mode.parse()
        .map_err(|e: recode_reward::RewardError| PyValueError::new_err(e.to_string()))
}

fn parse_kinds(reward: &str) -> PyResult<Vec<RewardKind>> {
    RewardKind::parse_list(reward).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Converts a breakdown into a dict with every component and `score` (the selected total).
fn to_dict<'py>(
    py: Python<'py>,
    r: &RewardBreakdown,
    kinds: &[RewardKind],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("score", r.total_of(kinds))?;
    d.set_item("format", r.format)?;
    d.set_item("em_star", r.em_star)?;
    d.set_item("es_star", r.es_star)?;
    d.set_item("similarity", r.similarity)?;
    d.set_item("has_code_block", r.has_code_block)?;
    d.set_item("syntax_ok", r.syntax_ok)?;
    d.set_item("exact_match", r.exact_match)?;
    Ok(d)
}

/// Reads the reward mode from verl's `extra_info` (`{"reward_mode": "fixed"}`) or the keyword.
fn mode_from(extra_info: Option<&Bound<'_, PyAny>>, mode: &str) -> PyResult<Mode> {
    if let Some(info) = extra_info {
        if let Ok(d) = info.cast::<PyDict>() {
            if let Some(m) = d.get_item("reward_mode")? {
                return parse_mode(&m.extract::<String>()?);
            }
        }
    }
    parse_mode(mode)
}

/// `extra_info["assistant_prefix"]` when `extra_info` is a mapping holding a string there.
fn prefix_from(extra_info: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(info) = extra_info else {
        return Ok(None);
    };
    if info.is_none() {
        return Ok(None);
    }
    let value = if let Ok(d) = info.cast::<PyDict>() {
        d.get_item("assistant_prefix")?
    } else if info.hasattr("get")? {
        Some(info.call_method1("get", ("assistant_prefix",))?)
    } else {
        None
    };
    Ok(value.and_then(|v| v.extract::<String>().ok()))
}

/// `solution` without a leading `prefix` (unchanged when it does not start with it).
fn strip_prefix<'a>(solution: &'a str, prefix: Option<&str>) -> &'a str {
    match prefix {
        Some(p) if !p.is_empty() => solution.strip_prefix(p).unwrap_or(solution),
        _ => solution,
    }
}

/// verl's reward signature: returns `{"score": format + es_star, "format", "es_star", "em_star", ...}`.
///
/// A leading `extra_info["assistant_prefix"]` is stripped from `solution_str` first (see the
/// crate docs), so responses with and without the prefix score the same.
#[pyfunction]
#[pyo3(signature = (data_source, solution_str, ground_truth, extra_info=None, *, mode="paper", reward="format,es_star"))]
fn compute_score<'py>(
    py: Python<'py>,
    data_source: &Bound<'py, PyAny>,
    solution_str: &str,
    ground_truth: &str,
    extra_info: Option<&Bound<'py, PyAny>>,
    mode: &str,
    reward: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let _ = data_source;
    let mode = mode_from(extra_info, mode)?;
    let kinds = parse_kinds(reward)?;
    let prefix = prefix_from(extra_info)?;
    let solution = strip_prefix(solution_str, prefix.as_deref());
    let r = py.detach(|| recode_reward::score(solution, ground_truth, mode));
    to_dict(py, &r, &kinds)
}

/// verl's batch reward signature: lists in, list of dicts out (GIL released, parallel).
/// Each row's `extra_infos[i]["assistant_prefix"]` is stripped as in `compute_score`.
#[pyfunction]
#[pyo3(signature = (data_sources, solution_strs, ground_truths, extra_infos=None, *, mode="paper", reward="format,es_star"))]
fn compute_score_batch<'py>(
    py: Python<'py>,
    data_sources: &Bound<'py, PyAny>,
    mut solution_strs: Vec<String>,
    ground_truths: Vec<String>,
    extra_infos: Option<&Bound<'py, PyAny>>,
    mode: &str,
    reward: &str,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let _ = data_sources;
    if let Some(infos) = extra_infos.filter(|i| !i.is_none()) {
        for (i, info) in infos.try_iter()?.enumerate() {
            let info = info?;
            let Some(s) = solution_strs.get_mut(i) else {
                break;
            };
            if let Some(p) = prefix_from(Some(&info))? {
                if !p.is_empty() && s.starts_with(&p) {
                    s.replace_range(..p.len(), "");
                }
            }
        }
    }
    score_batch(py, solution_strs, ground_truths, mode, reward, None)
}

/// Scores one completion: a dict of all components (`score` is the selected total).
#[pyfunction]
#[pyo3(signature = (completion, target, mode="paper", reward="format,es_star"))]
fn score<'py>(
    py: Python<'py>,
    completion: &str,
    target: &str,
    mode: &str,
    reward: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let mode = parse_mode(mode)?;
    let kinds = parse_kinds(reward)?;
    let r = py.detach(|| recode_reward::score(completion, target, mode));
    to_dict(py, &r, &kinds)
}

/// Scores pairs in parallel with the GIL released; `threads=None` uses all cores.
#[pyfunction]
#[pyo3(signature = (completions, targets, mode="paper", reward="format,es_star", threads=None))]
fn score_batch<'py>(
    py: Python<'py>,
    completions: Vec<String>,
    targets: Vec<String>,
    mode: &str,
    reward: &str,
    threads: Option<usize>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let mode = parse_mode(mode)?;
    let kinds = parse_kinds(reward)?;
    let scored = py
        .detach(|| recode_reward::score_pairs_with_threads(&completions, &targets, mode, threads))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    scored.iter().map(|r| to_dict(py, r, &kinds)).collect()
}

/// One named component for every pair, as floats (what TRL reward functions return).
#[pyfunction]
#[pyo3(signature = (completions, targets, reward, mode="paper"))]
fn reward_values(
    py: Python<'_>,
    completions: Vec<String>,
    targets: Vec<String>,
    reward: &str,
    mode: &str,
) -> PyResult<Vec<f64>> {
    let mode = parse_mode(mode)?;
    let kinds = parse_kinds(reward)?;
    let scored = py
        .detach(|| recode_reward::score_pairs(&completions, &targets, mode))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(scored.iter().map(|r| r.total_of(&kinds)).collect())
}

/// Format reward only (+1/−1) for each completion; needs no target.
#[pyfunction]
#[pyo3(signature = (completions, mode="paper"))]
fn format_rewards(completions: Vec<String>, mode: &str) -> PyResult<Vec<f64>> {
    let mode = parse_mode(mode)?;
    Ok(completions
        .iter()
        .map(|c| recode_reward::format_reward(c, mode))
        .collect())
}

/// The normalised form of `code` used for EM*/ES*.
#[pyfunction]
#[pyo3(signature = (code, mode="paper"))]
fn normalize_code(code: &str, mode: &str) -> PyResult<String> {
    Ok(recode_reward::normalize_code(code, parse_mode(mode)?))
}

/// The code block the reward would score, or None.
#[pyfunction]
#[pyo3(signature = (completion, mode="paper"))]
fn extract_code_block(completion: &str, mode: &str) -> PyResult<Option<String>> {
    Ok(recode_reward::extract_code_block(completion, parse_mode(mode)?).map(str::to_string))
}

/// True when `code` parses as Python 3 (newest grammar).
#[pyfunction]
fn is_valid_python(code: &str) -> bool {
    recode_reward::is_valid_python(code)
}

/// Levenshtein distance over code points.
#[pyfunction]
fn levenshtein(a: &str, b: &str) -> usize {
    recode_reward::levenshtein(a, b)
}

/// The native module `recode._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compute_score, m)?)?;
    m.add_function(wrap_pyfunction!(compute_score_batch, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(score_batch, m)?)?;
    m.add_function(wrap_pyfunction!(reward_values, m)?)?;
    m.add_function(wrap_pyfunction!(format_rewards, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_code, m)?)?;
    m.add_function(wrap_pyfunction!(extract_code_block, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_python, m)?)?;
    m.add_function(wrap_pyfunction!(levenshtein, m)?)?;
    Ok(())
}
