//! Token batches: padded `[prompt ‖ completion]` rows with a completion mask, and the
//! micro-batch slicing every forward pass goes through.

use candle_core::{Device, Tensor};

use crate::policy::{Completion, TokenBatch};
use crate::RlError;

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
