//! `recode report`: self-contained HTML pages with inline SVG charts.
//!
//! - `recode report train RUN_DIR` (shorthand `recode report RUN_DIR`): the curves in
//!   `metrics.jsonl` of a `recode train` (GRPO/DAPO `StepMetrics`) or `recode sft`
//!   (`SftMetrics`) run, with step-0 validation from `validation_start.json`.
//! - `recode report eval DIR` and `recode report compare A B`: evaluation summaries of
//!   `recode eval run`.
//!
//! Metrics lines are read as JSON objects, not as the trainer's structs, so both line shapes,
//! older runs and `null` values (NaN written by serde) still plot; a line that is not a JSON
//! object with an integer `step` is an error naming `file:line`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use recode_eval::report::{
    render_html_report, render_training_report, SummaryWithLabel, TrainingReport,
};
use recode_eval::run::Summary;
use recode_eval::svg::{LineChart, Series};
use serde_json::Value;

/// Subcommands of `recode report`.
#[derive(Subcommand)]
#[command(
    after_help = "Shorthand: `recode report RUN_DIR [-o OUT.html]` is `recode report \
                        train RUN_DIR [-o OUT.html]`."
)]
pub enum ReportCommand {
    /// Training curves of a `recode train` / `recode sft` run directory (metrics.jsonl).
    Train(TrainReportArgs),
    /// One evaluation result of `recode eval run`.
    Eval(EvalReportArgs),
    /// Compare evaluation results (e.g. base vs trained); the first is the baseline.
    Compare(CompareArgs),
    /// Overlay several training runs (e.g. SFT, then GRPO and DAPO from it): validation ES*,
    /// exact match and format rate per step, and the rollout reward, one line per run; each
    /// run's last validation is compared prompt by prompt with the first run's (paired
    /// bootstrap interval of ΔES*, McNemar test of exact match), also printed on stdout.
    Runs(RunsArgs),
    /// `recode report RUN_DIR …`: shorthand for `recode report train RUN_DIR …`.
    #[command(external_subcommand)]
    RunDir(Vec<OsString>),
}

