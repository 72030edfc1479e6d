//! The learning-run results page (`recode report results DIR -o docs/results.md`), built only
//! from the small artifacts `scripts/learning-stages.sh` commits under `DIR`
//! (`results/learning`):
//!
//! - `split.json`: the split manifest of `recode data split` (row counts, SHA-256 per file);
//! - `test/<model>.jsonl`: one greedy answer per test prompt and its scores, for `base`, `sft`,
//!   `grpo-after-sft`, `dapo-after-sft` (validation records of `recode sft`/`train`:
//!   `reward_components`, `indicators`, `truncated`) and `copy` (the old code given back
//!   unchanged, scored by `recode reward score`: `es_star`, `edit_es_star`, `exact_match`, …);
//! - `arena/<model>/results.jsonl` (+ `summary.json`): CodeUpdateArena runs of `recode eval run`;
//! - `stages/<stage>.json`: each stage's command, expected and measured wall time;
//! - `runs/<run>/metrics.jsonl`: a training stage's per-step records, whose `step_s` give its
//!   steady training time (steps × median step), free of validations and of pauses.
//!
//! Paired differences reuse [`recode_eval::paired`]: bootstrap intervals over prompts
//! (10 000 resamples, seed 0) and the exact McNemar test. Anything missing is shown as
//! "not run yet".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use recode_eval::paired::{mean_difference, outcome_change, MeanDifference, OutcomeChange};
use serde_json::Value;

use crate::error::ReportError;
use crate::metrics::num;

/// Bootstrap resamples of every interval on the page.
pub const RESAMPLES: usize = 10_000;

/// The models of the test table, in order: (file stem, label).
pub const TEST_MODELS: [(&str, &str); 5] = [
    ("base", "base (no training)"),
    ("sft", "SFT"),
    ("grpo-after-sft", "GRPO after SFT"),
    ("dapo-after-sft", "DAPO after SFT"),
    ("copy", "copy the old code"),
];

/// The stages of the run, in order, with the run directory (under `runs/`) of a training stage.
pub const STAGES: [(&str, Option<&str>); 6] = [
    ("split", None),
    ("sft", Some("sft")),
    ("grpo", Some("grpo-after-sft")),
    ("dapo", Some("dapo-after-sft")),
    ("eval-test", None),
    ("eval-arena", None),
];

/// One model's scores on the test prompts, in prompt order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestScores {
    /// Prompt index (row of the test file) of each record.
    pub index: Vec<u64>,
    /// ES* per prompt.
    pub es_star: Vec<f64>,
    /// `edit_es_star` per prompt (None when a record lacks it).
    pub edit_es_star: Vec<Option<f64>>,
    /// Exact match (a valid answer equal to the reference) per prompt.
    pub exact: Vec<bool>,
    /// Right answer format per prompt.
    pub format_ok: Vec<bool>,
    /// Completion cut at the token limit per prompt.
    pub truncated: Vec<bool>,
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn rate(x: &[bool]) -> f64 {
    x.iter().filter(|b| **b).count() as f64 / x.len().max(1) as f64
}

