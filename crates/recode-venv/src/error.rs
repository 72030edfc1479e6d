//! Typed errors of interpreter discovery and environment building.

use std::path::PathBuf;

/// Everything that can go wrong finding an interpreter or building an environment.
#[derive(Debug, thiserror::Error)]
pub enum VenvError {
    /// No interpreter matches the requested version.
    #[error(
        "no Python {requested} found (looked in {}; found: {})",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoInterpreter {
        /// The version (or path) asked for.
        requested: String,
        /// Where discovery looked (pyenv versions directory, PATH entries).
        searched: Vec<PathBuf>,
        /// Versions that were found instead.
        available: Vec<String>,
    },
    /// An interpreter exists but does not run or answer the version probe.
    #[error("interpreter {} does not work: {cause}", path.display())]
    BrokenInterpreter {
        /// Interpreter path.
        path: PathBuf,
        /// How the version probe failed.
        #[source]
        cause: ProbeError,
    },
    /// `python -m venv` failed.
    #[error("creating the virtualenv {dir} with Python {version} failed:\n{tail}")]
    CreateVenv {
        /// Target directory.
        dir: PathBuf,
        /// Interpreter version.
        version: String,
        /// Last lines of its output.
        tail: String,
    },
    /// pip failed (a version that does not exist, a package that does not build or install).
    #[error(
        "pip {step} of {requirements} on Python {version} failed (last lines of pip):\n{tail}"
    )]
    Pip {
        /// `install`, `wheel`, `freeze` or `upgrade`.
        step: String,
        /// The requirements, space-separated.
        requirements: String,
        /// Interpreter version.
        version: String,
        /// Last ~20 lines of pip's output.
        tail: String,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// How an interpreter's version probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The interpreter could not be started.
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    /// The probe exited unsuccessfully.
    #[error("{status}: {stderr}")]
    Exit {
        /// Exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The probe printed something else than its JSON answer.
    #[error("probe output {output:?}: {source}")]
    Output {
        /// What it printed.
        output: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl VenvError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> VenvError {
        VenvError::Io {
            path: path.into(),
            source,
        }
    }
}
