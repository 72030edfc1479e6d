//! One sandboxed run of a snippet on one version: the job (`python/runner.py` + the snippet in a
//! fresh interpreter) and its outcome read from the runner's report line.

use std::path::Path;

use recode_sandbox::{ExecJob, ExecResult, Job};
use serde::{Deserialize, Serialize};

/// The embedded runner.
pub const RUNNER_PY: &str = include_str!("../../python/runner.py");

/// A warning the snippet's run emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWarning {
    /// Warning class name.
    pub category: String,
    /// Text.
    pub message: String,
    /// File name it was reported at.
    #[serde(default)]
    pub filename: String,
    /// Emitted by code in site-packages (the library or its dependencies), not the stdlib or
    /// the snippet.
    #[serde(default)]
    pub library: bool,
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// `ok`, `error` (raised), `exit` (sys.exit before the end), `no_marker` (left without a
    /// report: os._exit, crash), `timeout`, `memory_limit`, `setup_error`.
    pub status: String,
    /// The error line (exception, exit status) when not ok.
    pub error: Option<String>,
    /// Warnings seen.
    #[serde(default)]
    pub warnings: Vec<RunWarning>,
}

impl RunOutcome {
    /// Ran to its last line without raising.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }

    /// One line for evidence files.
    pub fn summary(&self) -> String {
        match &self.error {
            Some(e) => format!("{}: {e}", self.status),
            None => self.status.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Report {
    status: String,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<RunWarning>,
}

/// The job running `code` with `python` (a venv's interpreter); `nonce` tags the report line.
pub fn snippet_job(python: &Path, code: &str, nonce: &str, timeout_secs: f64) -> Job {
    let mut job = ExecJob::new([
        python.to_string_lossy().into_owned(),
        "-I".into(),
        "runner.py".into(),
        nonce.to_string(),
    ])
    .file("runner.py", RUNNER_PY)
    .file("snippet.py", code);
    job.timeout_secs = Some(timeout_secs);
    Job::Exec(job)
}

/// Reads the runner's report from a result; without one, the sandbox's error class decides.
pub fn outcome(result: &ExecResult, nonce: &str) -> RunOutcome {
    let report = result
        .stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(nonce))
        .and_then(|json| serde_json::from_str::<Report>(json).ok());
    if let Some(r) = report {
        return RunOutcome {
            status: r.status,
            error: r.error,
            warnings: r.warnings,
        };
    }
    let class = result.error_class();
    let status = match class.as_str() {
        "timeout" | "memory_limit" | "setup_error" => class.clone(),
        _ => "no_marker".to_string(),
    };
    let detail = result
        .setup_error
        .clone()
        .unwrap_or_else(|| format!("{class}: the snippet ended without reaching its last line"));
    RunOutcome {
        status,
        error: Some(detail),
        warnings: Vec::new(),
    }
}
