//! The overlay of several training runs (`recode report runs A B …`): validation ES*, exact
//! match and format rate per step and the rollout reward, one line per run; each run's last
//! validation compared prompt by prompt with the first run's (paired bootstrap interval of
//! ΔES*, McNemar test of exact match).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ReportError;
use crate::eval::run_labels;
use crate::line::{LineChart, Series};
use crate::metrics::{field, num, RunData};
use crate::page::TrainingReport;
use crate::training::chart;

/// A run's last greedy validation, per prompt (`validation/step-N.jsonl`, largest N).
#[derive(Debug, Clone, PartialEq)]
pub struct LastValidation {
    /// The step N of the file.
    pub step: u64,
    /// ES* per prompt.
    pub es_star: Vec<f64>,
    /// Exact match per prompt.
    pub exact: Vec<bool>,
    /// Answers equal to the old code (`indicators.unchanged`; absent in older runs).
    pub copies: Option<usize>,
    /// Answers with the right format (`indicators.format_ok`).
    pub format_ok: usize,
    /// Completions cut at `max_completion_length`.
    pub truncated: usize,
}

impl LastValidation {
    /// Reads the last `validation/step-N.jsonl` of a run directory, if it validated at all.
    pub fn load(dir: &Path) -> Result<Option<Self>, ReportError> {
        match last_validation_file(&dir.join("validation"))? {
            Some((step, path)) => Self::read(step, &path).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the per-prompt records of `path` (validation at `step`).
    fn read(step: u64, path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
        let mut last = LastValidation {
            step,
            es_star: Vec::new(),
            exact: Vec::new(),
            copies: Some(0),
            format_ok: 0,
            truncated: 0,
        };
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                last.add_line(path, i + 1, line)?;
            }
        }
        Ok(last)
    }

    /// Adds one prompt's record (line `line` of `path`).
    fn add_line(&mut self, path: &Path, line: usize, text: &str) -> Result<(), ReportError> {
        let v: Value = serde_json::from_str(text).map_err(|source| ReportError::InvalidJson {
            path: path.to_path_buf(),
            line: Some(line),
            source,
        })?;
        let field = |key: &str| {
            num(&v, key).ok_or_else(|| ReportError::MissingNumber {
                path: path.to_path_buf(),
                line,
                key: key.to_string(),
            })
        };
        self.es_star.push(field("reward_components.es_star")?);
        self.exact.push(field("indicators.exact_match")? > 0.5);
        self.format_ok += usize::from(field("indicators.format_ok")? > 0.5);
        self.truncated += usize::from(v.get("truncated").and_then(Value::as_bool) == Some(true));
        self.copies = match (self.copies, num(&v, "indicators.unchanged")) {
            (Some(c), Some(u)) => Some(c + usize::from(u > 0.5)),
            _ => None,
        };
        Ok(())
    }

    /// Prompts answered exactly.
    pub fn exact_count(&self) -> usize {
        self.exact.iter().filter(|x| **x).count()
    }

    /// One line of figures: mean ES*, exact matches, copies of the old code, format, truncation.
    pub fn summary(&self) -> String {
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

    /// Paired difference to `base`'s last validation on the same prompts: mean ES* with its
    /// bootstrap interval and exact-match gains/losses with McNemar's p (is it more than noise?).
    pub fn paired_line(&self, base: &LastValidation) -> String {
        if base.es_star.len() != self.es_star.len() {
            return format!(
                "not compared: {} vs {} validation prompts",
                self.es_star.len(),
                base.es_star.len()
            );
        }
        let es = recode_eval::paired::mean_difference(&base.es_star, &self.es_star, 10_000, 0);
        let em = recode_eval::paired::outcome_change(&base.exact, &self.exact);
        format!(
            "step {} vs step {} on {} prompts: ES* {:+.4} (95% paired bootstrap {:+.4} to {:+.4}); \
             exact match {} vs {} (+{} -{}, McNemar p = {:.3})",
            self.step,
            base.step,
            base.es_star.len(),
            es.mean,
            es.low,
            es.high,
            self.exact_count(),
            base.exact_count(),
            em.gained,
            em.lost,
            em.p_value
        )
    }
}

/// The `step-N.jsonl` with the largest N in `vdir`, if any.
fn last_validation_file(vdir: &Path) -> Result<Option<(u64, PathBuf)>, ReportError> {
    if !vdir.is_dir() {
        return Ok(None);
    }
    let mut last: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(vdir).map_err(|e| ReportError::read(vdir, e))? {
        let path = entry.map_err(|e| ReportError::read(vdir, e))?.path();
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
    Ok(last)
}

/// The overlay page's content and the lines also worth printing.
#[derive(Debug, Clone)]
pub struct RunsReport {
    /// The page (render with [`crate::render_training_report`]).
    pub page: TrainingReport,
    /// `label: last validation` and `label vs base: paired difference` lines.
    pub lines: Vec<String>,
}

/// The overlaid validation charts: `(title, y label, metric path, rate)`.
const VALIDATION_CHARTS: [(&str, &str, &str, bool); 3] = [
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

/// The series of one run in each overlaid chart: one per [`VALIDATION_CHARTS`], then the
/// rollout reward.
fn run_series(run: &RunData, label: &str) -> Vec<Series> {
    let points = run.validation();
    VALIDATION_CHARTS
        .iter()
        .map(|(_, _, path, _)| field(&points, label, path))
        .chain([field(&run.rows, label, "rollout.reward_mean")])
        .collect()
}

/// Overlays the runs in `dirs` (labelled `labels`, or after their paths when empty).
pub fn runs_report(dirs: &[PathBuf], labels: &[String]) -> Result<RunsReport, ReportError> {
    let labels = run_labels(labels, dirs, "run directories")?;
    let (mut facts, mut lines) = (Vec::new(), Vec::new());
    let mut overlay: Vec<Vec<Series>> = vec![Vec::new(); VALIDATION_CHARTS.len() + 1];
    let mut baseline: Option<(String, LastValidation)> = None;
    for (dir, label) in dirs.iter().zip(labels) {
        let run = RunData::load(dir)?;
        if let Some(last) = LastValidation::load(dir)? {
            let summary = last.summary();
            lines.push(format!("{label}: {summary}"));
            facts.push((format!("{label}, last validation"), summary));
            match &baseline {
                None => baseline = Some((label.clone(), last)),
                Some((base_label, base)) => {
                    let key = format!("{label} vs {base_label}");
                    let paired = last.paired_line(base);
                    lines.push(format!("{key}: {paired}"));
                    facts.push((key, paired));
                }
            }
        }
        let summary = format!(
            "{}: {} steps, {} validations",
            dir.display(),
            run.rows.len(),
            run.validation().len()
        );
        facts.push((label.clone(), summary));
        for (slot, s) in overlay.iter_mut().zip(run_series(&run, &label)) {
            slot.push(s);
        }
    }
    let titles = VALIDATION_CHARTS
        .iter()
        .map(|&(title, y, _, rate)| (title, y, rate))
        .chain([("rollout reward (mean)", "reward", false)]);
    let charts: Vec<LineChart> = titles
        .zip(overlay)
        .map(|((title, y, rate), series)| chart(title, y, series, rate))
        .collect();
    let page = TrainingReport {
        title: "recode: training runs compared".into(),
        facts,
        sections: vec![(
            "validation (greedy, held-out split) and reward".into(),
            charts,
        )],
    };
    Ok(RunsReport { page, lines })
}
