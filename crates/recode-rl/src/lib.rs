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

/// Errors of the RL crate.
#[derive(Debug, thiserror::Error)]
pub enum RlError {
    /// Invalid configuration (message names the file/key).
    #[error("config: {0}")]
    Config(String),
    /// Tensor or autograd failure.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// File-system failure with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// Path being read or written.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Missing or inconsistent checkpoint content.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Failure reported by a rollout source or rewarder.
    #[error("rollout: {0}")]
    Rollout(String),
    /// Failure of the model runtime (loading, adapters, generation).
    #[error("model: {0}")]
    Model(String),
    /// Bad training data (message names the file, line and field).
    #[error("data: {0}")]
    Data(String),
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