/// Arguments of `recode report train`.
#[derive(Parser)]
#[command(name = "recode report train")]
pub struct TrainReportArgs {
    /// Run directory holding metrics.jsonl (and validation_start.json when validation ran).
    pub run_dir: PathBuf,
    /// Output HTML file [default: RUN_DIR/report.html].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `recode report eval`.
#[derive(Args)]
pub struct EvalReportArgs {
    /// `recode eval run` output directory, or its summary.json.
    pub result: PathBuf,
    /// Label of the run [default: the directory name].
    #[arg(long)]
    pub label: Option<String>,
    /// Output HTML file [default: report.html next to summary.json].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `recode report compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Two or more `recode eval run` output directories or summary.json files; the first is
    /// the baseline the others' differences refer to.
    #[arg(required = true, num_args = 2..)]
    pub results: Vec<PathBuf>,
    /// Comma-separated labels, one per result [default: the shortest path suffixes that
    /// tell the directories apart].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output HTML file.
    #[arg(short, long, default_value = "compare.html")]
    pub output: PathBuf,
}

/// Arguments of `recode report runs`.
#[derive(Args)]
pub struct RunsArgs {
    /// Run directories of `recode train` / `recode sft` (metrics.jsonl, validation_start.json).
    #[arg(required = true, num_args = 1..)]
    pub run_dirs: Vec<PathBuf>,
    /// Comma-separated labels, one per run [default: the shortest path suffixes that tell
    /// the directories apart].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output HTML file.
    #[arg(short, long, default_value = "runs.html")]
    pub output: PathBuf,
}

/// Runs a `recode report` subcommand.
pub fn run(cmd: ReportCommand) -> anyhow::Result<()> {
    match cmd {
        ReportCommand::Train(a) => run_train(&a),
        ReportCommand::Eval(a) => run_eval(&a),
        ReportCommand::Compare(a) => run_compare(&a),
        ReportCommand::Runs(a) => run_runs(&a),
        ReportCommand::RunDir(args) => {
            let argv = std::iter::once(OsString::from("recode report")).chain(args);
            run_train(&TrainReportArgs::try_parse_from(argv).unwrap_or_else(|e| e.exit()))
        }
    }
}

fn write_html(path: &Path, html: &str) -> anyhow::Result<()> {
    recode_data::atomic::write_atomic(path, html.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Evaluation reports.

/// `summary.json` of a result directory (or the file itself) and that directory.
fn load_summary(path: &Path) -> anyhow::Result<(PathBuf, PathBuf, Summary)> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let summary: Summary = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a `recode eval run` summary", file.display()))?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((file, dir, summary))
}

fn run_eval(a: &EvalReportArgs) -> anyhow::Result<()> {
    let (file, dir, summary) = load_summary(&a.result)?;
    let label = a
        .label
        .clone()
        .unwrap_or_else(|| run_labels(&[], &[dir]).remove(0));
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| file.with_file_name("report.html"));
    write_html(
        &out,
        &render_html_report(&[SummaryWithLabel { label, summary }]),
    )
}

fn run_compare(a: &CompareArgs) -> anyhow::Result<()> {
    if !a.labels.is_empty() && a.labels.len() != a.results.len() {
        bail!(
            "--labels has {} entries for {} results",
            a.labels.len(),
            a.results.len()
        );
    }
    let (mut runs, mut dirs) = (Vec::new(), Vec::new());
    for path in &a.results {
        let (_, dir, summary) = load_summary(path)?;
        dirs.push(dir);
        runs.push(summary);
    }
    let runs: Vec<SummaryWithLabel> = runs
        .into_iter()
        .zip(run_labels(&a.labels, &dirs))
        .map(|(summary, label)| SummaryWithLabel { label, summary })
        .collect();
    write_html(&a.output, &render_html_report(&runs))
}

/// The legend label of each run: `given` when the user passed `--labels`, else the shortest
/// trailing part of the canonical directory paths that tells all runs apart (`a/grpo`,
/// `b/grpo`; `.` is named after the directory it is).
fn run_labels(given: &[String], dirs: &[PathBuf]) -> Vec<String> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    let parts: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let longest = parts.iter().map(Vec::len).max().unwrap_or(0);
    for k in 1..=longest {
        let labels: Vec<String> = parts
            .iter()
            .map(|p| p[p.len().saturating_sub(k)..].join("/"))
            .collect();
        let distinct = labels.iter().collect::<BTreeSet<_>>().len() == labels.len();
        if distinct && labels.iter().all(|l| !l.is_empty()) {
            return labels;
        }
    }
    dirs.iter().map(|d| d.display().to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Training report.

/// One metrics record: its step and the JSON object.
type Row = (u64, Value);

/// Reads `metrics.jsonl`: one JSON object with an integer `step` per non-blank line; a step
/// written twice (a resumed run) keeps its last line. Errors name `file:line`.
fn load_metrics(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
        if !v.is_object() {
            bail!("{}: expected a JSON object", at());
        }
        let Some(step) = v.get("step").and_then(Value::as_u64) else {
            bail!("{}: no integer `step` field", at());
        };
        rows.insert(step, v);
    }
    if rows.is_empty() {
        bail!("{}: no metrics lines", path.display());
    }
    Ok(rows.into_iter().collect())
}

/// `validation_start.json` (greedy validation before the first step), if present.
fn load_start(path: &Path) -> anyhow::Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    if !v.is_object() {
        bail!("{}: expected a JSON object", path.display());
    }
    Ok(Some(v))
}

/// The value at a dotted path such as `rollout.filter.groups_kept`.
fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn num(v: &Value, path: &str) -> Option<f64> {
    get(v, path).and_then(Value::as_f64)
}

/// A series of `f(row)` over the rows where it is defined.
fn series(rows: &[Row], name: &str, f: impl Fn(&Value) -> Option<f64>) -> Series {
    let points = rows
        .iter()
        .filter_map(|(step, v)| f(v).map(|y| (*step as f64, y)))
        .collect();
    Series::new(name, points)
}

