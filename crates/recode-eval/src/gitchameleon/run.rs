//! `recode eval run --bench gitchameleon`: prompts → completions (cached in
//! `generations.jsonl`, shared with the other benchmarks' runs) → the harness's extraction →
//! hidden and visible runs in the problem's environment → `results.jsonl` and `summary.json`.
//!
//! `summary.json` is a [`Summary`] (what `recode report eval/compare` read: pass@1, pass@5, per
//! package = per library, per update type = `type_of_change`) plus GitChameleon's own keys:
//! `pass_at_k` (every k ≤ n), `visible_pass@1`, `per_version`, `env_incomplete`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::check::Scorer;
use super::data::{DataError, Problem};
use super::exec::RunOutcome;
use super::prompt::{extract_code, messages, CodeSource};
use crate::generate::{GenParams, Generator};
use crate::passk::pass_at_k;
use crate::run::{
    generate_missing, load_generations, missing_generations, GenRecord, GroupScores, RunError,
    Summary, Task,
};

/// Errors of a GitChameleon run.
#[derive(Debug, thiserror::Error)]
pub enum GcRunError {
    /// Generation, the generation cache or writing the outputs.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Reading a problem's files (its hidden test).
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The tasks (prompts) of `problems`; ids are the `example_id` strings.
pub fn tasks(problems: &[&Problem], with_docs: bool) -> Vec<Task> {
    problems
        .iter()
        .map(|p| {
            Task::new(
                p.id.to_string(),
                p.library.clone(),
                p.type_of_change.clone(),
                messages(p, with_docs),
            )
        })
        .collect()
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleResult {
    /// Problem id (`example_id`).
    pub id: String,
    /// Sample index.
    pub sample: usize,
    /// The library.
    pub library: String,
    /// Its pinned version.
    pub version: String,
    /// The model's text.
    pub completion: String,
    /// The code run (the harness's extraction).
    pub code: String,
    /// Where the code came from.
    pub code_source: CodeSource,
    /// Hidden run passed (the score).
    pub passed: bool,
    /// Error class of the hidden run.
    pub error_class: String,
    /// The hidden run.
    pub hidden: RunOutcome,
    /// The visible run (diagnostic).
    pub visible: Option<RunOutcome>,
    /// Execution seconds (hidden + visible).
    pub seconds: f64,
    /// Generation seconds attributed to the sample.
    pub gen_secs: f64,
}

/// `summary.json`: the common [`Summary`] and GitChameleon's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcSummary {
    /// What every benchmark's summary holds.
    #[serde(flatten)]
    pub summary: Summary,
    /// pass@k ×100 for every k ≤ n (unbiased estimator, mean over problems).
    pub pass_at_k: BTreeMap<String, f64>,
    /// pass@1 ×100 of the visible runs (exit status 0).
    #[serde(rename = "visible_pass@1")]
    pub visible_pass_at_1: f64,
    /// Scores per `library==version`.
    pub per_version: BTreeMap<String, GroupScores>,
    /// Problems whose runs could not happen here (environment or resource missing), with why.
    pub env_incomplete: BTreeMap<String, String>,
}

fn scores(results: &[&SampleResult], n: usize) -> (GroupScores, BTreeMap<String, f64>) {
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for r in results {
        *by_id.entry(&r.id).or_default() += usize::from(r.passed);
    }
    let at = |k: usize| -> Option<f64> {
        (k <= n && !by_id.is_empty()).then(|| {
            100.0 * by_id.values().map(|&c| pass_at_k(n, c, k)).sum::<f64>() / by_id.len() as f64
        })
    };
    let all_k = (1..=n)
        .filter_map(|k| at(k).map(|v| (format!("pass@{k}"), v)))
        .collect();
    (
        GroupScores {
            examples: by_id.len(),
            pass_at_1: at(1),
            pass_at_5: at(5),
            upass_at_1: None,
            pass_old_at_1: None,
        },
        all_k,
    )
}

/// Aggregates per-sample results (n samples per problem).
pub fn summarize(
    generator: &str,
    n: usize,
    results: &[SampleResult],
    problems: &[&Problem],
    settings: serde_json::Value,
) -> GcSummary {
    let all: Vec<&SampleResult> = results.iter().collect();
    let (overall, pass_at_k) = scores(&all, n);
    let group = |key: &dyn Fn(&SampleResult) -> String| -> BTreeMap<String, GroupScores> {
        let mut m: BTreeMap<String, Vec<&SampleResult>> = BTreeMap::new();
        for r in results {
            m.entry(key(r)).or_default().push(r);
        }
        m.into_iter().map(|(k, v)| (k, scores(&v, n).0)).collect()
    };
    let types: HashMap<String, &str> = problems
        .iter()
        .map(|p| (p.id.to_string(), p.type_of_change.as_str()))
        .collect();
    let mut per_type = group(&|r| types.get(&r.id).copied().unwrap_or_default().to_string());
    per_type.remove("");
    let mut error_classes = BTreeMap::new();
    let mut extraction = BTreeMap::new();
    let mut env_incomplete = BTreeMap::new();
    for r in results {
        *error_classes.entry(r.error_class.clone()).or_insert(0) += 1;
        let src = match r.code_source {
            CodeSource::Fence => "fence",
            CodeSource::Whole => "whole",
        };
        *extraction.entry(src.to_string()).or_insert(0) += 1;
        if let Some(why) = &r.hidden.missing {
            env_incomplete.insert(r.id.clone(), why.clone());
        }
    }
    let visible = results
        .iter()
        .filter(|r| r.visible.as_ref().is_some_and(|v| v.passed))
        .count();
    GcSummary {
        summary: Summary {
            bench: "gitchameleon".into(),
            generator: generator.to_string(),
            n,
            overall,
            candidates: results.len(),
            per_package: group(&|r| r.library.clone()),
            per_update_type: per_type,
            error_classes,
            extraction,
            settings,
            exec_secs: results.iter().map(|r| r.seconds).sum(),
        },
        pass_at_k,
        visible_pass_at_1: 100.0 * visible as f64 / results.len().max(1) as f64,
        per_version: group(&|r| format!("{}=={}", r.library, r.version)),
        env_incomplete,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything `recode eval run --bench gitchameleon` does after loading: generate what is
/// missing (when a generator is given), score every sample, write `results.jsonl` and
/// `summary.json` into `dir`.
#[allow(clippy::too_many_arguments)]
pub fn run_eval(
    problems: &[&Problem],
    tasks: &[Task],
    generator: Option<&dyn Generator>,
    params: &GenParams,
    scorer: &Scorer<'_>,
    dir: &Path,
    gen_progress: &dyn Fn(usize, usize),
    exec_progress: &(dyn Fn() + Sync),
) -> Result<GcSummary, GcRunError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let cache_path = dir.join("generations.jsonl");
    if let Some(g) = generator {
        generate_missing(tasks, g, params, &cache_path, gen_progress)?;
    }
    let cache = load_generations(&cache_path)?;
    let missing = missing_generations(tasks, params.n, &cache);
    if missing > 0 {
        return Err(RunError::Missing(missing).into());
    }
    let mut samples: Vec<(&Problem, &GenRecord, String, CodeSource)> = Vec::new();
    for (p, t) in problems.iter().zip(tasks) {
        for s in 0..params.n {
            let rec = &cache[&(t.id.clone(), s)];
            let (code, source) = extract_code(&rec.completion);
            samples.push((p, rec, code, source));
        }
    }
    let items: Vec<(u64, String)> = samples.iter().map(|s| (s.0.id, s.2.clone())).collect();
    let outcomes = scorer.score(&items, true, exec_progress)?;
    let results: Vec<SampleResult> = samples
        .into_iter()
        .zip(outcomes)
        .map(|((p, rec, code, source), o)| SampleResult {
            id: p.id.to_string(),
            sample: rec.sample,
            library: p.library.clone(),
            version: p.version.clone(),
            completion: rec.completion.clone(),
            code,
            code_source: source,
            passed: o.hidden.passed,
            error_class: o.hidden.error_class.clone(),
            seconds: o.hidden.seconds + o.visible.as_ref().map_or(0.0, |v| v.seconds),
            hidden: o.hidden,
            visible: o.visible,
            gen_secs: rec.gen_secs,
        })
        .collect();
    let describe = generator
        .map(|g| g.describe())
        .or_else(|| cache.values().next().map(|r| r.generator.clone()))
        .unwrap_or_default();
    let mut settings = serde_json::to_value(params).unwrap_or_default();
    // What the runs ran under; the verdict is the harness's (exit status), which the code under
    // test can forge (see `super::exec`).
    settings["sandbox"] = serde_json::json!({
        "protections": scorer.pool().map(|p| p.protections()),
        "verdicts": "exit_status",
    });
    let summary = summarize(&describe, params.n, &results, problems, settings);
    let path = dir.join("results.jsonl");
    let mut buf = String::new();
    for r in &results {
        buf.push_str(&serde_json::to_string(r).unwrap_or_default());
        buf.push('\n');
    }
    std::fs::write(&path, buf).map_err(io_err(&path))?;
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, lib: &str, passed: bool) -> SampleResult {
        let o = RunOutcome {
            passed,
            error_class: if passed { "passed" } else { "exit:1" }.into(),
            passed_harness: passed,
            exit_code: Some(i32::from(!passed)),
            seconds: 1.0,
            output: String::new(),
            missing: None,
        };
        SampleResult {
            id: id.into(),
            sample: 0,
            library: lib.into(),
            version: "1".into(),
            completion: String::new(),
            code: String::new(),
            code_source: CodeSource::Fence,
            passed,
            error_class: o.error_class.clone(),
            hidden: o.clone(),
            visible: Some(o),
            seconds: 2.0,
            gen_secs: 0.0,
        }
    }

    #[test]
    fn pass_at_k_per_library_and_overall() {
        // Problem 1: 1 of 2 samples passes; problem 2: none.
        let rs = vec![
            result("1", "a", true),
            result("1", "a", false),
            result("2", "b", false),
            result("2", "b", false),
        ];
        let s = summarize("g", 2, &rs, &[], serde_json::Value::Null);
        assert_eq!(s.summary.overall.pass_at_1, Some(25.0));
        assert_eq!(s.pass_at_k["pass@2"], 50.0);
        assert_eq!(s.summary.overall.pass_at_5, None);
        assert_eq!(s.summary.per_package["a"].pass_at_1, Some(50.0));
        assert_eq!(s.summary.per_package["b"].pass_at_1, Some(0.0));
        assert_eq!(s.visible_pass_at_1, 25.0);
        // The common Summary reads it back (what `recode report compare` does).
        let text = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.overall.pass_at_1, Some(25.0));
        assert_eq!(back.bench, "gitchameleon");
    }
}
