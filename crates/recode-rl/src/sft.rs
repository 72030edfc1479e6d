//! Supervised fine-tuning: the paper's SFT baseline. Cross-entropy on the completion
//! tokens only (prompt and padding masked), averaged over every completion token of the
//! optimizer batch (so micro-batching does not change the gradient), with the same
//! optimizer, schedule, adapters, checkpoints and metrics as the RL trainer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, MetricsWriter, STATE_FILE};
use crate::config::TrainConfig;
use crate::optim::{accumulate_grads, clip_grad_norm, lr_at, AdamW, AdamWParams};
use crate::policy::{Completion, Policy};
use crate::trainer::{
    build_batch, epoch_order, restore_weights, slice_batch, DataCursor, ValidationMetrics,
};
use crate::RlError;

/// One supervised pair, tokenised.
#[derive(Debug, Clone, PartialEq)]
pub struct SftExample {
    /// Prompt tokens (chat template applied, assistant prefix included).
    pub prompt: Vec<u32>,
    /// Completion tokens the model must learn (ending with the end-of-turn token).
    pub completion: Vec<u32>,
}

/// One line of the SFT `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SftMetrics {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Mean negative log-likelihood per completion token.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Completion tokens in the batch.
    pub tokens: usize,
    /// Seconds for the step.
    pub step_s: f64,
    /// Greedy validation figures, on the steps where validation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationMetrics>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SftState {
    step: u64,
    optimizer_step: u64,
    cursor: DataCursor,
    /// Dropout-mask stream position ([`Policy::dropout_position`]); 0 in older checkpoints.
    #[serde(default)]
    dropout_position: u64,
}

/// Greedy validation run by the SFT trainer every `eval_steps` (the caller owns the
/// sampler and rewarder).
pub type Validator<P> = Box<dyn FnMut(&P) -> Result<ValidationMetrics, RlError>>;

/// The SFT loop.
pub struct SftTrainer<P: Policy> {
    cfg: TrainConfig,
    policy: P,
    data: Vec<SftExample>,
    opt: AdamW,
    cursor: DataCursor,
    step: u64,
    output: Option<PathBuf>,
    metrics: Option<MetricsWriter>,
    resumed_at: Option<u64>,
    validator: Option<Validator<P>>,
}

impl<P: Policy> SftTrainer<P> {
    /// A trainer at step 0 over `data` (uses the optimizer, schedule, batch sizes, seed and
    /// save/eval cadence of `cfg`).
    pub fn new(cfg: TrainConfig, policy: P, data: Vec<SftExample>) -> Result<Self, RlError> {
        cfg.validate()?;
        if data.is_empty() {
            return Err(RlError::NoSftExamples);
        }
        if let Some(i) = data.iter().position(|e| e.completion.is_empty()) {
            return Err(RlError::EmptyCompletion { index: i });
        }
        let opt = AdamW::new(policy.trainable_vars(), AdamWParams::from(&cfg))?;
        Ok(SftTrainer {
            cfg,
            policy,
            data,
            opt,
            cursor: DataCursor::default(),
            step: 0,
            output: None,
            metrics: None,
            resumed_at: None,
            validator: None,
        })
    }

