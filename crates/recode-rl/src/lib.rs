//! `recode-rl`: GRPO and DAPO for rule-based RL on API-update data.
//!
//! The crate is model-agnostic: it talks to a model only through the [`policy`]
//! seams ([`Policy`] for log-probabilities and trainable variables, [`RolloutSource`]
//! for sampling, [`Rewarder`] for scoring). Pieces, each usable on its own:
//!
//! - [`component`]: the reward components `reward_funcs` names.
//! - [`config`]: TOML config with TRL/PEFT key names, `grpo`/`dapo` presets, layering.
//! - [`advantage`]: group advantages, dynamic-sampling filter, overlong shaping.
//! - [`loss`]: token-level clipped objective (asymmetric + dual clip), KL k1/k2/k3,
//!   aggregation whose gradient is invariant to micro-batch splits.
//! - [`optim`]: AdamW, schedules, gradient clipping, exportable state.
//! - [`checkpoint`]: atomic checkpoint directories, resume, metrics JSONL.
//! - [`resume`]: the resume guard (a checkpoint resumes only under its own configuration).
//! - [`trainer`]: the loop tying them together.
//! - [`lm`]: the seams implemented for `recode-model`'s causal LM (adapters or full weights).
//! - [`task`]: the ReCode task: prompts from update examples, the format + ES* rewarder.
//! - [`sft`]: the supervised baseline (cross-entropy on the assistant turn).

pub mod advantage;
pub mod checkpoint;
pub mod component;
pub mod config;
pub mod lm;
pub mod loss;
pub mod optim;
pub mod policy;
pub mod resume;
pub mod sft;
pub mod task;
pub mod tiny;
pub mod trainer;

pub use config::{resolve, Algo, KlReference, TrainConfig};
pub use policy::{
    Completion, Policy, PolicyOutput, PromptItem, Rewarder, RolloutSource, SamplingParams,
    TokenBatch,
};
pub use trainer::{StepMetrics, Trainer, ValidationMetrics};

/// Where a configuration layer came from (named by errors about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLayer {
    /// A `--config` TOML file.
    File(std::path::PathBuf),
    /// One `--set key=value` item, as written.
    Set(String),
}

impl std::fmt::Display for ConfigLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigLayer::File(path) => write!(f, "{}", path.display()),
            ConfigLayer::Set(item) => write!(f, "--set {item}"),
        }
    }
}

