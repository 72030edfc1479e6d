//! The GRPO/DAPO loop, generic over the [`Policy`] / [`RolloutSource`] / [`Rewarder`]
//! seams.
//!
//! One optimizer step: (every μ steps) draw prompts → G completions each → rewards
//! (+ overlong shaping) → dynamic-sampling filter (DAPO) → group advantages → old and
//! reference log-probs; then micro-batches of `per_device_train_batch_size`
//! completions → clipped loss normalised over the whole batch → summed gradients →
//! norm clipping → AdamW with the scheduled learning rate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::advantage::{
    group_advantages, group_is_constant, overlong_penalty, FilterStats, GroupFilter,
};
use crate::checkpoint::{self, MetricsWriter, STATE_FILE};
use crate::config::TrainConfig;
use crate::loss::{policy_loss, LossInputs, LossParams, LossStats, Normaliser};
use crate::optim::{accumulate_grads, clip_grad_norm, lr_at, AdamW, AdamWParams};
use crate::policy::{
    Completion, Policy, PromptItem, Rewarder, RolloutSource, SamplingParams, TokenBatch,
};
use crate::RlError;

/// Position in the (per-epoch shuffled) prompt order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// Epochs completed.
    pub epoch: u64,
    /// Next index into this epoch's permutation.
    pub pos: usize,
}

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
        let err = |e: String| RlError::Checkpoint(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let mut text = String::new();
        for s in &self.samples {
            text.push_str(&serde_json::to_string(s).map_err(|e| err(e.to_string()))?);
            text.push('\n');
        }
        recode_data::atomic::write_atomic(&path, text.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        Ok(Some(path))
    }
}

/// A scored, filtered generation batch ready for μ optimizer steps.
#[derive(Debug, Clone)]
struct RolloutBatch {
    batch: TokenBatch,
    /// Log-probs under the sampling policy; `None` when μ = 1: every micro-batch of the single
    /// update then sees the sampling weights, so the current log-probs, detached, are the old
    /// ones (as TRL does), and a forward pass is saved.
    old_logprobs: Option<Tensor>,
    ref_logprobs: Option<Tensor>,
    advantages: Tensor,
    metrics: RolloutMetrics,
}