impl TestScores {
    /// Reads a per-prompt JSONL file: validation records (`reward_components`, `indicators`,
    /// `truncated`) or `recode reward score` rows (`es_star`, `exact_match`, `format`, …).
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
        let mut out = TestScores::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|source| ReportError::InvalidJson {
                    path: path.to_path_buf(),
                    line: Some(i + 1),
                    source,
                })?;
            out.push(path, i + 1, &v)?;
        }
        // Pair by prompt: records sorted by their index.
        let mut order: Vec<usize> = (0..out.index.len()).collect();
        order.sort_by_key(|&k| out.index[k]);
        Ok(TestScores {
            index: order.iter().map(|&k| out.index[k]).collect(),
            es_star: order.iter().map(|&k| out.es_star[k]).collect(),
            edit_es_star: order.iter().map(|&k| out.edit_es_star[k]).collect(),
            exact: order.iter().map(|&k| out.exact[k]).collect(),
            format_ok: order.iter().map(|&k| out.format_ok[k]).collect(),
            truncated: order.iter().map(|&k| out.truncated[k]).collect(),
        })
    }

    fn push(&mut self, path: &Path, line: usize, v: &Value) -> Result<(), ReportError> {
        let need = |key: &str| {
            num(v, key).ok_or_else(|| ReportError::MissingNumber {
                path: path.to_path_buf(),
                line,
                key: key.to_string(),
            })
        };
        let flag = |key: &str| v.get(key).and_then(Value::as_bool);
        self.index.push(
            v.get("index")
                .and_then(Value::as_u64)
                .unwrap_or(self.index.len() as u64),
        );
        if v.get("reward_components").is_some() {
            self.es_star.push(need("reward_components.es_star")?);
            self.edit_es_star
                .push(num(v, "reward_components.edit_es_star"));
            self.exact.push(need("indicators.exact_match")? > 0.5);
            self.format_ok.push(need("indicators.format_ok")? > 0.5);
            self.truncated.push(flag("truncated") == Some(true));
        } else {
            self.es_star.push(need("es_star")?);
            self.edit_es_star.push(num(v, "edit_es_star"));
            // As validation counts it: a code block that parses and equals the reference.
            let valid = flag("has_code_block") != Some(false) && flag("syntax_ok") != Some(false);
            self.exact.push(valid && flag("exact_match") == Some(true));
            self.format_ok.push(need("format")? > 0.0);
            self.truncated.push(flag("truncated") == Some(true));
        }
        Ok(())
    }

    /// Test prompts scored.
    pub fn len(&self) -> usize {
        self.es_star.len()
    }

    /// No prompt scored.
    pub fn is_empty(&self) -> bool {
        self.es_star.is_empty()
    }

    /// `edit_es_star` per prompt when every record has it.
    pub fn edit(&self) -> Option<Vec<f64>> {
        self.edit_es_star.iter().copied().collect()
    }
}

/// One model's CodeUpdateArena pass@1 per problem (mean over its samples), by problem id.
pub fn arena_pass_at_1(results: &Path) -> Result<BTreeMap<String, f64>, ReportError> {
    let text = std::fs::read_to_string(results).map_err(|e| ReportError::read(results, e))?;
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|source| ReportError::InvalidJson {
            path: results.to_path_buf(),
            line: Some(i + 1),
            source,
        })?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ReportError::MissingNumber {
                path: results.to_path_buf(),
                line: i + 1,
                key: "id".into(),
            })?;
        let passed = v
            .get("with_update")
            .and_then(|w| w.get("passed"))
            .and_then(Value::as_bool)
            .ok_or_else(|| ReportError::MissingNumber {
                path: results.to_path_buf(),
                line: i + 1,
                key: "with_update.passed".into(),
            })?;
        let e = per.entry(id.to_string()).or_default();
        e.0 += usize::from(passed);
        e.1 += 1;
    }
    Ok(per
        .into_iter()
        .map(|(id, (p, n))| (id, p as f64 / n as f64))
        .collect())
}

fn read_json(path: &Path) -> Result<Option<Value>, ReportError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ReportError::InvalidJson {
            path: path.to_path_buf(),
            line: None,
            source,
        })
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=5399 => format!("{} min", (s + 30) / 60),
        _ => format!("{}.{} h", s / 3600, (s % 3600) * 10 / 3600),
    }
}

const NOT_RUN: &str = "not run yet";

/// The Markdown page of the learning run's results under `dir`.
pub fn results_markdown(dir: &Path) -> Result<String, ReportError> {
    let mut md = String::new();
    let shown = dir.display();
    let _ = writeln!(
        md,
        "# Learning run: results on a held-out test split\n\n\
         Generated by `recode report results {shown} -o docs/results.md` from the small \
         artifacts committed in `{shown}` (per-prompt test outputs, evaluation results, stage \
         records); every number below regenerates with that command. Do not edit by hand.\n\n\
         Settings (learning rate, steps, temperature, reward weights) were chosen on the \
         validation split only; the test split is read only by the `eval-test` stage. Intervals \
         are 95% paired percentile bootstrap intervals over prompts ({RESAMPLES} resamples, \
         seed 0); exact match is compared with the exact two-sided McNemar test.\n"
    );
    split_section(&mut md, dir)?;
    validation_section(&mut md, dir)?;
    test_section(&mut md, dir)?;
    arena_section(&mut md, dir)?;
    stages_section(&mut md, dir)?;
    Ok(md)
}