/// A series of the number at `path`.
fn field(rows: &[Row], name: &str, path: &str) -> Series {
    series(rows, name, |v| num(v, path))
}

/// One series per key of the objects at `path` (e.g. each reward component).
fn per_key(rows: &[Row], path: &str) -> Vec<Series> {
    let keys: BTreeSet<&String> = rows
        .iter()
        .filter_map(|(_, v)| get(v, path).and_then(Value::as_object))
        .flat_map(|m| m.keys())
        .collect();
    keys.into_iter()
        .map(|k| {
            series(rows, &pretty(k), |v| {
                get(v, path).and_then(|m| m.get(k))?.as_f64()
            })
        })
        .collect()
}

/// Display names of the rewarder's components and indicators.
fn pretty(key: &str) -> String {
    match key {
        "es_star" => "ES*".into(),
        "em_star" => "EM*".into(),
        "es" => "ES".into(),
        "em" => "EM".into(),
        k => k.replace('_', " "),
    }
}

/// A step chart of the non-empty `series`; `rate` fixes the y range to 0–1.
fn chart(title: &str, y_label: &str, series: Vec<Series>, rate: bool) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: "step".into(),
        y_label: y_label.into(),
        series: series
            .into_iter()
            .filter(|s| s.points.iter().any(|p| p.1.is_finite()))
            .collect(),
        y_range: rate.then_some((0.0, 1.0)),
    }
}

/// Reward mean with a ± std band.
fn reward_total(rows: &[Row]) -> Series {
    let with_mean: Vec<&Row> = rows
        .iter()
        .filter(|(_, v)| num(v, "rollout.reward_mean").is_some())
        .collect();
    Series {
        name: "mean ± std".into(),
        points: with_mean
            .iter()
            .map(|(s, v)| (*s as f64, num(v, "rollout.reward_mean").unwrap_or(f64::NAN)))
            .collect(),
        band: Some(
            with_mean
                .iter()
                .map(|(_, v)| num(v, "rollout.reward_std").unwrap_or(f64::NAN))
                .collect(),
        ),
    }
}

/// Validation points: step 0 from validation_start.json, then the steps where it ran
/// (records over zero prompts carry no figures).
fn validation_points(rows: &[Row], start: Option<&Value>) -> Vec<Row> {
    start
        .map(|v| (0, v.clone()))
        .into_iter()
        .chain(
            rows.iter()
                .filter_map(|(s, v)| Some((*s, v.get("validation")?.clone()))),
        )
        .filter(|(_, v)| v.is_object() && num(v, "num_prompts") != Some(0.0))
        .collect()
}