/// Errors of the RL crate: one variant per cause, with the file, line, key or value concerned.
#[derive(Debug, thiserror::Error)]
pub enum RlError {
    /// An algorithm name other than grpo, dapo or sft.
    #[error("config: unknown algo `{value}` (expected grpo, dapo or sft)")]
    UnknownAlgo {
        /// The name given.
        value: String,
    },
    /// A key's value is out of range or breaks a relation with other keys ([`TrainConfig::validate`]).
    #[error("config: {problem}")]
    InvalidConfig {
        /// The key at fault (the first one named when a relation between keys fails).
        key: &'static str,
        /// What is wrong, naming every key involved and their values.
        problem: String,
    },
    /// A `--config` file could not be read.
    #[error("config: {}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration layer is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("config: {layer}: {}", config::one_line(source))]
    ConfigToml {
        /// The file or `--set` item.
        layer: ConfigLayer,
        /// The parser's error (names the key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A `--set` item without `=`.
    #[error("config: --set `{item}`: expected key=value")]
    SetSyntax {
        /// The item as written.
        item: String,
    },
    /// A `--config` file names another algorithm than `--algo`.
    #[error("config: {}: algo = \"{file_algo}\" conflicts with --algo", path.display())]
    AlgoConflict {
        /// The file.
        path: std::path::PathBuf,
        /// The algorithm the file names.
        file_algo: String,
    },
    /// The merged layers do not form a configuration.
    #[error("config: {}", config::one_line(source))]
    ConfigMerge {
        /// The deserializer's error (names the key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `reward_funcs` names an unknown component.
    #[error(
        "config: reward_funcs: unknown component `{name}` ({})",
        component::COMPONENT_NAMES
    )]
    UnknownComponent {
        /// The name given.
        name: String,
    },
    /// `reward_mode` is not a mode of the reward library.
    #[error("config: reward_mode: {source}")]
    RewardMode {
        /// The reward library's error (names the value).
        #[source]
        source: recode_reward::RewardError,
    },
    /// `reward_weights` does not give one weight per component of the rewarder.
    #[error(
        "config: reward_weights has {weights} entries, the rewarder has {components} components"
    )]
    RewardWeights {
        /// Entries of `reward_weights`.
        weights: usize,
        /// Components of the rewarder.
        components: usize,
    },
    /// A trainer was given no training prompts.
    #[error("config: no training prompts")]
    NoPrompts,
    /// An SFT trainer was given no examples.
    #[error("config: no SFT examples")]
    NoSftExamples,
    /// Tensor or autograd failure.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// File-system failure with the path involved.
    #[error("{}: {source}", path.display())]
    Io {
        /// Path being read or written.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is asked for but the trainer has no output directory.
    #[error("checkpoint: no output directory set")]
    NoOutputDir,
    /// A checkpoint file lacks an entry (tensor or JSON key).
    #[error("checkpoint: {}: lacks `{key}`", path.display())]
    MissingEntry {
        /// The file.
        path: std::path::PathBuf,
        /// The missing tensor name or key.
        key: String,
    },
    /// A safetensors file could not be read or written.
    #[error("checkpoint: {}: {source}", path.display())]
    Safetensors {
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: candle_core::Error,
    },
    /// A JSON file (trainer state, metrics, samples) could not be encoded or decoded.
    #[error("checkpoint: {}: {source}", path.display())]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Underlying error (names line and column when decoding).
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint's `config.toml` does not parse as a configuration.
    #[error("checkpoint: {}: {}", path.display(), source.message())]
    CheckpointConfig {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's error (names the key).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The optimizer state lacks a variable's moment.
    #[error("checkpoint: optimizer state lacks `{key}`")]
    OptimizerStateMissing {
        /// The state key.
        key: String,
    },
    /// An optimizer moment's shape differs from its variable's.
    #[error("checkpoint: optimizer state `{key}` has shape {state:?}, variable has {variable:?}")]
    OptimizerStateShape {
        /// The state key.
        key: String,
        /// Shape in the checkpoint.
        state: Vec<usize>,
        /// Shape of the variable.
        variable: Vec<usize>,
    },
    /// A rollout source returned another number of completions than asked for.
    #[error("rollout: rollout source returned {got} completions, expected {expected}")]
    CompletionCount {
        /// Completions returned.
        got: usize,
        /// Prompts × completions per prompt.
        expected: usize,
    },
    /// Dynamic sampling kept no group.
    #[error(
        "rollout: no group with differing rewards in {gen_batches} generation batches (all groups constant)"
    )]
    NoVaryingGroup {
        /// Generation batches drawn.
        gen_batches: usize,
    },
    /// A step was asked to learn without a rollout batch.
    #[error("rollout: no rollout batch")]
    NoRolloutBatch,
    /// A prompt without tokens was given to a rollout source.
    #[error("rollout: prompt {index} is empty")]
    EmptyPrompt {
        /// Position of the prompt in the batch.
        index: usize,
    },
    /// The model runtime failed (adapters, generation, weights).
    #[error("model: {0}")]
    Model(#[source] Box<recode_model::ModelError>),
    /// The model runtime failed on a file or directory (adapter, checkpoint).
    #[error("model: {}: {source}", path.display())]
    ModelAt {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// The base model a full fine-tuning checkpoint names failed to load.
    #[error("model: {}: base {base}: {source}", checkpoint.display())]
    CheckpointBase {
        /// The checkpoint directory.
        checkpoint: std::path::PathBuf,
        /// The base model it names.
        base: String,
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// A full fine-tuning checkpoint's weights do not fit its base model.
    #[error("model: {}: holds {found} tensors, the base {base} has {expected}", path.display())]
    WeightCount {
        /// The checkpoint's `model.safetensors`.
        path: std::path::PathBuf,
        /// The base model.
        base: String,
        /// Tensors in the file.
        found: usize,
        /// Parameters of the base.
        expected: usize,
    },
    /// The model's chat template does not compile.
    #[error("model: the model's chat template: {source}")]
    ChatTemplate {
        /// Underlying error.
        #[source]
        source: Box<recode_data::DataError>,
    },
    /// A required field of a training row is null or empty.
    #[error(
        "data: {file}:{line}: field `{field}` is null or empty (run `recode data clean` first)"
    )]
    EmptyField {
        /// The data file (or hub id).
        file: String,
        /// 1-based line.
        line: usize,
        /// The field.
        field: &'static str,
    },
    /// A row's prompt could not be rendered through the chat template.
    #[error("data: {file}:{line}: {source}")]
    RenderRow {
        /// The data file (or hub id).
        file: String,
        /// 1-based line.
        line: usize,
        /// Underlying error.
        #[source]
        source: Box<recode_data::DataError>,
    },
    /// A row's prompt could not be tokenised.
    #[error("data: {file}:{line}: {source}")]
    TokenizeRow {
        /// The data file (or hub id).
        file: String,
        /// 1-based line.
        line: usize,
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// An example's prompt could not be rendered through the chat template.
    #[error("data: {0}")]
    Render(#[source] Box<recode_data::DataError>),
    /// An SFT example has nothing to learn.
    #[error("data: SFT example {index} has an empty completion")]
    EmptyCompletion {
        /// Position of the example.
        index: usize,
    },
    /// A data-stage operation failed (atomic writes; the error names the file).
    #[error(transparent)]
    Data(Box<recode_data::DataError>),
    /// An SFT batch has no completion token.
    #[error("data: SFT batch has no completion tokens")]
    NoCompletionTokens,
    /// A resume whose configuration differs from the checkpoint's in keys that change the
    /// training (see [`resume`]); each change names the key and both values.
    #[error(
        "resume from {} refused, the configuration differs from the checkpoint's: {}",
        checkpoint.display(),
        resume::list_changes(changes)
    )]
    ResumeConfigChanged {
        /// The checkpoint directory resumed from.
        checkpoint: std::path::PathBuf,
        /// Every refused difference, in key order.
        changes: Vec<resume::ConfigChange>,
    },
}

impl From<recode_model::ModelError> for RlError {
    fn from(e: recode_model::ModelError) -> Self {
        RlError::Model(Box::new(e))
    }
}

impl From<recode_data::DataError> for RlError {
    fn from(e: recode_data::DataError) -> Self {
        RlError::Data(Box::new(e))
    }
}