fn split_section(md: &mut String, dir: &Path) -> Result<(), ReportError> {
    md.push_str("## Split\n\n");
    let Some(m) = read_json(&dir.join("split.json"))? else {
        let _ = writeln!(md, "{NOT_RUN} (no `split.json`).\n");
        return Ok(());
    };
    let _ = writeln!(
        md,
        "`recode data split` of `{}` ({} rows), seed {}, validation {} and test {} of each \
         library's rows:\n",
        m.get("input").and_then(Value::as_str).unwrap_or("?"),
        m.get("input_rows").and_then(Value::as_u64).unwrap_or(0),
        m.get("seed").and_then(Value::as_u64).unwrap_or(0),
        num(&m, "val").unwrap_or(f64::NAN),
        num(&m, "test").unwrap_or(f64::NAN),
    );
    md.push_str("| part | file | rows | SHA-256 |\n|---|---|---:|---|\n");
    for f in m
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | `{}` |",
            s("part"),
            s("file"),
            f.get("rows").and_then(Value::as_u64).unwrap_or(0),
            s("sha256")
        );
    }
    md.push('\n');
    Ok(())
}

/// Each training run's greedy validations (the validation split, where choices were made):
/// `runs/<run>/metrics.jsonl` and `validation_start.json`.
fn validation_section(md: &mut String, dir: &Path) -> Result<(), ReportError> {
    md.push_str(
        "## Validation split (where choices were made)\n\n\
         Greedy validation during training, from `runs/<run>/`; the RL runs start from the \
         SFT adapter, so SFT's last row is also their step 0. `edit_es_star` appears where \
         the run scored it.\n\n\
         | run | step | ES* | exact match | edit_es_star | format rate | unchanged |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in STAGES.iter().filter_map(|(_, run)| *run) {
        let path = dir.join("runs").join(run);
        if !path.join("metrics.jsonl").exists() {
            let _ = writeln!(md, "| {run} | {NOT_RUN} | | | | | |");
            continue;
        }
        let data = crate::metrics::RunData::load(&path)?;
        for (step, v) in data.validation() {
            let cell = |key: &str, digits: usize| {
                num(&v, key).map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
            };
            let pct = |key: &str| {
                num(&v, key).map_or_else(|| "–".into(), |x| format!("{:.1}%", 100.0 * x))
            };
            let _ = writeln!(
                md,
                "| {run} | {step} | {} | {} | {} | {} | {} |",
                cell("reward_components.es_star", 4),
                pct("indicators.exact_match"),
                cell("reward_components.edit_es_star", 4),
                pct("indicators.format_ok"),
                pct("indicators.unchanged"),
            );
        }
    }
    md.push('\n');
    Ok(())
}