/// The chart sections of a run (RL and SFT metrics lines alike; absent fields give no line).
fn training_sections(rows: &[Row], start: Option<&Value>) -> Vec<(String, Vec<LineChart>)> {
    let kept = |v: &Value| {
        let seen = num(v, "rollout.filter.groups_seen")?;
        (seen > 0.0).then(|| num(v, "rollout.filter.groups_kept").unwrap_or(0.0) / seen)
    };
    let timing = |k: &str| format!("timing.{k}_s");
    let total_time = |v: &Value| {
        ["generate", "score", "learn"]
            .iter()
            .map(|k| num(v, &timing(k)))
            .sum::<Option<f64>>()
    };
    let sft_tokens_per_s = |v: &Value| {
        let secs = num(v, "step_s")?;
        (secs > 0.0).then(|| num(v, "tokens").unwrap_or(0.0) / secs)
    };
    let validation = validation_points(rows, start);
    vec![
        (
            "reward".into(),
            vec![
                chart("reward (total)", "reward", vec![reward_total(rows)], false),
                chart(
                    "reward components (mean)",
                    "reward",
                    per_key(rows, "rollout.reward_components"),
                    false,
                ),
                chart(
                    "indicators (rate)",
                    "rate",
                    per_key(rows, "rollout.indicators"),
                    true,
                ),
            ],
        ),
        (
            "policy update".into(),
            vec![
                chart("loss", "loss", vec![field(rows, "loss", "loss")], false),
                chart("learning rate", "lr", vec![field(rows, "lr", "lr")], false),
                chart(
                    "KL to reference",
                    "KL / token",
                    vec![field(rows, "KL", "kl")],
                    false,
                ),
                chart(
                    "clip fraction",
                    "fraction of tokens",
                    vec![
                        field(rows, "ε clip", "clip_fraction"),
                        field(rows, "dual clip", "dual_clip_fraction"),
                    ],
                    false,
                ),
                chart(
                    "entropy",
                    "nats / token",
                    vec![field(rows, "entropy", "entropy")],
                    false,
                ),
                chart(
                    "policy drift",
                    "mean |log ρ|",
                    vec![field(rows, "|log ρ|", "abs_log_ratio")],
                    false,
                ),
                chart(
                    "gradient norm (before clipping)",
                    "norm",
                    vec![field(rows, "grad norm", "grad_norm")],
                    false,
                ),
            ],
        ),
        (
            "rollouts".into(),
            vec![
                chart(
                    "response length",
                    "tokens",
                    vec![field(rows, "mean", "rollout.completion_len_mean")],
                    false,
                ),
                chart(
                    "truncated responses",
                    "fraction",
                    vec![field(rows, "truncated", "rollout.truncated_fraction")],
                    true,
                ),
                chart(
                    "kept groups (dynamic sampling)",
                    "fraction",
                    vec![series(rows, "kept", kept)],
                    true,
                ),
            ],
        ),
        (
            "throughput".into(),
            vec![
                chart(
                    "throughput",
                    "tokens / s",
                    vec![
                        field(rows, "generated tokens/s", "timing.tokens_per_s"),
                        series(rows, "trained tokens/s", sft_tokens_per_s),
                    ],
                    false,
                ),
                chart(
                    "step time",
                    "seconds",
                    vec![
                        field(rows, "generate", &timing("generate")),
                        field(rows, "score", &timing("score")),
                        field(rows, "learn", &timing("learn")),
                        series(rows, "total", total_time),
                        field(rows, "step", "step_s"),
                    ],
                    false,
                ),
                chart(
                    "trained tokens per step",
                    "tokens",
                    vec![field(rows, "tokens", "tokens")],
                    false,
                ),
            ],
        ),
        (
            "validation (greedy, held-out split)".into(),
            vec![
                chart(
                    "validation reward components",
                    "mean",
                    per_key(&validation, "reward_components"),
                    false,
                ),
                chart(
                    "validation indicators",
                    "rate",
                    per_key(&validation, "indicators"),
                    true,
                ),
                chart(
                    "validation response length",
                    "tokens",
                    vec![field(&validation, "mean", "completion_len_mean")],
                    false,
                ),
            ],
        ),
    ]
}

fn run_train(a: &TrainReportArgs) -> anyhow::Result<()> {
    if !a.run_dir.is_dir() {
        bail!(
            "{}: no such run directory (subcommands: train, eval, compare)",
            a.run_dir.display()
        );
    }
    let metrics = a.run_dir.join("metrics.jsonl");
    let rows = load_metrics(&metrics)?;
    let start_path = a.run_dir.join("validation_start.json");
    let start = load_start(&start_path)?;
    let kind = if rows.iter().any(|(_, v)| v.get("rollout").is_some()) {
        "RL (GRPO/DAPO)"
    } else if rows.iter().any(|(_, v)| v.get("tokens").is_some()) {
        "SFT"
    } else {
        "unknown"
    };
    let mut facts = vec![
        ("run".to_string(), a.run_dir.display().to_string()),
        ("kind".into(), kind.into()),
        (
            "steps".into(),
            format!("{} ({}–{})", rows.len(), rows[0].0, rows[rows.len() - 1].0),
        ),
        ("metrics".into(), metrics.display().to_string()),
    ];
    if start.is_some() {
        facts.push(("step-0 validation".into(), start_path.display().to_string()));
    }
    let report = TrainingReport {
        title: format!("recode training report: {}", a.run_dir.display()),
        facts,
        sections: training_sections(&rows, start.as_ref()),
    };
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.run_dir.join("report.html"));
    write_html(&out, &render_training_report(&report))
}

