//! The GRPO/DAPO loop, generic over the [`Policy`] / [`RolloutSource`] / [`Rewarder`]
//! seams.
//!
//! One optimizer step: (every μ steps) draw prompts → G completions each → rewards
//! (+ overlong shaping) → dynamic-sampling filter (DAPO) → group advantages → old and
//! reference log-probs; then micro-batches of `per_device_train_batch_size`
//! completions → clipped loss normalised over the whole batch → summed gradients →
//! norm clipping → AdamW with the scheduled learning rate.

mod batch;
mod checkpointing;
mod metrics;
mod rollout;
mod update;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use batch::build_batch;
pub(crate) use batch::slice_batch;
pub(crate) use checkpointing::restore_weights;
pub use metrics::{RolloutMetrics, StepMetrics, StepTiming, ValidationMetrics, ValidationSample};
pub(crate) use rollout::epoch_order;
pub use rollout::DataCursor;
use rollout::RolloutBatch;
pub use update::batch_gradients;
use update::learn;
pub use validate::validate;

use crate::checkpoint::{self, MetricsWriter};
use crate::config::TrainConfig;
use crate::optim::{lr_at, AdamW, AdamWParams};
use crate::policy::{Policy, PromptItem, Rewarder, RolloutSource};
use crate::RlError;

/// The RL trainer.
pub struct Trainer<P: Policy, S: RolloutSource<P>, R: Rewarder> {
    cfg: TrainConfig,
    policy: P,
    source: S,
    rewarder: R,
    /// Scores validation when set (e.g. with components beyond the training reward).
    val_rewarder: Option<R>,
    prompts: Vec<PromptItem>,
    validation: Vec<PromptItem>,
    weights: Vec<f64>,
    opt: AdamW,
    rng: ChaCha8Rng,
    cursor: DataCursor,
    step: u64,
    rollout: Option<RolloutBatch>,
    output: Option<PathBuf>,
    metrics: Option<MetricsWriter>,
    resumed_at: Option<u64>,
}

impl<P: Policy, S: RolloutSource<P>, R: Rewarder> Trainer<P, S, R> {
    /// A trainer at step 0 (validates `cfg`; `reward_weights`, when given, must match
    /// the rewarder's components).
    pub fn new(
        cfg: TrainConfig,
        policy: P,
        source: S,
        rewarder: R,
        prompts: Vec<PromptItem>,
    ) -> Result<Self, RlError> {
        cfg.validate()?;
        if prompts.is_empty() {
            return Err(RlError::NoPrompts);
        }
        let n_comp = rewarder.component_names().len();
        let weights = if cfg.reward_weights.is_empty() {
            vec![1.0; n_comp]
        } else if cfg.reward_weights.len() == n_comp {
            cfg.reward_weights.clone()
        } else {
            return Err(RlError::RewardWeights {
                weights: cfg.reward_weights.len(),
                components: n_comp,
            });
        };
        let opt = AdamW::new(policy.trainable_vars(), AdamWParams::from(&cfg))?;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Ok(Trainer {
            cfg,
            policy,
            source,
            rewarder,
            val_rewarder: None,
            prompts,
            validation: Vec::new(),
            weights,
            opt,
            rng,
            cursor: DataCursor::default(),
            step: 0,
            rollout: None,
            output: None,
            metrics: None,
            resumed_at: None,
        })
    }