fn test_section(md: &mut String, dir: &Path) -> Result<(), ReportError> {
    let mut scores: Vec<(&str, &str, Option<TestScores>)> = Vec::new();
    for (stem, label) in TEST_MODELS {
        let path = dir.join("test").join(format!("{stem}.jsonl"));
        let s = if path.is_file() {
            Some(TestScores::load(&path)?)
        } else {
            None
        };
        scores.push((stem, label, s));
    }
    let n = scores
        .iter()
        .filter_map(|s| s.2.as_ref().map(TestScores::len))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "## Test split ({n} prompts, greedy decoding)\n\n\
         ES\\* and `edit_es_star` (the score of the edit: the answer's change against the \
         reference's change, so copying the old code earns nothing) are means over prompts; \
         exact match counts valid answers equal to the reference.\n"
    );
    md.push_str(
        "| model | prompts | ES* | exact match | edit_es_star | format rate | truncation rate |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (_, label, s) in &scores {
        match s {
            None => {
                let _ = writeln!(md, "| {label} | {NOT_RUN} | | | | | |");
            }
            Some(s) => {
                let edit = s
                    .edit()
                    .map(|e| format!("{:.4}", mean(&e)))
                    .unwrap_or_else(|| "–".into());
                let exact = s.exact.iter().filter(|b| **b).count();
                let _ = writeln!(
                    md,
                    "| {label} | {} | {:.4} | {exact}/{} ({:.1}%) | {edit} | {:.1}% | {:.1}% |",
                    s.len(),
                    mean(&s.es_star),
                    s.len(),
                    100.0 * rate(&s.exact),
                    100.0 * rate(&s.format_ok),
                    100.0 * rate(&s.truncated),
                );
            }
        }
    }
    md.push_str(
        "\n### Paired differences (model − reference, same prompts)\n\n\
         | model | against | ΔES* [95% CI] | Δedit_es_star [95% CI] | exact match gained / lost | McNemar p |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let find = |stem: &str| {
        scores
            .iter()
            .find(|s| s.0 == stem)
            .and_then(|s| s.2.as_ref())
    };
    let mut compared = Vec::new();
    for (ref_stem, ref_label) in [("sft", "SFT"), ("copy", "copy the old code")] {
        for (stem, label, s) in &scores {
            if *stem == ref_stem || (ref_stem == "sft" && *stem == "copy") {
                continue;
            }
            let (Some(s), Some(r)) = (s, find(ref_stem)) else {
                let _ = writeln!(md, "| {label} | {ref_label} | {NOT_RUN} | | | |");
                continue;
            };
            if s.index != r.index {
                let _ = writeln!(
                    md,
                    "| {label} | {ref_label} | not compared: different prompts ({} vs {}) | | | |",
                    s.len(),
                    r.len()
                );
                continue;
            }
            let c = Comparison {
                stem,
                label,
                against: ref_label,
                es: mean_difference(&r.es_star, &s.es_star, RESAMPLES, 0),
                edit: match (r.edit(), s.edit()) {
                    (Some(re), Some(se)) => Some(mean_difference(&re, &se, RESAMPLES, 0)),
                    _ => None,
                },
                exact: outcome_change(&r.exact, &s.exact),
            };
            let _ = writeln!(
                md,
                "| {label} | {ref_label} | {} | {} | +{} / −{} | {:.4} |",
                interval(&c.es),
                c.edit.as_ref().map_or_else(|| "–".into(), interval),
                c.exact.gained,
                c.exact.lost,
                c.exact.p_value
            );
            compared.push(c);
        }
    }
    md.push('\n');
    verdict(md, &compared);
    Ok(())
}

/// One paired comparison of the test table: a model against a reference.
struct Comparison<'a> {
    stem: &'a str,
    label: &'a str,
    against: &'a str,
    es: MeanDifference,
    edit: Option<MeanDifference>,
    exact: OutcomeChange,
}

/// Significance level of the verdict's exact-match statement (McNemar).
const ALPHA: f64 = 0.05;

/// `+0.1234 [+0.0100, +0.2000]`.
fn interval(d: &MeanDifference) -> String {
    format!("{:+.4} [{:+.4}, {:+.4}]", d.mean, d.low, d.high)
}

/// Whether an interval lies above 0, below it, or includes it, in words.
fn direction(d: &MeanDifference) -> &'static str {
    if d.low > 0.0 {
        "higher"
    } else if d.high < 0.0 {
        "lower"
    } else {
        "no difference shown"
    }
}

