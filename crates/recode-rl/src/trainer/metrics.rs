//! What a training step reports: rollout and loss figures (`metrics.jsonl`), timing, and greedy
//! validation with its per-prompt samples (`validation/step-N.jsonl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::advantage::FilterStats;
use crate::RlError;

/// Reward-side figures of one generation batch (all generated completions, before filtering).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutMetrics {
    /// Mean total reward (after weights and overlong shaping).
    pub reward_mean: f64,
    /// Population std of the total reward.
    pub reward_std: f64,
    /// Mean of each reward component.
    pub reward_components: BTreeMap<String, f64>,
    /// Rate of each rewarder indicator (e.g. `format_ok`, `exact_match`).
    #[serde(default)]
    pub indicators: BTreeMap<String, f64>,
    /// Mean completion length in tokens.
    pub completion_len_mean: f64,
    /// Fraction of completions cut at `max_completion_length`.
    pub truncated_fraction: f64,
    /// Dynamic-sampling accounting.
    pub filter: FilterStats,
    /// Completion tokens generated.
    pub generated_tokens: usize,
}

/// Wall-clock split of a step (excluded from exact-resume comparisons).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// Seconds generating.
    pub generate_s: f64,
    /// Seconds scoring.
    pub score_s: f64,
    /// Seconds in forward/backward/optimizer.
    pub learn_s: f64,
    /// Generated tokens per second.
    pub tokens_per_s: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Loss of the whole mini-batch.
    pub loss: f64,
    /// Rollout figures of the batch this step trained on.
    pub rollout: RolloutMetrics,
    /// Mean per-token KL to the reference (0 when β = 0 and no reference pass).
    pub kl: f64,
    /// Fraction of completion tokens where the ε clip was active.
    pub clip_fraction: f64,
    /// Fraction of completion tokens where the dual clip was active.
    pub dual_clip_fraction: f64,
    /// Mean per-token entropy.
    pub entropy: f64,
    /// Mean |log ρ| (policy drift since rollout).
    pub abs_log_ratio: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Completions trained on.
    pub num_completions: usize,
    /// Timing split.
    pub timing: StepTiming,
    /// Greedy validation figures, on the steps where validation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationMetrics>,
}

/// Greedy rollouts on the held-out prompts, scored by the rewarder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    /// Prompts evaluated.
    pub num_prompts: usize,
    /// Mean of each reward component.
    pub reward_components: BTreeMap<String, f64>,
    /// Rate of each rewarder indicator.
    pub indicators: BTreeMap<String, f64>,
    /// Mean completion length in tokens.
    pub completion_len_mean: f64,
    /// Each prompt's completion and scores; kept out of `metrics.jsonl` and written to
    /// `validation/step-N.jsonl` by [`ValidationMetrics::write_samples`].
    #[serde(skip)]
    pub samples: Vec<ValidationSample>,
}

/// One held-out prompt's greedy completion and its scores (a line of `validation/step-N.jsonl`),
/// so failures can be read per prompt without decoding again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationSample {
    /// Position of the prompt in the validation set (the order of `--val-data`).
    pub index: usize,
    /// Decoded completion.
    pub completion: String,
    /// Completion length in tokens.
    pub completion_tokens: usize,
    /// True when decoding stopped at the token limit.
    pub truncated: bool,
    /// Each reward component of this completion.
    pub reward_components: BTreeMap<String, f64>,
    /// Each rewarder indicator (1 or 0 for the boolean ones).
    pub indicators: BTreeMap<String, f64>,
}

impl ValidationMetrics {
    /// Writes the per-prompt samples atomically to `run_dir/validation/step-<step>.jsonl`
    /// (nothing without samples) and returns the path.
    pub fn write_samples(&self, run_dir: &Path, step: u64) -> Result<Option<PathBuf>, RlError> {
        if self.samples.is_empty() {
            return Ok(None);
        }
        let dir = run_dir.join("validation");
        let path = dir.join(format!("step-{step}.jsonl"));
        std::fs::create_dir_all(&dir).map_err(|source| RlError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut text = String::new();
        for s in &self.samples {
            text.push_str(&serde_json::to_string(s).map_err(|source| RlError::Json {
                path: path.clone(),
                source,
            })?);
            text.push('\n');
        }
        recode_data::atomic::write_atomic(&path, text.as_bytes())?;
        Ok(Some(path))
    }
}
