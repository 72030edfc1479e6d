//! Evaluation reports (`recode report eval DIR`, `recode report compare A B …`): reading
//! `summary.json` files of `recode eval run` and naming the runs.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use recode_eval::run::Summary;

use crate::error::ReportError;
use crate::page::{render_eval_report, SummaryWithLabel};

/// A `summary.json` read from a result directory (or given as the file itself).
#[derive(Debug, Clone)]
pub struct LoadedSummary {
    /// The `summary.json` file.
    pub file: PathBuf,
    /// The directory holding it (`.` for a bare file name).
    pub dir: PathBuf,
    /// Its contents.
    pub summary: Summary,
}

impl LoadedSummary {
    /// Reads `path/summary.json` when `path` is a directory, else `path` itself.
    pub fn load(path: &Path) -> Result<Self, ReportError> {
        let file = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| ReportError::read(&file, e))?;
        let summary = serde_json::from_str(&text).map_err(|source| ReportError::NotASummary {
            path: file.clone(),
            source,
        })?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(LoadedSummary { file, dir, summary })
    }
}

/// The label of each run: `given` when not empty (one per run, else
/// [`ReportError::LabelCount`] about `what`), otherwise [`path_labels`] of `dirs`.
pub fn run_labels(
    given: &[String],
    dirs: &[PathBuf],
    what: &'static str,
) -> Result<Vec<String>, ReportError> {
    if given.is_empty() {
        return Ok(path_labels(dirs));
    }
    if given.len() != dirs.len() {
        return Err(ReportError::LabelCount {
            labels: given.len(),
            runs: dirs.len(),
            what,
        });
    }
    Ok(given.to_vec())
}

/// The shortest trailing part of the canonical directory paths that tells all runs apart
/// (`a/grpo`, `b/grpo`; `.` is named after the directory it is); the full paths when none does.
pub fn path_labels(dirs: &[PathBuf]) -> Vec<String> {
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    let parts: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
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

/// One evaluation result as a page, and where its summary was read from.
#[derive(Debug, Clone)]
pub struct EvalPage {
    /// The `summary.json` read.
    pub summary_file: PathBuf,
    /// The HTML page.
    pub html: String,
}

/// The report of one `recode eval run` result (directory or `summary.json`), labelled
/// `label` or after its directory.
pub fn eval_report(result: &Path, label: Option<&str>) -> Result<EvalPage, ReportError> {
    let loaded = LoadedSummary::load(result)?;
    let label = match label {
        Some(l) => l.to_string(),
        None => path_labels(std::slice::from_ref(&loaded.dir)).remove(0),
    };
    let html = render_eval_report(&[SummaryWithLabel {
        label,
        summary: loaded.summary,
    }])?;
    Ok(EvalPage {
        summary_file: loaded.file,
        html,
    })
}

/// The comparison page of several results (the first is the baseline); `labels` empty or
/// one per result.
pub fn compare_report(results: &[PathBuf], labels: &[String]) -> Result<String, ReportError> {
    let loaded = results
        .iter()
        .map(|p| LoadedSummary::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let dirs: Vec<PathBuf> = loaded.iter().map(|l| l.dir.clone()).collect();
    let labels = run_labels(labels, &dirs, "results")?;
    let runs: Vec<SummaryWithLabel> = loaded
        .into_iter()
        .zip(labels)
        .map(|(l, label)| SummaryWithLabel {
            label,
            summary: l.summary,
        })
        .collect();
    render_eval_report(&runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(dirs: &[&str]) -> Vec<String> {
        let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
        path_labels(&dirs)
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
        let dirs = [PathBuf::from("a"), PathBuf::from("a")];
        assert_eq!(run_labels(&given, &dirs, "runs").unwrap(), given);
        let err = run_labels(&given[..1], &dirs, "run directories").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--labels has 1 entries for 2 run directories"
        );
    }
}
