//! Typed errors of mining, synthesis and verification.

use std::path::PathBuf;

/// Everything that stops a curate command (a rejected candidate is a verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// An environment could not be found or built.
    #[error(transparent)]
    Venv(#[from] recode_venv::VenvError),
    /// No interpreter on which both versions install and import.
    #[error("no Python on which {dist} {old} and {new} both install and import; tried:\n{tried}")]
    NoCommonPython {
        /// Distribution.
        dist: String,
        /// Old version.
        old: String,
        /// New version.
        new: String,
        /// One line per interpreter tried, with why it failed.
        tried: String,
    },
    /// The registry has no such distribution or version (checked once before any install).
    #[error("{dist} {version} is not on the package index ({detail})")]
    NoSuchVersion {
        /// Distribution.
        dist: String,
        /// Version asked for.
        version: String,
        /// The versions the index has, or pip's error.
        detail: String,
    },
    /// The introspection snapshot failed.
    #[error("snapshot of {dist} {version} failed: {detail}")]
    Snapshot {
        /// Distribution.
        dist: String,
        /// Version.
        version: String,
        /// What went wrong (stderr tail, timeout).
        detail: String,
    },
    /// The sandbox could not start or run.
    #[error(transparent)]
    Sandbox(#[from] recode_sandbox::ExecError),
    /// No interpreter can run the sandbox's fork server.
    #[error("no Python >= {minimum} for the sandbox's fork server")]
    NoServerPython {
        /// The lowest version that runs it.
        minimum: &'static str,
    },
    /// An input line is not a valid record.
    #[error("{}:{line}: {source}", path.display())]
    Input {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The JSON error (names the field and column).
        #[source]
        source: serde_json::Error,
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

impl CurateError {
    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CurateError {
        CurateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`CurateError`].
pub type Result<T> = std::result::Result<T, CurateError>;
