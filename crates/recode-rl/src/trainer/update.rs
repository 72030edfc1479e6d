//! The loss/update step: gradients of the clipped objective over micro-batches, norm clipping
//! and the AdamW step.

use candle_core::{DType, Tensor};

use super::batch::slice_batch;
use super::rollout::RolloutBatch;
use crate::config::TrainConfig;
use crate::loss::{policy_loss, LossInputs, LossParams, LossStats, Normaliser};
use crate::optim::{accumulate_grads, clip_grad_norm, AdamW};
use crate::policy::{Policy, TokenBatch};
use crate::RlError;

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
pub(super) fn learn<P: Policy>(
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
