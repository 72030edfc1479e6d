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
    /// A model file sets a key to a value recode does not implement (YaRN RoPE scaling, an
    /// unknown pre-tokenizer, ...). Such values change the model's function, so they are refused
    /// instead of being ignored.
    #[error("`{key}` = {value} is not supported (supported: {supported})")]
    Unsupported {
        /// The metadata key (`llama.rope.scaling.type`, `tokenizer.ggml.pre`,
        /// `rope_scaling.rope_type`, ...).
        key: String,
        /// The value found, as written in the file (`<missing>` when the key is absent).
        value: String,
        /// What recode accepts for this key.
        supported: String,
    },
    /// A GGUF tensor is not part of the Llama/Qwen2 decoder or has an unusable shape or content.
    #[error("GGUF tensor `{name}`: {reason}")]
    GgufTensor {
        /// The tensor's GGUF name (`rope_freqs.weight`, ...).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
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
    /// An [`ModelError::Unsupported`] for `key` set to `value`.
    pub(crate) fn unsupported(
        key: impl Into<String>,
        value: impl Into<String>,
        supported: impl Into<String>,
    ) -> Self {
        Self::Unsupported {
            key: key.into(),
            value: value.into(),
            supported: supported.into(),
        }
    }

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
