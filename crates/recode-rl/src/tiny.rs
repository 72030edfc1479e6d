//! A tiny, real, differentiable policy for tests and demos: a bigram softmax model
//! π(x_t | x_{t−1}) = softmax(W[x_{t−1}]), its sampler, and a synthetic reward
//! (fraction of completion tokens equal to a target token) that such a policy can
//! learn. It exercises every seam of [`crate::policy`] without a language model.

use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::policy::{
    Completion, Policy, PolicyOutput, PromptItem, Rewarder, RolloutSource, SamplingParams,
    TokenBatch,
};
use crate::RlError;

/// Bigram softmax policy with a frozen copy of its initial table as reference.
#[derive(Debug)]
pub struct BigramPolicy {
    table: Var,
    reference: Tensor,
    device: Device,
}

impl BigramPolicy {
    /// A `vocab × vocab` logit table drawn from N(0, `scale`²) with `seed` (f64 for exact tests).
    pub fn new(vocab: usize, scale: f64, seed: u64) -> candle_core::Result<Self> {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let vals: Vec<f64> = (0..vocab * vocab)
            .map(|_| {
                // Box–Muller from two uniforms.
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                scale * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        let device = Device::Cpu;
        let t = Tensor::from_vec(vals, (vocab, vocab), &device)?;
        Ok(BigramPolicy {
            reference: t.copy()?,
            table: Var::from_tensor(&t)?,
            device,
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.table.dim(0).unwrap_or(0)
    }

    /// The trainable logit table.
    pub fn table(&self) -> &Var {
        &self.table
    }

    /// Next-token distribution rows for previous tokens `prev` (`[N]` u32) → `[N, V]` logits.
    fn logits(table: &Tensor, ids: &Tensor) -> candle_core::Result<(Tensor, Tensor, usize, usize)> {
        let (b, t) = ids.dims2()?;
        let prev = ids.narrow(1, 0, t - 1)?.flatten_all()?;
        let next = ids.narrow(1, 1, t - 1)?.flatten_all()?;
        Ok((table.index_select(&prev, 0)?, next, b, t))
    }

    fn logprobs_with(
        table: &Tensor,
        batch: &TokenBatch,
        entropy: bool,
    ) -> candle_core::Result<PolicyOutput> {
        let (logits, next, b, t) = Self::logits(table, &batch.input_ids)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let picked = logp.gather(&next.unsqueeze(1)?, 1)?.reshape((b, t - 1))?;
        let pad = Tensor::zeros((b, 1), logp.dtype(), logp.device())?;
        let logprobs = Tensor::cat(&[&pad, &picked], 1)?;
        let entropy = if entropy {
            let h = (logp.exp()? * &logp)?
                .sum(D::Minus1)?
                .neg()?
                .reshape((b, t - 1))?;
            Some(Tensor::cat(&[&pad, &h.detach()], 1)?)
        } else {
            None
        };
        Ok(PolicyOutput { logprobs, entropy })
    }
}

impl Policy for BigramPolicy {
    fn token_logprobs(
        &self,
        batch: &TokenBatch,
        with_entropy: bool,
    ) -> candle_core::Result<PolicyOutput> {
        Self::logprobs_with(self.table.as_tensor(), batch, with_entropy)
    }
    fn reference_logprobs(&self, batch: &TokenBatch) -> candle_core::Result<Tensor> {
        Ok(Self::logprobs_with(&self.reference, batch, false)?
            .logprobs
            .detach())
    }
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        vec![("bigram.table".into(), self.table.clone())]
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

/// Samples from a [`BigramPolicy`] token by token; token `eos` ends a completion.
#[derive(Debug, Clone, Copy)]
pub struct BigramSampler {
    /// End-of-sequence token (included in the completion when sampled).
    pub eos: u32,
}

impl RolloutSource<BigramPolicy> for BigramSampler {
    fn generate(
        &mut self,
        policy: &BigramPolicy,
        prompts: &[PromptItem],
        n: usize,
        params: &SamplingParams,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Completion>, RlError> {
        let table: Vec<Vec<f64>> = policy.table.as_tensor().to_dtype(DType::F64)?.to_vec2()?;
        let mut out = Vec::with_capacity(prompts.len() * n);
        for (pi, p) in prompts.iter().enumerate() {
            let start = *p.tokens.last().ok_or(RlError::EmptyPrompt { index: pi })?;
            for _ in 0..n {
                let (mut prev, mut toks, mut truncated) = (start, Vec::new(), true);
                for _ in 0..params.max_new_tokens {
                    let row = &table[prev as usize];
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = row
                        .iter()
                        .map(|l| ((l - m) / params.temperature).exp())
                        .collect();
                    let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
                    let mut tok = w.len() - 1;
                    for (i, wi) in w.iter().enumerate() {
                        if u < *wi {
                            tok = i;
                            break;
                        }
                        u -= wi;
                    }
                    toks.push(tok as u32);
                    prev = tok as u32;
                    if prev == self.eos {
                        truncated = false;
                        break;
                    }
                }
                let text = toks
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(Completion {
                    tokens: toks,
                    text,
                    truncated,
                });
            }
        }
        Ok(out)
    }
}

/// Reward = fraction of completion tokens equal to `target` (0 for empty completions).
#[derive(Debug, Clone, Copy)]
pub struct TargetTokenReward {
    /// The token the policy should learn to emit.
    pub target: u32,
}

impl Rewarder for TargetTokenReward {
    fn component_names(&self) -> Vec<String> {
        vec!["target_fraction".into()]
    }
    fn score(&self, _prompt: &PromptItem, c: &Completion) -> Result<Vec<f64>, RlError> {
        let hits = c.tokens.iter().filter(|&&t| t == self.target).count();
        Ok(vec![if c.tokens.is_empty() {
            0.0
        } else {
            hits as f64 / c.tokens.len() as f64
        }])
    }
}