/// What `trainer_state.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    optimizer_step: u64,
    cursor: DataCursor,
    rng: ChaCha8Rng,
    rollout_metrics: Option<RolloutMetrics>,
    /// Dropout-mask stream position ([`Policy::dropout_position`]); 0 in older checkpoints.
    #[serde(default)]
    dropout_position: u64,
}

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
            return Err(RlError::Config("no training prompts".into()));
        }
        let n_comp = rewarder.component_names().len();
        let weights = if cfg.reward_weights.is_empty() {
            vec![1.0; n_comp]
        } else if cfg.reward_weights.len() == n_comp {
            cfg.reward_weights.clone()
        } else {
            return Err(RlError::Config(format!(
                "reward_weights has {} entries, the rewarder has {n_comp} components",
                cfg.reward_weights.len()
            )));
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

    /// Restores everything from checkpoint `ckpt` (weights, optimizer, RNG, data
    /// cursor, cached rollout batch); without [`Trainer::with_output`] the run continues
    /// in `ckpt`'s parent directory.
    pub fn resume(mut self, ckpt: &Path) -> Result<Self, RlError> {
        let state: TrainerState = checkpoint::load_json(&ckpt.join(STATE_FILE))?;
        restore_weights(&self.policy, &mut self.opt, ckpt, state.optimizer_step)?;
        let dev = self.policy.device().clone();
        let rollout_path = ckpt.join("rollout.safetensors");
        self.rollout = match (rollout_path.is_file(), state.rollout_metrics) {
            (true, Some(metrics)) => {
                let t = checkpoint::load_tensors(&rollout_path, &dev)?;
                let get = |k: &str| {
                    t.get(k).cloned().ok_or_else(|| {
                        RlError::Checkpoint(format!("{}: lacks `{k}`", rollout_path.display()))
                    })
                };
                Some(RolloutBatch {
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
        let rollout = self
            .rollout
            .as_ref()
            .ok_or_else(|| RlError::Rollout("no rollout batch".into()))?;
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

    /// Writes `checkpoint-<step>` atomically into the output directory.
    pub fn save_checkpoint(&self) -> Result<PathBuf, RlError> {
        let dir = self
            .output
            .as_ref()
            .ok_or_else(|| RlError::Checkpoint("no output directory set".into()))?;
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
                    let mut t = std::collections::HashMap::from([
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
                    checkpoint::save_tensors(&tmp.join("rollout.safetensors"), &t)?;
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

    /// The next `n` prompts in the seeded per-epoch order.
    fn next_prompts(&mut self, n: usize) -> Vec<PromptItem> {
        let mut out = Vec::with_capacity(n);
        let mut order = epoch_order(self.prompts.len(), self.cfg.seed, self.cursor.epoch);
        while out.len() < n {
            if self.cursor.pos >= order.len() {
                self.cursor.epoch += 1;
                self.cursor.pos = 0;
                order = epoch_order(self.prompts.len(), self.cfg.seed, self.cursor.epoch);
            }
            out.push(self.prompts[order[self.cursor.pos]].clone());
            self.cursor.pos += 1;
        }
        out
    }

    /// Generates, scores, filters and prepares one training batch.
    fn collect_rollouts(&mut self, timing: &mut StepTiming) -> Result<RolloutBatch, RlError> {
        let g = self.cfg.num_generations;
        let n_prompts = self.cfg.generation_batch_size() / g;
        let budget = if self.cfg.dynamic_sampling {
            self.cfg.max_num_gen_batches
        } else {
            1
        };
        let params = SamplingParams {
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            top_k: self.cfg.top_k,
            max_new_tokens: self.cfg.max_completion_length,
        };
        let names = self.rewarder.component_names();
        let ind_names = self.rewarder.indicator_names();
        let mut ind_sums = vec![0.0; ind_names.len()];
        let mut filter = GroupFilter::new(n_prompts, budget);
        let (mut all_rewards, mut comp_sums, mut len_sum, mut trunc, mut gen_tokens) =
            (Vec::new(), vec![0.0; names.len()], 0usize, 0usize, 0usize);
        let mut kept_plain = Vec::new();
        // The groups of the latest generation batch: what dynamic sampling falls back to when
        // no group of any batch had differing rewards.
        let mut last_groups = Vec::new();
        while !filter.done() {
            let prompts = self.next_prompts(n_prompts);
            let t0 = Instant::now();
            let comps = self
                .source
                .generate(&self.policy, &prompts, g, &params, &mut self.rng)?;
            timing.generate_s += t0.elapsed().as_secs_f64();
            if comps.len() != prompts.len() * g {
                return Err(RlError::Rollout(format!(
                    "rollout source returned {} completions, expected {}",
                    comps.len(),
                    prompts.len() * g
                )));
            }
            let t1 = Instant::now();
            let mut batch = Vec::with_capacity(prompts.len());
            for (p, group) in prompts.into_iter().zip(comps.chunks(g)) {
                let mut rewards = Vec::with_capacity(g);
                for c in group {
                    let (parts, ind) = self.rewarder.score_with_indicators(&p, c)?;
                    for (s, v) in ind_sums.iter_mut().zip(&ind) {
                        *s += v;
                    }
                    for (s, v) in comp_sums.iter_mut().zip(&parts) {
                        *s += v;
                    }
                    let shaped = overlong_penalty(
                        c.tokens.len(),
                        self.cfg.max_completion_length,
                        self.cfg.overlong_buffer_len,
                        self.cfg.overlong_penalty_factor,
                    );
                    rewards.push(
                        parts
                            .iter()
                            .zip(&self.weights)
                            .map(|(v, w)| v * w)
                            .sum::<f64>()
                            + shaped,
                    );
                    len_sum += c.tokens.len();
                    trunc += c.truncated as usize;
                    gen_tokens += c.tokens.len();
                }
                all_rewards.extend_from_slice(&rewards);
                batch.push(((p, group.to_vec(), rewards.clone()), rewards));
            }
            timing.score_s += t1.elapsed().as_secs_f64();
            if self.cfg.dynamic_sampling {
                last_groups = batch.iter().map(|(grp, _)| grp.clone()).collect();
                filter.offer(batch);
            } else {
                filter.stats.gen_batches += 1;
                filter.stats.groups_seen += batch.len();
                filter.stats.groups_kept +=
                    batch.iter().filter(|(_, r)| !group_is_constant(r)).count();
                kept_plain.extend(batch.into_iter().map(|(grp, _)| grp));
                break;
            }
        }
        let (kept, stats) = if self.cfg.dynamic_sampling {
            let (kept, stats) = filter.finish();
            if kept.is_empty() {
                // Every group agreed in every batch (e.g. a policy that solved the task): train
                // on the last batch, whose zero advantages leave only the KL term, instead of
                // aborting the run.
                tracing::warn!(
                    gen_batches = stats.gen_batches,
                    "dynamic sampling found no group with differing rewards; using the last batch"
                );
                (last_groups, stats)
            } else {
                (kept, stats)
            }
        } else {
            (kept_plain, filter.stats)
        };
        let n_all = all_rewards.len().max(1) as f64;
        let mean = all_rewards.iter().sum::<f64>() / n_all;
        let std = (all_rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n_all).sqrt();
        timing.tokens_per_s = if timing.generate_s > 0.0 {
            gen_tokens as f64 / timing.generate_s
        } else {
            0.0
        };
        let metrics = RolloutMetrics {
            reward_mean: mean,
            reward_std: std,
            reward_components: names
                .iter()
                .cloned()
                .zip(comp_sums.iter().map(|s| s / n_all))
                .collect(),
            indicators: ind_names
                .into_iter()
                .zip(ind_sums.iter().map(|s| s / n_all))
                .collect(),
            completion_len_mean: len_sum as f64 / n_all,
            truncated_fraction: trunc as f64 / n_all,
            filter: stats,
            generated_tokens: gen_tokens,
        };
        if kept.is_empty() {
            return Err(RlError::Rollout(format!(
                "no group with differing rewards in {} generation batches (all groups constant)",
                metrics.filter.gen_batches
            )));
        }
        let rewards: Vec<f64> = kept
            .iter()
            .flat_map(|(_, _, r)| r.iter().copied())
            .collect();
        let adv = group_advantages(&rewards, g, self.cfg.scale_rewards, self.cfg.advantage_std);
        let seqs: Vec<(&[u32], &Completion)> = kept
            .iter()
            .flat_map(|(p, cs, _)| cs.iter().map(move |c| (p.tokens.as_slice(), c)))
            .collect();
        let batch = build_batch(
            &seqs,
            self.cfg.mask_truncated_completions,
            self.policy.device(),
        )?;
        let t2 = Instant::now();
        let mb = self.cfg.per_device_train_batch_size;
        let old_logprobs = if self.cfg.num_iterations > 1 {
            Some(map_micro(&batch, mb, |b| self.policy.rollout_logprobs(b))?)
        } else {
            None
        };
        let ref_logprobs = if self.cfg.beta > 0.0 {
            Some(map_micro(&batch, mb, |b| {
                self.policy.reference_logprobs(b)
            })?)
        } else {
            None
        };
        timing.learn_s += t2.elapsed().as_secs_f64();
        let advantages = Tensor::new(adv, self.policy.device())?;
        Ok(RolloutBatch {
            batch,
            old_logprobs,
            ref_logprobs,
            advantages,
            metrics,
        })
    }
}

/// Greedy completions (one per prompt, at most `max_new_tokens`) scored by `rewarder`:
/// mean components and indicator rates. Deterministic (greedy, fixed seed).
pub fn validate<P: Policy, S: RolloutSource<P>, R: Rewarder>(
    policy: &P,
    source: &mut S,
    rewarder: &R,
    prompts: &[PromptItem],
    max_new_tokens: usize,
) -> Result<ValidationMetrics, RlError> {
    let mut out = ValidationMetrics {
        num_prompts: prompts.len(),
        ..Default::default()
    };
    if prompts.is_empty() {
        return Ok(out);
    }
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x005E_ED0F_5A11);
    let comps = source.generate(policy, prompts, 1, &params, &mut rng)?;
    let names = rewarder.component_names();
    let ind_names = rewarder.indicator_names();
    let (mut sums, mut ind_sums, mut len) =
        (vec![0.0; names.len()], vec![0.0; ind_names.len()], 0usize);
    for (index, (p, c)) in prompts.iter().zip(&comps).enumerate() {
        let (parts, ind) = rewarder.score_with_indicators(p, c)?;
        sums.iter_mut().zip(&parts).for_each(|(s, v)| *s += v);
        ind_sums.iter_mut().zip(&ind).for_each(|(s, v)| *s += v);
        len += c.tokens.len();
        let named = |names: &[String], values: &[f64]| -> BTreeMap<String, f64> {
            names.iter().cloned().zip(values.iter().copied()).collect()
        };
        out.samples.push(ValidationSample {
            index,
            completion: c.text.clone(),
            completion_tokens: c.tokens.len(),
            truncated: c.truncated,
            reward_components: named(&names, &parts),
            indicators: named(&ind_names, &ind),
        });
    }
    let n = comps.len().max(1) as f64;
    out.reward_components = names.into_iter().zip(sums.iter().map(|s| s / n)).collect();
    out.indicators = ind_names
        .into_iter()
        .zip(ind_sums.iter().map(|s| s / n))
        .collect();
    out.completion_len_mean = len as f64 / n;
    Ok(out)
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
    let weights = checkpoint::load_tensors(&ckpt.join("model.safetensors"), &dev)?;
    for (name, var) in policy.trainable_vars() {
        let t = weights
            .get(&name)
            .ok_or_else(|| RlError::Checkpoint(format!("{}: lacks `{name}`", ckpt.display())))?;
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    let opt_state = checkpoint::load_tensors(&ckpt.join("optimizer.safetensors"), &dev)?;
    opt.load_state(&opt_state, optimizer_step)?;
    Ok(())
}

/// Per-epoch permutation of `0..n` from the run seed.
pub(crate) fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    order.shuffle(&mut rng);
    order
}

/// Right-padded `[prompt ‖ completion]` ids and a mask over completion tokens only
/// (prompt and padding 0; truncated completions 0 when `mask_truncated`).
pub fn build_batch(
    seqs: &[(&[u32], &Completion)],
    mask_truncated: bool,
    device: &Device,
) -> Result<TokenBatch, RlError> {
    let width = seqs
        .iter()
        .map(|(p, c)| p.len() + c.tokens.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let mut ids = vec![0u32; seqs.len() * width];
    let mut mask = vec![0f32; seqs.len() * width];
    for (row, (p, c)) in seqs.iter().enumerate() {
        let base = row * width;
        ids[base..base + p.len()].copy_from_slice(p);
        ids[base + p.len()..base + p.len() + c.tokens.len()].copy_from_slice(&c.tokens);
        if !(mask_truncated && c.truncated) {
            mask[base + p.len()..base + p.len() + c.tokens.len()].fill(1.0);
        }
    }
    Ok(TokenBatch {
        input_ids: Tensor::from_vec(ids, (seqs.len(), width), device)?,
        completion_mask: Tensor::from_vec(mask, (seqs.len(), width), device)?,
    })
}

/// Rows `start..start+len` of a batch.
pub(crate) fn slice_batch(
    b: &TokenBatch,
    start: usize,
    len: usize,
) -> candle_core::Result<TokenBatch> {
    Ok(TokenBatch {
        input_ids: b.input_ids.narrow(0, start, len)?,
        completion_mask: b.completion_mask.narrow(0, start, len)?,
    })
}

/// Applies `f` to micro-batches of `mb` rows and concatenates the `[rows, T]` results.
pub(crate) fn map_micro(
    b: &TokenBatch,
    mb: usize,
    mut f: impl FnMut(&TokenBatch) -> candle_core::Result<Tensor>,
) -> Result<Tensor, RlError> {
    let n = b.input_ids.dim(0)?;
    let parts = (0..n)
        .step_by(mb.max(1))
        .map(|s| f(&slice_batch(b, s, mb.min(n - s))?))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Gradient of the loss over the whole batch, accumulated over micro-batches of `mb`
/// rows with global normalisation; returns (loss, stats, per-variable gradients).
/// `old_logprobs: None` means on-policy: the current log-probs, detached, stand in for them.
pub fn batch_gradients<P: Policy>(
    policy: &P,
    batch: &TokenBatch,
    old_logprobs: Option<&Tensor>,
    ref_logprobs: Option<&Tensor>,
    advantages: &Tensor,
    params: &LossParams,
    mb: usize,
) -> Result<(f64, LossStats, Vec<Option<Tensor>>), RlError> {
    let vars = policy.trainable_vars();
    let norm = Normaliser::from_mask(&batch.completion_mask)?;
    let n = batch.input_ids.dim(0)?;
    let mut acc = vec![None; vars.len()];
    let (mut loss_sum, mut stats) = (0.0, LossStats::default());
    for start in (0..n).step_by(mb.max(1)) {
        let len = mb.min(n - start);
        let sub = slice_batch(batch, start, len)?;
        let out = policy.token_logprobs(&sub, true)?;
        let old = match old_logprobs {
            Some(o) => o.narrow(0, start, len)?,
            None => out.logprobs.detach(),
        };
        let rf = ref_logprobs.map(|r| r.narrow(0, start, len)).transpose()?;
        let adv = advantages.narrow(0, start, len)?;
        let inp = LossInputs {
            logprobs: &out.logprobs,
            old_logprobs: &old,
            ref_logprobs: rf.as_ref(),
            advantages: &adv,
            mask: &sub.completion_mask,
            entropy: out.entropy.as_ref(),
        };
        let (loss, st) = policy_loss(&inp, params, &norm)?;
        accumulate_grads(&mut acc, &loss.backward()?, &vars)?;
        loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        stats.add(&st);
    }
    Ok((loss_sum, stats, acc))
}

/// One optimizer step on a rollout batch; returns (loss, stats, grad norm).
fn learn<P: Policy>(
    policy: &P,
    opt: &mut AdamW,
    r: &RolloutBatch,
    cfg: &TrainConfig,
    lr: f64,
) -> Result<(f64, LossStats, f64), RlError> {
    let (loss, stats, mut grads) = batch_gradients(
        policy,
        &r.batch,
        r.old_logprobs.as_ref(),
        r.ref_logprobs.as_ref(),
        &r.advantages,
        &LossParams::from(cfg),
        cfg.per_device_train_batch_size,
    )?;
    let norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
    opt.step(&grads, lr)?;
    Ok((loss, stats, norm))
}
