//! Checkpointing: writing `checkpoint-<step>` (weights, optimizer, adapter export, cached
//! rollout batch, config, trainer state) and resuming from one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::RolloutMetrics;
use super::rollout::{DataCursor, RolloutBatch};
use super::Trainer;
use crate::checkpoint::{self, STATE_FILE};
use crate::optim::AdamW;
use crate::policy::{Policy, Rewarder, RolloutSource, TokenBatch};
use crate::RlError;

/// The cached rollout batch of a checkpoint taken between the μ updates of one batch.
const ROLLOUT_FILE: &str = "rollout.safetensors";

/// What `trainer_state.json` holds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TrainerState {
    step: u64,
    optimizer_step: u64,
    cursor: DataCursor,
    rng: ChaCha8Rng,
    rollout_metrics: Option<RolloutMetrics>,
    /// Dropout-mask stream position ([`Policy::dropout_position`]); 0 in older checkpoints.
    #[serde(default)]
    dropout_position: u64,
}

impl<P: Policy, S: RolloutSource<P>, R: Rewarder> Trainer<P, S, R> {
    /// Restores everything from checkpoint `ckpt` (weights, optimizer, RNG, data
    /// cursor, cached rollout batch); without [`Trainer::with_output`] the run continues
    /// in `ckpt`'s parent directory.
    pub fn resume(mut self, ckpt: &Path) -> Result<Self, RlError> {
        let state: TrainerState = checkpoint::load_json(&ckpt.join(STATE_FILE))?;
        restore_weights(&self.policy, &mut self.opt, ckpt, state.optimizer_step)?;
        let rollout_path = ckpt.join(ROLLOUT_FILE);
        self.rollout = match (rollout_path.is_file(), state.rollout_metrics) {
            (true, Some(metrics)) => {
                Some(load_rollout(&rollout_path, metrics, self.policy.device())?)
            }
            _ => None,
        };
        self.step = state.step;
        self.cursor = state.cursor;
        self.rng = state.rng;
        self.policy.set_dropout_position(state.dropout_position);
        self.resumed_at = Some(self.step);
        if self.output.is_none() {
            self.output = ckpt.parent().map(Path::to_path_buf);
        }
        tracing::info!(step = self.step, checkpoint = %ckpt.display(), "resumed");
        Ok(self)
    }

    /// Writes `checkpoint-<step>` atomically into the output directory.
    pub fn save_checkpoint(&self) -> Result<PathBuf, RlError> {
        let dir = self.output.as_ref().ok_or(RlError::NoOutputDir)?;
        // The cached batch is only needed when the next step would reuse it (μ > 1).
        let keep_rollout = !self.step.is_multiple_of(self.cfg.num_iterations as u64);
        let rollout = self.rollout.as_ref().filter(|_| keep_rollout);
        checkpoint::write_atomic_dir(
            dir,
            &format!("{}{}", checkpoint::CHECKPOINT_PREFIX, self.step),
            |tmp| {
                let vars = self.policy.trainable_vars();
                let weights = vars
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                    .collect();
                checkpoint::save_tensors(&tmp.join("model.safetensors"), &weights)?;
                checkpoint::save_tensors(
                    &tmp.join("optimizer.safetensors"),
                    &self.opt.state_tensors(),
                )?;
                self.policy.export(tmp)?;
                if let Some(r) = rollout {
                    save_rollout(&tmp.join(ROLLOUT_FILE), r)?;
                }
                let cfg_path = tmp.join("config.toml");
                std::fs::write(&cfg_path, self.cfg.to_toml()).map_err(|source| RlError::Io {
                    path: cfg_path,
                    source,
                })?;
                // Written last: its presence marks a complete checkpoint.
                checkpoint::save_json(
                    &tmp.join(STATE_FILE),
                    &TrainerState {
                        step: self.step,
                        optimizer_step: self.opt.step_count(),
                        cursor: self.cursor,
                        rng: self.rng.clone(),
                        rollout_metrics: rollout.map(|r| r.metrics.clone()),
                        dropout_position: self.policy.dropout_position(),
                    },
                )
            },
        )
    }
}

/// Writes a cached rollout batch (token ids, mask, advantages, old/reference log-probs).
fn save_rollout(path: &Path, r: &RolloutBatch) -> Result<(), RlError> {
    let mut t = HashMap::from([
        ("input_ids".to_string(), r.batch.input_ids.clone()),
        (
            "completion_mask".to_string(),
            r.batch.completion_mask.clone(),
        ),
        ("advantages".to_string(), r.advantages.clone()),
    ]);
    if let Some(old) = &r.old_logprobs {
        t.insert("old_logprobs".into(), old.clone());
    }
    if let Some(rf) = &r.ref_logprobs {
        t.insert("ref_logprobs".into(), rf.clone());
    }
    checkpoint::save_tensors(path, &t)
}

/// Reads back a rollout batch written by [`save_rollout`].
fn load_rollout(
    path: &Path,
    metrics: RolloutMetrics,
    dev: &Device,
) -> Result<RolloutBatch, RlError> {
    let t = checkpoint::load_tensors(path, dev)?;
    let get = |k: &str| {
        t.get(k).cloned().ok_or_else(|| RlError::MissingEntry {
            path: path.to_path_buf(),
            key: k.to_string(),
        })
    };
    Ok(RolloutBatch {
        batch: TokenBatch {
            input_ids: get("input_ids")?,
            completion_mask: get("completion_mask")?,
        },
        old_logprobs: t.get("old_logprobs").cloned(),
        ref_logprobs: t.get("ref_logprobs").cloned(),
        advantages: get("advantages")?,
        metrics,
    })
}

/// Sets every trainable variable from `ckpt/model.safetensors` and the optimizer from
/// `ckpt/optimizer.safetensors` (shared by the RL and SFT trainers).
pub(crate) fn restore_weights<P: Policy>(
    policy: &P,
    opt: &mut AdamW,
    ckpt: &Path,
    optimizer_step: u64,
) -> Result<(), RlError> {
    let dev = policy.device().clone();
    let weights_file = ckpt.join("model.safetensors");
    let weights = checkpoint::load_tensors(&weights_file, &dev)?;
    for (name, var) in policy.trainable_vars() {
        let t = weights.get(&name).ok_or_else(|| RlError::MissingEntry {
            path: weights_file.clone(),
            key: name.clone(),
        })?;
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    let opt_state = checkpoint::load_tensors(&ckpt.join("optimizer.safetensors"), &dev)?;
    opt.load_state(&opt_state, optimizer_step)?;
    Ok(())
}
