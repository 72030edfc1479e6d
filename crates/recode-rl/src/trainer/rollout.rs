//! Rollout collection: prompts in the seeded per-epoch order → G completions each → rewards
//! (+ overlong shaping) → dynamic-sampling filter (DAPO) → group advantages, the padded token
//! batch and the old/reference log-probs of one training batch.

use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch::{build_batch, map_micro};
use super::metrics::{RolloutMetrics, StepTiming};
use super::Trainer;
use crate::advantage::{
    group_advantages, group_is_constant, overlong_penalty, FilterStats, GroupFilter,
};
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

/// A scored, filtered generation batch ready for μ optimizer steps.
#[derive(Debug, Clone)]
pub(super) struct RolloutBatch {
    pub(super) batch: TokenBatch,
    /// Log-probs under the sampling policy; `None` when μ = 1: every micro-batch of the single
    /// update then sees the sampling weights, so the current log-probs, detached, are the old
    /// ones (as TRL does), and a forward pass is saved.
    pub(super) old_logprobs: Option<Tensor>,
    pub(super) ref_logprobs: Option<Tensor>,
    pub(super) advantages: Tensor,
    pub(super) metrics: RolloutMetrics,
}

/// One prompt, its G completions and their (weighted, shaped) rewards.
type Group = (PromptItem, Vec<Completion>, Vec<f64>);

/// Running sums over every generated completion of one collection (before filtering).
#[derive(Debug, Default)]
struct RewardTally {
    /// Every total reward, in generation order.
    rewards: Vec<f64>,
    /// Sum of each reward component.
    components: Vec<f64>,
    /// Sum of each indicator.
    indicators: Vec<f64>,
    /// Completion tokens generated.
    tokens: usize,
    /// Completions cut at the length limit.
    truncated: usize,
}

impl RewardTally {
    fn new(n_components: usize, n_indicators: usize) -> Self {
        RewardTally {
            components: vec![0.0; n_components],
            indicators: vec![0.0; n_indicators],
            ..Default::default()
        }
    }

    fn add(&mut self, parts: &[f64], indicators: &[f64], c: &Completion) {
        for (s, v) in self.indicators.iter_mut().zip(indicators) {
            *s += v;
        }
        for (s, v) in self.components.iter_mut().zip(parts) {
            *s += v;
        }
        self.tokens += c.tokens.len();
        self.truncated += c.truncated as usize;
    }

    /// Means over every generated completion, named.
    fn metrics(
        self,
        names: Vec<String>,
        ind_names: Vec<String>,
        filter: FilterStats,
    ) -> RolloutMetrics {
        let n_all = self.rewards.len().max(1) as f64;
        let mean = self.rewards.iter().sum::<f64>() / n_all;
        let std = (self.rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n_all).sqrt();
        RolloutMetrics {
            reward_mean: mean,
            reward_std: std,
            reward_components: names
                .into_iter()
                .zip(self.components.iter().map(|s| s / n_all))
                .collect(),
            indicators: ind_names
                .into_iter()
                .zip(self.indicators.iter().map(|s| s / n_all))
                .collect(),
            completion_len_mean: self.tokens as f64 / n_all,
            truncated_fraction: self.truncated as f64 / n_all,
            filter,
            generated_tokens: self.tokens,
        }
    }
}

impl<P: Policy, S: RolloutSource<P>, R: Rewarder> Trainer<P, S, R> {
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
    pub(super) fn collect_rollouts(
        &mut self,
        timing: &mut StepTiming,
    ) -> Result<RolloutBatch, RlError> {
        let (kept, metrics) = self.sample_groups(timing)?;
        if kept.is_empty() {
            return Err(RlError::NoVaryingGroup {
                gen_batches: metrics.filter.gen_batches,
            });
        }
        self.prepare_batch(&kept, metrics, timing)
    }

