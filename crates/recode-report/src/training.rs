//! The training report of one run (`recode report train RUN_DIR`): which curves are drawn
//! from which metrics fields, in which sections.

use std::path::Path;

use serde_json::Value;

use crate::error::ReportError;
use crate::line::{LineChart, Series};
use crate::metrics::{field, num, per_key, series, Row, RunData};
use crate::page::{render_training_report, TrainingReport};

/// A chart section: its heading and charts.
pub type Section = (String, Vec<LineChart>);

/// A step chart of the non-empty `series`; `rate` fixes the y range to 0–1.
pub fn chart(title: &str, y_label: &str, series: Vec<Series>, rate: bool) -> LineChart {
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
    let with_mean: Vec<(f64, &Value)> = rows
        .iter()
        .filter(|(_, v)| num(v, "rollout.reward_mean").is_some())
        .map(|(s, v)| (*s as f64, v))
        .collect();
    let at = |path: &str| -> Vec<(f64, f64)> {
        with_mean
            .iter()
            .map(|&(s, v)| (s, num(v, path).unwrap_or(f64::NAN)))
            .collect()
    };
    Series {
        name: "mean ± std".into(),
        points: at("rollout.reward_mean"),
        band: Some(at("rollout.reward_std").into_iter().map(|p| p.1).collect()),
    }
}

/// Reward total, components and indicator rates of the rollouts.
fn reward_section(rows: &[Row]) -> Section {
    let charts = vec![
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
    ];
    ("reward".into(), charts)
}

/// Loss, learning rate, KL, clipping, entropy, drift and gradient norm.
fn update_section(rows: &[Row]) -> Section {
    let one = |title: &str, y: &str, name: &str, path: &str| {
        chart(title, y, vec![field(rows, name, path)], false)
    };
    let clip = vec![
        field(rows, "ε clip", "clip_fraction"),
        field(rows, "dual clip", "dual_clip_fraction"),
    ];
    let charts = vec![
        one("loss", "loss", "loss", "loss"),
        one("learning rate", "lr", "lr", "lr"),
        one("KL to reference", "KL / token", "KL", "kl"),
        chart("clip fraction", "fraction of tokens", clip, false),
        one("entropy", "nats / token", "entropy", "entropy"),
        one("policy drift", "mean |log ρ|", "|log ρ|", "abs_log_ratio"),
        one(
            "gradient norm (before clipping)",
            "norm",
            "grad norm",
            "grad_norm",
        ),
    ];
    ("policy update".into(), charts)
}

/// Response length, truncation and the groups dynamic sampling kept.
fn rollout_section(rows: &[Row]) -> Section {
    let kept = |v: &Value| {
        let seen = num(v, "rollout.filter.groups_seen")?;
        (seen > 0.0).then(|| num(v, "rollout.filter.groups_kept").unwrap_or(0.0) / seen)
    };
    let charts = vec![
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
    ];
    ("rollouts".into(), charts)
}

/// Tokens per second, time per step phase, and SFT's tokens per step.
fn throughput_section(rows: &[Row]) -> Section {
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
    let speed = vec![
        field(rows, "generated tokens/s", "timing.tokens_per_s"),
        series(rows, "trained tokens/s", sft_tokens_per_s),
    ];
    let time = vec![
        field(rows, "generate", &timing("generate")),
        field(rows, "score", &timing("score")),
        field(rows, "learn", &timing("learn")),
        series(rows, "total", total_time),
        field(rows, "step", "step_s"),
    ];
    let charts = vec![
        chart("throughput", "tokens / s", speed, false),
        chart("step time", "seconds", time, false),
        chart(
            "trained tokens per step",
            "tokens",
            vec![field(rows, "tokens", "tokens")],
            false,
        ),
    ];
    ("throughput".into(), charts)
}

/// Greedy validation on the held-out split (step 0 included when it ran).
fn validation_section(validation: &[Row]) -> Section {
    let charts = vec![
        chart(
            "validation reward components",
            "mean",
            per_key(validation, "reward_components"),
            false,
        ),
        chart(
            "validation indicators",
            "rate",
            per_key(validation, "indicators"),
            true,
        ),
        chart(
            "validation response length",
            "tokens",
            vec![field(validation, "mean", "completion_len_mean")],
            false,
        ),
    ];
    ("validation (greedy, held-out split)".into(), charts)
}

/// The chart sections of a run (RL and SFT metrics lines alike; absent fields give no line).
pub fn training_sections(run: &RunData) -> Vec<Section> {
    vec![
        reward_section(&run.rows),
        update_section(&run.rows),
        rollout_section(&run.rows),
        throughput_section(&run.rows),
        validation_section(&run.validation()),
    ]
}

/// `RL (GRPO/DAPO)`, `SFT` or `unknown`, from the fields of the metrics lines.
fn run_kind(rows: &[Row]) -> &'static str {
    if rows.iter().any(|(_, v)| v.get("rollout").is_some()) {
        "RL (GRPO/DAPO)"
    } else if rows.iter().any(|(_, v)| v.get("tokens").is_some()) {
        "SFT"
    } else {
        "unknown"
    }
}

/// The training report of a run: its facts (kind, steps, source files) and curves.
pub fn training_report(run: &RunData) -> TrainingReport {
    let (first, last) = (run.rows[0].0, run.rows[run.rows.len() - 1].0);
    let mut facts = vec![
        ("run".to_string(), run.dir.display().to_string()),
        ("kind".into(), run_kind(&run.rows).into()),
        (
            "steps".into(),
            format!("{} ({first}–{last})", run.rows.len()),
        ),
        (
            "metrics".into(),
            run.dir.join("metrics.jsonl").display().to_string(),
        ),
    ];
    if run.start.is_some() {
        let start = run.dir.join("validation_start.json");
        facts.push(("step-0 validation".into(), start.display().to_string()));
    }
    TrainingReport {
        title: format!("recode training report: {}", run.dir.display()),
        facts,
        sections: training_sections(run),
    }
}

/// Reads a run directory and renders its training report as a self-contained HTML page.
pub fn train_report_html(run_dir: &Path) -> Result<String, ReportError> {
    render_training_report(&training_report(&RunData::load(run_dir)?))
}