/// The issue's aim, stated from the paired comparisons of the RL runs: each metric against SFT
/// and against copying, and whether RL-after-SFT beats both with an interval that excludes 0.
fn verdict(md: &mut String, compared: &[Comparison]) {
    let _ = writeln!(
        md,
        "### Verdict\n\n\
         The aim: RL after SFT beats both SFT and copying the old code on the test split, with an \
         interval that excludes 0. Written from the table above (95% intervals; exact match at \
         McNemar p < {ALPHA}).\n"
    );
    let rl: Vec<&Comparison> = compared
        .iter()
        .filter(|c| c.stem.ends_with("-after-sft"))
        .collect();
    if rl.is_empty() {
        let _ = writeln!(md, "{NOT_RUN}.\n");
        return;
    }
    for c in &rl {
        let edit = c.edit.as_ref().map_or_else(
            || "edit_es_star not scored".to_string(),
            |e| format!("edit_es_star {} ({})", direction(e), interval(e)),
        );
        let exact = if c.exact.p_value < ALPHA {
            if c.exact.gained > c.exact.lost {
                "more exact matches"
            } else {
                "fewer exact matches"
            }
        } else {
            "exact match: no significant change"
        };
        let _ = writeln!(
            md,
            "- **{}** vs {}: ES\\* {} ({}); {edit}; {exact} (+{} / −{}, p = {:.4}).",
            c.label,
            c.against,
            direction(&c.es),
            interval(&c.es),
            c.exact.gained,
            c.exact.lost,
            c.exact.p_value
        );
    }
    let beats_both = |metric: &str, d: &dyn Fn(&Comparison) -> Option<bool>| {
        let winners: Vec<&str> = TEST_MODELS
            .iter()
            .filter(|(stem, _)| stem.ends_with("-after-sft"))
            .map(|(_, label)| *label)
            .filter(|run| {
                let mine: Vec<&&Comparison> = rl.iter().filter(|c| c.label == *run).collect();
                mine.len() == 2 && mine.iter().all(|c| d(c) == Some(true))
            })
            .collect();
        if winners.is_empty() {
            format!("on {metric}, no RL run beats both SFT and copying")
        } else {
            let verb = if winners.len() == 1 { "beats" } else { "beat" };
            format!("on {metric}, {} {verb} both", winners.join(" and "))
        }
    };
    let _ = writeln!(
        md,
        "\n**Aim:** {}; {}; {}.\n",
        beats_both("ES\\*", &|c| Some(c.es.low > 0.0)),
        beats_both("edit_es_star", &|c| c.edit.as_ref().map(|e| e.low > 0.0)),
        beats_both("exact match", &|c| {
            Some(c.exact.p_value < ALPHA && c.exact.gained > c.exact.lost)
        }),
    );
}

fn arena_section(md: &mut String, dir: &Path) -> Result<(), ReportError> {
    md.push_str("## CodeUpdateArena pass@1 (dev part, sandboxed)\n\n");
    // The sampling settings as the runs recorded them (summary.json of the first one found).
    let settings = ["base", "sft", "best-rl"]
        .iter()
        .map(|m| read_json(&dir.join("arena").join(m).join("summary.json")))
        .find_map(|r| r.transpose())
        .transpose()?;
    let sampling = match settings.as_ref().map(|s| &s["settings"]) {
        Some(s) => format!(
            "{} sample(s) per problem at temperature {}, at most {} new tokens, sandbox verdicts \
             `{}`",
            s["n"],
            s["temperature"],
            s["max_new_tokens"],
            s["sandbox"]["verdicts"].as_str().unwrap_or("?")
        ),
        None => "sampling settings not recorded: no summary.json".into(),
    };
    let _ = writeln!(
        md,
        "`recode eval run --bench codeupdatearena` ({sampling}); pass@1 per problem is the \
         share of its samples that pass; the table gives its mean in percent with a 95% \
         bootstrap interval over problems, and the paired difference to the base model.\n"
    );
    let best = std::fs::read_to_string(dir.join("arena").join("best-rl.txt")).ok();
    if let Some(b) = &best {
        let _ = writeln!(md, "Best RL run (chosen on validation): {}\n", b.trim());
    }
    md.push_str(
        "| model | problems | pass@1 % [95% CI] | Δ vs base, points [95% CI] |\n\
         |---|---:|---:|---:|\n",
    );
    let load = |stem: &str| -> Result<Option<BTreeMap<String, f64>>, ReportError> {
        let p = dir.join("arena").join(stem).join("results.jsonl");
        if p.is_file() {
            arena_pass_at_1(&p).map(Some)
        } else {
            Ok(None)
        }
    };
    let base = load("base")?;
    for (stem, label) in [("base", "base"), ("sft", "SFT"), ("best-rl", "best RL")] {
        let Some(m) = load(stem)? else {
            let _ = writeln!(md, "| {label} | {NOT_RUN} | | |");
            continue;
        };
        let x: Vec<f64> = m.values().map(|v| 100.0 * v).collect();
        let zero = vec![0.0; x.len()];
        let d = mean_difference(&zero, &x, RESAMPLES, 0);
        let vs = match &base {
            Some(b) if stem != "base" && b.keys().eq(m.keys()) => {
                let bx: Vec<f64> = b.values().map(|v| 100.0 * v).collect();
                let e = mean_difference(&bx, &x, RESAMPLES, 0);
                format!("{:+.1} [{:+.1}, {:+.1}]", e.mean, e.low, e.high)
            }
            Some(_) if stem != "base" => "not compared: different problems".into(),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {:.1} [{:.1}, {:.1}] | {vs} |",
            x.len(),
            d.mean,
            d.low,
            d.high
        );
    }
    md.push('\n');
    Ok(())
}

