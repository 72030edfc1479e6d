//! [`ReportError`]: why a report could not be built, naming the file, line or key concerned.

use std::path::{Path, PathBuf};

/// Why a report could not be built; every variant names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A run directory given to a training report does not exist.
    #[error("{}: no such run directory", path.display())]
    NoRunDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A file (or one line of a JSONL file) is not valid JSON.
    #[error("{}: invalid JSON", at(path, *line))]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The 1-based line for JSONL files.
        line: Option<usize>,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON value that must be an object is not one.
    #[error("{}: expected a JSON object", at(path, *line))]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The 1-based line for JSONL files.
        line: Option<usize>,
    },
    /// A metrics line has no integer `step`.
    #[error("{}:{line}: no integer `step` field", path.display())]
    MissingStep {
        /// The metrics file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A validation line lacks a number every line must have.
    #[error("{}:{line}: no numeric `{key}` field", path.display())]
    MissingNumber {
        /// The validation file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The dotted key, e.g. `reward_components.es_star`.
        key: String,
    },
    /// A metrics file has no records.
    #[error("{}: no metrics lines", path.display())]
    NoMetrics {
        /// The metrics file.
        path: PathBuf,
    },
    /// A file is not a `recode eval run` summary.
    #[error("{}: not a `recode eval run` summary", path.display())]
    NotASummary {
        /// The file.
        path: PathBuf,
        /// Why it does not deserialise.
        #[source]
        source: serde_json::Error,
    },
    /// The number of labels differs from the number of runs.
    #[error("--labels has {labels} entries for {runs} {what}")]
    LabelCount {
        /// Labels given.
        labels: usize,
        /// Runs given.
        runs: usize,
        /// What the runs are (`results`, `run directories`).
        what: &'static str,
    },
    /// plotters failed to draw a chart.
    #[error("drawing chart {title:?}")]
    Chart {
        /// The chart's title.
        title: String,
        /// The plotters error.
        #[source]
        source: plotters::drawing::DrawingAreaErrorKind<std::io::Error>,
    },
    /// The HTML template failed to render.
    #[error("rendering template {template}")]
    Template {
        /// The template's name.
        template: &'static str,
        /// The minijinja error.
        #[source]
        source: minijinja::Error,
    },
}

/// `path` or `path:line`.
fn at(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}

impl ReportError {
    /// A [`ReportError::Read`] of `path`.
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        ReportError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}