    /// Draws generation batches until the dynamic-sampling filter holds enough groups with
    /// differing rewards (one batch, unfiltered, without dynamic sampling); returns the groups
    /// to train on and the reward figures of every completion generated.
    fn sample_groups(
        &mut self,
        timing: &mut StepTiming,
    ) -> Result<(Vec<Group>, RolloutMetrics), RlError> {
        let n_prompts = self.cfg.generation_batch_size() / self.cfg.num_generations;
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
        let mut tally = RewardTally::new(names.len(), ind_names.len());
        let mut filter = GroupFilter::new(n_prompts, budget);
        let mut kept_plain = Vec::new();
        // The groups of the latest generation batch: what dynamic sampling falls back to when
        // no group of any batch had differing rewards.
        let mut last_groups = Vec::new();
        while !filter.done() {
            let batch = self.generation_batch(n_prompts, &params, &mut tally, timing)?;
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
        timing.tokens_per_s = if timing.generate_s > 0.0 {
            tally.tokens as f64 / timing.generate_s
        } else {
            0.0
        };
        Ok((kept, tally.metrics(names, ind_names, stats)))
    }

    /// One generation batch: the next `n_prompts` prompts, G completions each, scored into
    /// groups (each paired with its rewards, as the filter takes them).
    fn generation_batch(
        &mut self,
        n_prompts: usize,
        params: &SamplingParams,
        tally: &mut RewardTally,
        timing: &mut StepTiming,
    ) -> Result<Vec<(Group, Vec<f64>)>, RlError> {
        let g = self.cfg.num_generations;
        let prompts = self.next_prompts(n_prompts);
        let t0 = Instant::now();
        let comps = self
            .source
            .generate(&self.policy, &prompts, g, params, &mut self.rng)?;
        timing.generate_s += t0.elapsed().as_secs_f64();
        if comps.len() != prompts.len() * g {
            return Err(RlError::CompletionCount {
                got: comps.len(),
                expected: prompts.len() * g,
            });
        }
        let t1 = Instant::now();
        let mut batch = Vec::with_capacity(prompts.len());
        for (p, group) in prompts.into_iter().zip(comps.chunks(g)) {
            let mut rewards = Vec::with_capacity(g);
            for c in group {
                rewards.push(self.shaped_reward(&p, c, tally)?);
            }
            batch.push(((p, group.to_vec(), rewards.clone()), rewards));
        }
        timing.score_s += t1.elapsed().as_secs_f64();
        Ok(batch)
    }

    /// The weighted reward of one completion plus its overlong shaping, added to `tally`.
    fn shaped_reward(
        &self,
        p: &PromptItem,
        c: &Completion,
        tally: &mut RewardTally,
    ) -> Result<f64, RlError> {
        let (parts, ind) = self.rewarder.score_with_indicators(p, c)?;
        tally.add(&parts, &ind, c);
        let shaped = overlong_penalty(
            c.tokens.len(),
            self.cfg.max_completion_length,
            self.cfg.overlong_buffer_len,
            self.cfg.overlong_penalty_factor,
        );
        let reward = parts
            .iter()
            .zip(&self.weights)
            .map(|(v, w)| v * w)
            .sum::<f64>()
            + shaped;
        tally.rewards.push(reward);
        Ok(reward)
    }

    /// Group advantages, the padded token batch and, when the update needs them, the old
    /// (μ > 1) and reference (β > 0) log-probs of the kept groups.
    fn prepare_batch(
        &self,
        kept: &[Group],
        metrics: RolloutMetrics,
        timing: &mut StepTiming,
    ) -> Result<RolloutBatch, RlError> {
        let rewards: Vec<f64> = kept
            .iter()
            .flat_map(|(_, _, r)| r.iter().copied())
            .collect();
        let adv = group_advantages(
            &rewards,
            self.cfg.num_generations,
            self.cfg.scale_rewards,
            self.cfg.advantage_std,
        );
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

/// Per-epoch permutation of `0..n` from the run seed.
pub(crate) fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    order.shuffle(&mut rng);
    order
}