/// A run's last greedy validation, per prompt (`validation/step-N.jsonl`, largest N).
struct LastValidation {
    step: u64,
    es_star: Vec<f64>,
    exact: Vec<bool>,
    /// Answers equal to the old code (`indicators.unchanged`; absent in older runs).
    copies: Option<usize>,
    /// Answers with the right format (`indicators.format_ok`).
    format_ok: usize,
    /// Completions cut at `max_completion_length`.
    truncated: usize,
}

impl LastValidation {
    /// Prompts answered exactly.
    fn exact_count(&self) -> usize {
        self.exact.iter().filter(|x| **x).count()
    }

    /// One line of figures: mean ES*, exact matches, copies of the old code, format, truncation.
    fn summary(&self) -> String {
        let n = self.es_star.len();
        let mean = self.es_star.iter().sum::<f64>() / n.max(1) as f64;
        let exact = self.exact_count();
        let copies = self
            .copies
            .map(|c| format!(", {c} copies of the old code"))
            .unwrap_or_default();
        format!(
            "step {}: ES* {mean:.4}, exact match {exact}/{n}{copies}, format {}/{n}, truncated {}",
            self.step, self.format_ok, self.truncated
        )
    }
}

/// Reads the last `validation/step-N.jsonl` of a run directory, if it validated at all.
fn last_validation(dir: &Path) -> anyhow::Result<Option<LastValidation>> {
    let vdir = dir.join("validation");
    if !vdir.is_dir() {
        return Ok(None);
    }
    let mut last: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(&vdir).with_context(|| format!("reading {}", vdir.display()))? {
        let path = entry?.path();
        let step = path.file_name().and_then(|n| n.to_str()).and_then(|n| {
            n.strip_prefix("step-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        });
        if let Some(step) = step {
            if last.as_ref().is_none_or(|(s, _)| step > *s) {
                last = Some((step, path));
            }
        }
    }
    let Some((step, path)) = last else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (mut es_star, mut exact) = (Vec::new(), Vec::new());
    let (mut copies, mut format_ok, mut truncated) = (Some(0), 0, 0);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
        let field =
            |key: &str| num(&v, key).with_context(|| format!("{}: no numeric `{key}` field", at()));
        es_star.push(field("reward_components.es_star")?);
        exact.push(field("indicators.exact_match")? > 0.5);
        format_ok += usize::from(field("indicators.format_ok")? > 0.5);
        truncated += usize::from(v.get("truncated").and_then(Value::as_bool) == Some(true));
        copies = match (copies, num(&v, "indicators.unchanged")) {
            (Some(c), Some(u)) => Some(c + usize::from(u > 0.5)),
            _ => None,
        };
    }
    Ok(Some(LastValidation {
        step,
        es_star,
        exact,
        copies,
        format_ok,
        truncated,
    }))
}

/// Paired difference of two runs' last validations on the same prompts: mean ES* with its
/// bootstrap interval and exact-match gains/losses with McNemar's p (is it more than noise?).
fn paired_line(base: &LastValidation, other: &LastValidation) -> String {
    if base.es_star.len() != other.es_star.len() {
        return format!(
            "not compared: {} vs {} validation prompts",
            other.es_star.len(),
            base.es_star.len()
        );
    }
    let es = recode_eval::paired::mean_difference(&base.es_star, &other.es_star, 10_000, 0);
    let em = recode_eval::paired::outcome_change(&base.exact, &other.exact);
    format!(
        "step {} vs step {} on {} prompts: ES* {:+.4} (95% paired bootstrap {:+.4} to {:+.4}); \
         exact match {} vs {} (+{} -{}, McNemar p = {:.3})",
        other.step,
        base.step,
        base.es_star.len(),
        es.mean,
        es.low,
        es.high,
        other.exact_count(),
        base.exact_count(),
        em.gained,
        em.lost,
        em.p_value
    )
}

/// Loads a run directory: its metrics rows and step-0 validation.
fn load_run(dir: &Path) -> anyhow::Result<(Vec<Row>, Option<Value>)> {
    if !dir.is_dir() {
        bail!("{}: no such run directory", dir.display());
    }
    let rows = load_metrics(&dir.join("metrics.jsonl"))?;
    let start = load_start(&dir.join("validation_start.json"))?;
    Ok((rows, start))
}

fn run_runs(a: &RunsArgs) -> anyhow::Result<()> {
    if !a.labels.is_empty() && a.labels.len() != a.run_dirs.len() {
        bail!(
            "--labels has {} entries for {} run directories",
            a.labels.len(),
            a.run_dirs.len()
        );
    }
    let mut facts = Vec::new();
    let metric_charts: [(&str, &str, &str, bool); 3] = [
        (
            "validation ES*",
            "mean ES*",
            "reward_components.es_star",
            false,
        ),
        (
            "validation exact match",
            "rate",
            "indicators.exact_match",
            true,
        ),
        (
            "validation format correct",
            "rate",
            "indicators.format_ok",
            true,
        ),
    ];
    let mut validation: Vec<Vec<Series>> = vec![Vec::new(); metric_charts.len()];
    let mut reward = Vec::new();
    let mut baseline: Option<(String, LastValidation)> = None;
    for (dir, label) in a.run_dirs.iter().zip(run_labels(&a.labels, &a.run_dirs)) {
        let (rows, start) = load_run(dir)?;
        if let Some(last) = last_validation(dir)? {
            let summary = last.summary();
            println!("{label}: {summary}");
            facts.push((format!("{label}, last validation"), summary));
            match &baseline {
                None => baseline = Some((label.clone(), last)),
                Some((base_label, base)) => {
                    let line = paired_line(base, &last);
                    println!("{label} vs {base_label}: {line}");
                    facts.push((format!("{label} vs {base_label}"), line));
                }
            }
        }
        let points = validation_points(&rows, start.as_ref());
        facts.push((
            label.clone(),
            format!(
                "{}: {} steps, {} validations",
                dir.display(),
                rows.len(),
                points.len()
            ),
        ));
        for (slot, (_, _, path, _)) in validation.iter_mut().zip(metric_charts) {
            slot.push(field(&points, &label, path));
        }
        reward.push(field(&rows, &label, "rollout.reward_mean"));
    }
    let mut charts: Vec<LineChart> = metric_charts
        .iter()
        .zip(validation)
        .map(|((title, y, _, rate), series)| chart(title, y, series, *rate))
        .collect();
    charts.push(chart("rollout reward (mean)", "reward", reward, false));
    let report = TrainingReport {
        title: "recode: training runs compared".into(),
        facts,
        sections: vec![(
            "validation (greedy, held-out split) and reward".into(),
            charts,
        )],
    };
    write_html(&a.output, &render_training_report(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(dirs: &[&str]) -> Vec<String> {
        let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
        run_labels(&[], &dirs)
    }

    #[test]
    fn run_labels_are_the_shortest_distinct_path_suffixes() {
        assert_eq!(labels(&["runs/sft", "runs/grpo"]), ["sft", "grpo"]);
        assert_eq!(
            labels(&["/r/learning/sft", "/r/edit25/grpo", "/r/r2/grpo"]),
            ["learning/sft", "edit25/grpo", "r2/grpo"]
        );
        assert_eq!(labels(&["x/a/out", "y/a/out"]), ["x/a/out", "y/a/out"]);
        // The same directory twice cannot be told apart: the full paths are kept.
        assert_eq!(labels(&["/r/a", "/r/a"]), ["/r/a", "/r/a"]);
        // `.` is named after the directory it is, never an empty label.
        let cwd = std::env::current_dir().unwrap();
        let name = cwd.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(labels(&[".", "/r/grpo"]), [name, "grpo".to_string()]);
        let given = vec!["SFT".to_string(), "RL".to_string()];
        assert_eq!(
            run_labels(&given, &[PathBuf::from("a"), PathBuf::from("a")]),
            given
        );
    }
}
