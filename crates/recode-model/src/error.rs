//! Error type of the crate: every failure names the file, tensor or field involved, and each
//! cause has its own variant with structured fields, so a caller can tell a missing tensor from a
//! bad shape, or a missing file from a bad key.

use std::path::{Path, PathBuf};

/// An error of an underlying library kept as the [`std::error::Error::source`] of a
/// [`ModelError`] (the `tokenizers` crate's errors are boxed trait objects).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// A field of a JSON file (`config.json`, `adapter_config.json`, a safetensors index) is
    /// missing or has the wrong type.
    #[error("{path}: field `{field}` is missing or not {expected}")]
    JsonField {
        /// The file involved.
        path: PathBuf,
        /// The field (dotted for nested ones: `rope_scaling.factor`).
        field: String,
        /// What the field must be (`an integer`, `a number`, `a list of names`, ...).
        expected: &'static str,
    },
    /// A model to load is neither a file, a directory nor a hub id.
    #[error("{spec}: no such file or directory (and not a hub id like `org/name`)")]
    ModelNotFound {
        /// The model as given (path or hub id).
        spec: String,
    },
    /// The model's attention head counts do not fit together.
    #[error(
        "model config: num_attention_heads ({heads}) must be a positive multiple of \
         num_key_value_heads ({kv_heads})"
    )]
    HeadCounts {
        /// `num_attention_heads`.
        heads: usize,
        /// `num_key_value_heads`.
        kv_heads: usize,
    },
    /// The head dimension is odd or zero (rotary embeddings rotate pairs).
    #[error("model config: head_dim ({head_dim}) must be even")]
    HeadDim {
        /// `head_dim`.
        head_dim: usize,
    },
    /// The RoPE frequency factors do not match the head dimension.
    #[error("model config: {factors} RoPE frequency factors for head_dim {head_dim} (need head_dim / 2)")]
    RopeFactors {
        /// How many factors there are.
        factors: usize,
        /// `head_dim`.
        head_dim: usize,
    },
    /// A model file sets a key to a value recode does not implement (YaRN RoPE scaling, an
    /// unknown pre-tokenizer, ...). Such values change the model's function, so they are refused
    /// instead of being ignored.
    #[error("`{key}` = {value} is not supported (supported: {supported})")]
    Unsupported {
        /// The metadata key (`llama.rope.scaling.type`, `tokenizer.ggml.pre`,
        /// `rope_scaling.rope_type`, ...), prefixed with its file when it comes from one.
        key: String,
        /// The value found, as written in the file (`<missing>` when the key is absent).
        value: String,
        /// What recode accepts for this key.
        supported: String,
    },
    /// A file is not a readable GGUF file.
    #[error("{path}: not a readable GGUF file: {source}")]
    GgufFile {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: Box<candle_core::Error>,
    },
    /// A GGUF metadata key is absent.
    #[error("GGUF: missing metadata `{key}`")]
    GgufMissingKey {
        /// The metadata key (`llama.block_count`, `tokenizer.ggml.tokens`, ...).
        key: String,
    },
    /// A GGUF metadata value has the wrong type.
    #[error("GGUF: metadata `{key}`: {source}")]
    GgufMetadata {
        /// The metadata key.
        key: String,
        /// The conversion error.
        source: Box<candle_core::Error>,
    },
    /// A GGUF tensor could not be read.
    #[error("{path}: tensor {name}: {source}")]
    GgufTensorRead {
        /// The file.
        path: PathBuf,
        /// The tensor's GGUF name.
        name: String,
        /// The reader's error.
        source: Box<candle_core::Error>,
    },
    /// A GGUF tensor is not part of the Llama/Qwen2 decoder or has an unusable shape or content.
    #[error("GGUF tensor `{name}`: {reason}")]
    GgufTensor {
        /// The tensor's GGUF name (`rope_freqs.weight`, ...).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A safetensors file could not be read or written.
    #[error("{path}: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// candle's safetensors error.
        source: Box<candle_core::Error>,
    },
    /// A model directory has no safetensors weights.
    #[error("weights: {dir}: no *.safetensors files")]
    NoWeightFiles {
        /// The directory.
        dir: PathBuf,
    },
    /// A tensor the model or an adapter needs is absent.
    #[error("{}missing tensor `{name}`", in_file(.file.as_deref()))]
    MissingTensor {
        /// The tensor's name (HF or PEFT naming).
        name: String,
        /// The file it was looked for in (`None`: the weights of a model being built).
        file: Option<PathBuf>,
    },
    /// A tensor's shape is not the one the model's config implies.
    #[error("{}tensor `{name}` has shape {actual:?}, expected {expected:?}", in_file(.file.as_deref()))]
    TensorShape {
        /// The tensor's name.
        name: String,
        /// Its shape.
        actual: Vec<usize>,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The file it comes from (`None`: the weights of a model being built).
        file: Option<PathBuf>,
    },
    /// A file holds a tensor that is not part of what is loaded.
    #[error("{}: unexpected tensor `{name}` ({hint})", file.display())]
    UnexpectedTensor {
        /// The tensor's name.
        name: String,
        /// The file.
        file: PathBuf,
        /// What the file may hold instead.
        hint: &'static str,
    },
    /// A block-quantised tensor's data does not match its shape.
    #[error("weights: {kind} tensor [{rows}, {cols}] has {bytes} bytes, expected {expected}")]
    PackedSize {
        /// The quantisation (`Q4_1`, `Q8_0`).
        kind: String,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes found.
        bytes: usize,
        /// Bytes the shape needs.
        expected: usize,
    },
    /// A row permutation of a block-quantised tensor is not a permutation of its rows.
    #[error(
        "weights: bad row permutation ({len} entries for {rows} rows, or an entry out of range)"
    )]
    PackedPermutation {
        /// Entries of the permutation.
        len: usize,
        /// Rows of the tensor.
        rows: usize,
    },
    /// The tokenizer could not be built from its specification.
    #[error("tokenizer: {}{source}", in_file(.file.as_deref()))]
    TokenizerBuild {
        /// `tokenizer.json`, when built from a file (`None`: from GGUF metadata).
        file: Option<PathBuf>,
        /// The `tokenizers` crate's error.
        source: BoxError,
    },
    /// Encoding or decoding text failed.
    #[error("tokenizer: {source}")]
    Tokenize {
        /// The `tokenizers` crate's error.
        source: BoxError,
    },
    /// A setting of an adapter config is out of range.
    #[error("adapter: `{field}` = {value} is invalid (expected {expected})")]
    AdapterSetting {
        /// The setting (`r`, `dropout`, `target_modules`).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// New adapters were requested while the current ones are merged into the weights.
    #[error("adapter: unmerge the current adapters before adding new ones")]
    AdaptersMerged,
    /// Adapters were to be saved from a model without any.
    #[error("adapter: the model has no adapters to save")]
    NoAdapters,
    /// The features of a product's input and weight differ.
    #[error("invalid input: {what}: input has {input} features, weight has {weight}")]
    Features {
        /// The product (`packed matmul`).
        what: &'static str,
        /// Features of the input.
        input: usize,
        /// Features (columns) of the weight.
        weight: usize,
    },
    /// An input tensor has the wrong shape.
    #[error("invalid input: {name} has shape {actual:?}, expected {expected}")]
    InputShape {
        /// The input (`input_ids`, `attention_mask`, `score_mask`).
        name: &'static str,
        /// Its shape.
        actual: Vec<usize>,
        /// The shape wanted (`[B, T]`, `[2, 7]`).
        expected: String,
    },
    /// A row index is outside the batch.
    #[error("invalid input: {what}: row {row} out of range for batch {rows}")]
    RowOutOfRange {
        /// The operation (`select_rows`).
        what: &'static str,
        /// The row asked for.
        row: usize,
        /// Rows in the batch.
        rows: usize,
    },
    /// A batch does not match the rows of the KV cache it continues.
    #[error("invalid input: batch of {rows} rows does not match the cache's {cache_rows} rows")]
    CacheRows {
        /// Rows of the call.
        rows: usize,
        /// Rows in the cache.
        cache_rows: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("invalid input: token id {token} out of range for a vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A numeric option is out of range.
    #[error("invalid input: {name} must be {expected}, got {value}")]
    InvalidOption {
        /// The option (`temperature`, `n`).
        name: &'static str,
        /// Its value.
        value: String,
        /// What is accepted (`> 0`, `>= 1`).
        expected: &'static str,
    },
    /// The inputs of a forward pass or of generation are inconsistent in another way (an empty
    /// batch or prompt, a gradient forward with a KV cache, ...).
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

/// `"{file}: "` for messages that name an optional file.
fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
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

    /// A [`ModelError::JsonField`] for `field` of `path`.
    pub(crate) fn json_field(
        path: &Path,
        field: impl Into<String>,
        expected: &'static str,
    ) -> Self {
        Self::JsonField {
            path: path.to_path_buf(),
            field: field.into(),
            expected,
        }
    }

    /// A [`ModelError::GgufMetadata`] for `key`.
    pub(crate) fn gguf_metadata(key: impl Into<String>, source: candle_core::Error) -> Self {
        Self::GgufMetadata {
            key: key.into(),
            source: Box::new(source),
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