    /// Writes checkpoints and `metrics.jsonl` under `dir`.
    pub fn with_output(mut self, dir: &Path) -> Result<Self, RlError> {
        std::fs::create_dir_all(dir).map_err(|source| RlError::Io {
            path: dir.into(),
            source,
        })?;
        self.output = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Runs `v` every `eval_steps` steps and records its figures.
    pub fn with_validator(mut self, v: Validator<P>) -> Self {
        self.validator = Some(v);
        self
    }

    /// Restores weights, optimizer and data cursor from checkpoint `ckpt`.
    pub fn resume(mut self, ckpt: &Path) -> Result<Self, RlError> {
        let state: SftState = checkpoint::load_json(&ckpt.join(STATE_FILE))?;
        restore_weights(&self.policy, &mut self.opt, ckpt, state.optimizer_step)?;
        self.step = state.step;
        self.cursor = state.cursor;
        self.policy.set_dropout_position(state.dropout_position);
        self.resumed_at = Some(self.step);
        if self.output.is_none() {
            self.output = ckpt.parent().map(Path::to_path_buf);
        }
        Ok(self)
    }

    /// The policy being trained.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Optimizer steps done.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Runs the validator now (None without one).
    pub fn validate(&mut self) -> Result<Option<ValidationMetrics>, RlError> {
        match self.validator.as_mut() {
            Some(v) => Ok(Some(v(&self.policy)?)),
            None => Ok(None),
        }
    }

    /// One optimizer step over `per_device_train_batch_size × gradient_accumulation_steps`
    /// examples in the seeded per-epoch order.
    pub fn train_step(&mut self) -> Result<SftMetrics, RlError> {
        let t0 = Instant::now();
        let n = self.cfg.generation_batch_size();
        let mut order = epoch_order(self.data.len(), self.cfg.seed, self.cursor.epoch);
        let mut picked = Vec::with_capacity(n);
        while picked.len() < n {
            if self.cursor.pos >= order.len() {
                self.cursor.epoch += 1;
                self.cursor.pos = 0;
                order = epoch_order(self.data.len(), self.cfg.seed, self.cursor.epoch);
            }
            picked.push(order[self.cursor.pos]);
            self.cursor.pos += 1;
        }
        let comps: Vec<Completion> = picked
            .iter()
            .map(|&i| Completion {
                tokens: self.data[i].completion.clone(),
                text: String::new(),
                truncated: false,
            })
            .collect();
        let seqs: Vec<(&[u32], &Completion)> = picked
            .iter()
            .zip(&comps)
            .map(|(&i, c)| (self.data[i].prompt.as_slice(), c))
            .collect();
        let batch = build_batch(&seqs, false, self.policy.device())?;
        let lr = lr_at(self.step as usize, &self.cfg);
        let (loss, tokens, mut grads) =
            nll_gradients(&self.policy, &batch, self.cfg.per_device_train_batch_size)?;
        let grad_norm = clip_grad_norm(&mut grads, self.cfg.max_grad_norm)?;
        self.opt.step(&grads, lr)?;
        self.step += 1;
        let mut m = SftMetrics {
            step: self.step,
            lr,
            loss,
            grad_norm,
            tokens,
            step_s: 0.0,
            validation: None,
        };
        if self.cfg.validation_due(self.step as usize) {
            m.validation = self.validate()?;
            if let (Some(v), Some(dir)) = (&m.validation, &self.output) {
                v.write_samples(dir, self.step)?;
            }
        }
        m.step_s = t0.elapsed().as_secs_f64();
        if let (None, Some(dir)) = (&self.metrics, &self.output) {
            self.metrics = Some(MetricsWriter::open(
                &dir.join("metrics.jsonl"),
                self.resumed_at,
            )?);
        }
        if let Some(w) = self.metrics.as_mut() {
            w.write(&m)?;
        }
        Ok(m)
    }

    /// Runs until `max_steps`, checkpointing every `save_steps` and at the end; `on_step`
    /// sees every step's metrics (progress display).
    pub fn train(&mut self, mut on_step: impl FnMut(&SftMetrics)) -> Result<(), RlError> {
        if let Some(dir) = &self.output {
            // Restore a checkpoint left aside by an interrupted replacement, drop partial writes.
            checkpoint::clean_stale_tmp(dir)?;
        }
        while (self.step as usize) < self.cfg.max_steps {
            let m = self.train_step()?;
            on_step(&m);
            if self.output.is_some() && self.cfg.checkpoint_due(self.step as usize) {
                self.save_checkpoint()?;
            }
        }
        Ok(())
    }

    /// Writes `checkpoint-<step>` atomically (weights, optimizer, exported adapter, state).
    pub fn save_checkpoint(&self) -> Result<PathBuf, RlError> {
        let dir = self.output.as_ref().ok_or(RlError::NoOutputDir)?;
        checkpoint::write_atomic_dir(
            dir,
            &format!("{}{}", checkpoint::CHECKPOINT_PREFIX, self.step),
            |tmp| {
                let weights = self
                    .policy
                    .trainable_vars()
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                    .collect();
                checkpoint::save_tensors(&tmp.join("model.safetensors"), &weights)?;
                checkpoint::save_tensors(
                    &tmp.join("optimizer.safetensors"),
                    &self.opt.state_tensors(),
                )?;
                self.policy.export(tmp)?;
                let cfg_path = tmp.join("config.toml");
                std::fs::write(&cfg_path, self.cfg.to_toml()).map_err(|source| RlError::Io {
                    path: cfg_path,
                    source,
                })?;
                checkpoint::save_json(
                    &tmp.join(STATE_FILE),
                    &SftState {
                        step: self.step,
                        optimizer_step: self.opt.step_count(),
                        cursor: self.cursor,
                        dropout_position: self.policy.dropout_position(),
                    },
                )
            },
        )
    }
}

/// Mean completion-token NLL of `batch` and its gradient, accumulated over micro-batches of
/// `mb` rows and normalised by the whole batch's token count; returns (loss, tokens, grads).
pub fn nll_gradients<P: Policy>(
    policy: &P,
    batch: &crate::policy::TokenBatch,
    mb: usize,
) -> Result<(f64, usize, Vec<Option<Tensor>>), RlError> {
    let vars = policy.trainable_vars();
    let tokens = batch
        .completion_mask
        .to_dtype(DType::F64)?
        .sum_all()?
        .to_scalar::<f64>()?;
    if tokens <= 0.0 {
        return Err(RlError::NoCompletionTokens);
    }
    let n = batch.input_ids.dim(0)?;
    let mut acc = vec![None; vars.len()];
    let mut loss_sum = 0.0;
    for start in (0..n).step_by(mb.max(1)) {
        let sub = slice_batch(batch, start, mb.min(n - start))?;
        let out = policy.token_logprobs(&sub, false)?;
        let mask = sub.completion_mask.to_dtype(out.logprobs.dtype())?;
        let loss = ((out.logprobs * mask)?.sum_all()?.neg()? / tokens)?;
        accumulate_grads(&mut acc, &loss.backward()?, &vars)?;
        loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    }
    Ok((loss_sum, tokens as usize, acc))
}