/// A step's time: `step_s` (SFT) or the sum of its RL phases (`timing.generate_s`, `score_s`,
/// `learn_s`).
fn step_seconds(v: &Value) -> Option<f64> {
    num(v, "step_s").or_else(|| {
        ["generate_s", "score_s", "learn_s"]
            .iter()
            .map(|k| num(v, &format!("timing.{k}")))
            .sum()
    })
}

/// `steps × median step` of a training run's `metrics.jsonl`: its training time without
/// validations and without time the run spent stopped.
fn steady_training(metrics: &Path) -> Result<Option<String>, ReportError> {
    if !metrics.exists() {
        return Ok(None);
    }
    let mut step_s: Vec<f64> = crate::metrics::load_metrics(metrics)?
        .iter()
        .filter_map(|(_, v)| step_seconds(v))
        .collect();
    if step_s.is_empty() {
        return Ok(None);
    }
    step_s.sort_by(f64::total_cmp);
    let n = step_s.len();
    let median = if n % 2 == 1 {
        step_s[n / 2]
    } else {
        (step_s[n / 2 - 1] + step_s[n / 2]) / 2.0
    };
    Ok(Some(format!(
        "{} ({n} × {median:.1} s)",
        duration(n as f64 * median)
    )))
}

fn stages_section(md: &mut String, dir: &Path) -> Result<(), ReportError> {
    md.push_str(
        "## Stages: commands and wall time\n\n\
         Run with `scripts/learning-stages.sh` (one stage per session: `LEARN_STAGE=sft \
         scripts/learning-stages.sh`); each stage's record is in `stages/<stage>.json`. \
         *Measured* is the stage's wall time from start to end: validations included, and any \
         time the run was stopped (SIGSTOP) to give benchmarks a quiet machine. *Training* is \
         steps × median step time from the run's `metrics.jsonl`: the steady training time \
         without either.\n\n\
         | stage | expected | measured | training | finished (UTC) |\n|---|---:|---:|---:|---|\n",
    );
    let mut commands = Vec::new();
    for (stage, run) in STAGES {
        let Some(v) = read_json(&dir.join("stages").join(format!("{stage}.json")))? else {
            let _ = writeln!(md, "| {stage} | | {NOT_RUN} | | |");
            continue;
        };
        let t = |k: &str| num(&v, k).map(duration).unwrap_or_else(|| "–".into());
        let training = match run {
            Some(run) => steady_training(&dir.join("runs").join(run).join("metrics.jsonl"))?,
            None => None,
        };
        // An evaluation stage run before all its models existed.
        let partial = if v.get("partial").and_then(Value::as_bool) == Some(true) {
            " (partial: a model was not run yet)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "| {stage} | {} | {}{partial} | {} | {} |",
            t("expected_seconds"),
            t("wall_seconds"),
            training.as_deref().unwrap_or("–"),
            v.get("finished_utc").and_then(Value::as_str).unwrap_or("")
        );
        let run: Vec<&str> = v
            .get("commands")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !run.is_empty() {
            commands.push(format!("# {stage}\n{}", run.join("\n")));
        }
    }
    md.push_str("\n### Commands\n\n");
    if commands.is_empty() {
        let _ = writeln!(md, "{NOT_RUN}.");
    } else {
        md.push_str("```sh\n");
        for c in commands {
            md.push_str(&c);
            md.push('\n');
        }
        md.push_str("```\n");
    }
    Ok(())
}
