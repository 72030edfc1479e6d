//! The seams between the trainer and a model runtime.
//!
//! The trainer only needs: per-token log-probabilities of given token sequences
//! (with autograd), the same under the frozen reference, the trainable variables,
//! and a way to sample completions. `recode-model` implements these for its
//! Llama/Qwen2 decoder; tests implement them for tiny candle policies.

use candle_core::{Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// Padded token sequences (prompt followed by completion) for one forward pass.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Token ids, `[B, T]` u32, right-padded.
    pub input_ids: Tensor,
    /// 1 on completion tokens, 0 on prompt tokens and padding, `[B, T]` (policy dtype).
    pub completion_mask: Tensor,
}

/// What a policy forward pass returns.
#[derive(Debug, Clone)]
pub struct PolicyOutput {
    /// `logprobs[b, t] = log π(ids[b, t] | ids[b, <t])` for t ≥ 1 (value at t = 0 is
    /// arbitrary and always masked), `[B, T]`, attached to the autograd graph.
    pub logprobs: Tensor,
    /// Optional per-token entropy of π(· | `ids[b, <t]`), `[B, T]` (for metrics only).
    pub entropy: Option<Tensor>,
}

/// A trainable policy π_θ with a frozen reference π_ref.
pub trait Policy {
    /// Per-token log-probabilities (and optionally entropies) of `batch` under π_θ.
    fn token_logprobs(
        &self,
        batch: &TokenBatch,
        with_entropy: bool,
    ) -> candle_core::Result<PolicyOutput>;
    /// Per-token log-probabilities under the frozen reference (adapters disabled or
    /// a frozen copy of the initial weights), `[B, T]`, detached.
    fn reference_logprobs(&self, batch: &TokenBatch) -> candle_core::Result<Tensor>;
    /// Trainable variables with stable names (the checkpoint tensor names).
    fn trainable_vars(&self) -> Vec<(String, Var)>;
    /// Device the policy's tensors live on.
    fn device(&self) -> &Device;
    /// Detached log-probabilities for the stored "old" policy (rollout time): no graph,
    /// no dropout. The default reuses [`Policy::token_logprobs`].
    fn rollout_logprobs(&self, batch: &TokenBatch) -> candle_core::Result<Tensor> {
        Ok(self.token_logprobs(batch, false)?.logprobs.detach())
    }
    /// Position in the seeded stream of training-forward dropout masks (saved in checkpoints
    /// so a resumed run draws the same masks). Default: 0 (no dropout stream).
    fn dropout_position(&self) -> u64 {
        0
    }
    /// Moves the dropout-mask stream to `position` (on resume). Default: nothing.
    fn set_dropout_position(&self, _position: u64) {}
    /// Writes whatever a checkpoint needs beyond the trainable tensors (e.g. a PEFT
    /// adapter directory) into `dir`. Default: nothing.
    fn export(&self, _dir: &std::path::Path) -> Result<(), crate::RlError> {
        Ok(())
    }
}

/// Sampling knobs passed to a rollout source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature.
    pub temperature: f64,
    /// Nucleus threshold (1.0 = off).
    pub top_p: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Maximum new tokens.
    pub max_new_tokens: usize,
}

/// One training prompt: its tokens and the reference answer the reward compares to.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptItem {
    /// Prompt token ids (already rendered with the chat template and truncated).
    pub tokens: Vec<u32>,
    /// Reference solution text (the reward's target).
    pub target: String,
    /// The code the prompt asks to change (ReCode's old code; empty when the task has none),
    /// for rewards and indicators that look at the edit rather than the result.
    pub old_code: String,
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Generated token ids (without the prompt).
    pub tokens: Vec<u32>,
    /// Decoded text (what the reward scores).
    pub text: String,
    /// True when generation hit `max_new_tokens` without a stop.
    pub truncated: bool,
}

/// Produces completions for prompts with the current policy (the generation seam).
pub trait RolloutSource<P: Policy> {
    /// `n` completions for each prompt, in prompt order (`prompts.len() * n` items).
    fn generate(
        &mut self,
        policy: &P,
        prompts: &[PromptItem],
        n: usize,
        params: &SamplingParams,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Completion>, crate::RlError>;

    /// Told when greedy validation starts (`true`) and ends (`false`), so a progress display
    /// can tell validation from rollouts; nothing by default.
    fn set_validating(&mut self, _validating: bool) {}
}

/// Scores a completion against its prompt's target (the reward seam).
pub trait Rewarder {
    /// Names of the components `score` returns, in order (metrics keys).
    fn component_names(&self) -> Vec<String>;
    /// Component values for one completion.
    fn score(
        &self,
        prompt: &PromptItem,
        completion: &Completion,
    ) -> Result<Vec<f64>, crate::RlError>;
    /// Names of 0/1 indicators reported as rates in the metrics (not part of the
    /// reward), e.g. `format_ok`, `exact_match`.
    fn indicator_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Components and indicators of one completion in one pass.
    fn score_with_indicators(
        &self,
        prompt: &PromptItem,
        completion: &Completion,
    ) -> Result<(Vec<f64>, Vec<f64>), crate::RlError> {
        Ok((self.score(prompt, completion)?, Vec::new()))
    }
}