    /// Writes checkpoints and `metrics.jsonl` under `dir`. The metrics file is opened at
    /// the first step: replaced for a fresh run, trimmed to the checkpoint after [`Trainer::resume`].
    pub fn with_output(mut self, dir: &Path) -> Result<Self, RlError> {
        std::fs::create_dir_all(dir).map_err(|source| RlError::Io {
            path: dir.into(),
            source,
        })?;
        self.output = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Held-out prompts for greedy validation every `eval_steps` steps.
    pub fn with_validation(mut self, prompts: Vec<PromptItem>) -> Self {
        self.validation = prompts;
        self
    }

    /// Scores validation with `rewarder` instead of the training one (so held-out figures can
    /// report components the training reward leaves out).
    pub fn with_validation_rewarder(mut self, rewarder: R) -> Self {
        self.val_rewarder = Some(rewarder);
        self
    }

    /// Greedy completions for the validation prompts, scored (empty figures without
    /// validation prompts). Uses its own fixed RNG so training is unaffected.
    pub fn validate(&mut self) -> Result<ValidationMetrics, RlError> {
        validate(
            &self.policy,
            &mut self.source,
            self.val_rewarder.as_ref().unwrap_or(&self.rewarder),
            &self.validation,
            self.cfg.max_completion_length,
        )
    }

    /// The rollout source (e.g. to hook a progress display onto its decoding).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// The policy being trained.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The policy, mutably (e.g. to change its training options before the first step).
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.policy
    }

    /// Optimizer steps done.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Runs until `max_steps`, checkpointing every `save_steps` and at the end.
    pub fn train(&mut self) -> Result<Vec<StepMetrics>, RlError> {
        let mut all = Vec::new();
        self.train_with(|m| all.push(m.clone()))?;
        Ok(all)
    }

    /// [`Trainer::train`] with a callback that sees every step's metrics (progress display).
    pub fn train_with(&mut self, mut on_step: impl FnMut(&StepMetrics)) -> Result<(), RlError> {
        if let Some(dir) = &self.output {
            // Restore a checkpoint left aside by an interrupted replacement, drop partial writes.
            checkpoint::clean_stale_tmp(dir)?;
        }
        while (self.step as usize) < self.cfg.max_steps {
            on_step(&self.train_step()?);
            if self.output.is_some() && self.cfg.checkpoint_due(self.step as usize) {
                self.save_checkpoint()?;
            }
        }
        Ok(())
    }

    /// One optimizer step (generating a new batch when the previous one has been used μ times).
    pub fn train_step(&mut self) -> Result<StepMetrics, RlError> {
        let mut timing = StepTiming::default();
        if self.step.is_multiple_of(self.cfg.num_iterations as u64) || self.rollout.is_none() {
            self.rollout = Some(self.collect_rollouts(&mut timing)?);
        }
        let t0 = Instant::now();
        let rollout = self.rollout.as_ref().ok_or(RlError::NoRolloutBatch)?;
        let lr = lr_at(self.step as usize, &self.cfg);
        let (loss, stats, grad_norm) = learn(&self.policy, &mut self.opt, rollout, &self.cfg, lr)?;
        timing.learn_s = t0.elapsed().as_secs_f64();
        self.step += 1;
        let mut m = StepMetrics {
            step: self.step,
            lr,
            loss,
            rollout: rollout.metrics.clone(),
            kl: stats.per_token(stats.kl_sum),
            clip_fraction: stats.per_token(stats.clipped),
            dual_clip_fraction: stats.per_token(stats.dual_clipped),
            entropy: stats.per_token(stats.entropy_sum),
            abs_log_ratio: stats.per_token(stats.abs_log_ratio_sum),
            grad_norm,
            num_completions: rollout.advantages.dim(0)?,
            timing,
            validation: None,
        };
        if self.cfg.validation_due(self.step as usize) && !self.validation.is_empty() {
            let v = self.validate()?;
            if let Some(dir) = &self.output {
                v.write_samples(dir, self.step)?;
            }
            m.validation = Some(v);
        }
        if let (None, Some(dir)) = (&self.metrics, &self.output) {
            let path = dir.join("metrics.jsonl");
            self.metrics = Some(MetricsWriter::open(&path, self.resumed_at)?);
        }
        if let Some(w) = self.metrics.as_mut() {
            w.write(&m)?;
        }
        if self.cfg.logging_steps > 0 && (self.step as usize).is_multiple_of(self.cfg.logging_steps)
        {
            tracing::info!(
                step = m.step,
                reward = m.rollout.reward_mean,
                loss = m.loss,
                kl = m.kl,
                clip = m.clip_fraction,
                "train step"
            );
        }
        Ok(m)
    }
}
