//! Error type of the crate: every failure names the file, tensor or field involved.

use std::path::PathBuf;

/// Errors raised while loading, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parser error (carries line and column).
        source: serde_json::Error,
    },
    /// The model configuration is missing a field or has an unsupported value.
    #[error("model config: {0}")]
    Config(String),
    /// A weight tensor is missing or has the wrong shape.
    #[error("weights: {0}")]
    Weights(String),
    /// The tokenizer could not be built or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An adapter could not be created, loaded or saved.
    #[error("adapter: {0}")]
    Adapter(String),
    /// The inputs of a forward pass or of generation are inconsistent.
    #[error("invalid input: {0}")]
    Input(String),
    /// Downloading from the Hugging Face hub failed.
    #[error("hub download of {repo}: {message}")]
    Hub {
        /// The repository id.
        repo: String,
        /// What went wrong.
        message: String,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads a JSON file into a `serde_json::Value`, naming the file on failure.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}
