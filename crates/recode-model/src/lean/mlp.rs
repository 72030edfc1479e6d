//! The feed-forward half of a decoder layer as one graph node, for a frozen MLP (no adapter on
//! gate/up/down, frozen norm: LoRA on the attention projections, the common case).
//!
//! Composed of single lean ops, candle's graph keeps every intermediate alive until `backward`:
//! the normed input, both pre-activations, the SwiGLU output and the MLP output, ~5.8k floats per
//! token and layer for SmolLM2. Fused, the node keeps only the two pre-activations (the gradient
//! of SwiGLU needs them) and recomputes the norm: ~3k floats, the largest activation saving of a
//! LoRA step. The values are those of the composed ops, in the same order.

use candle_core::{DType, Tensor};

use super::linear::{rms_grad_real, swiglu_grad_real, Frozen};
use super::{rms_norm, swiglu, with_grad};
use crate::error::Result;

/// The frozen weights of a SwiGLU MLP.
pub(crate) struct FrozenMlp {
    pub gate: Frozen,
    pub up: Frozen,
    pub down: Frozen,
}

/// `x + down(silu(gate(n)) · up(n))`, `n = rms_norm(x) · norm_w`, for `x` `[.., hidden]` in f32
/// or f64 and a frozen `norm_w`. The backward gives the gradient of `x` only.
pub(crate) fn mlp_residual(
    x: &Tensor,
    norm_w: &Tensor,
    eps: f64,
    mlp: FrozenMlp,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let hs = *dims.last().unwrap_or(&0);
    let n = x.elem_count() / hs.max(1);
    let xd = x.detach().contiguous()?;
    let w = norm_w.detach();
    let hn = rms_norm(&xd, &w, eps)?.reshape((n, hs))?;
    let g = mlp.gate.product_t(&hn)?;
    let u = mlp.up.product_t(&hn)?;
    drop(hn);
    let y = mlp.down.product_t(&swiglu(&g, &u)?)?;
    let value = (&xd + y.reshape(dims.as_slice())?)?;
    let dt = x.dtype();
    with_grad("lean-mlp-residual", value, &[x], move |args, _, dy| {
        let x = &args[0];
        let dy2 = dy.contiguous()?.reshape((n, hs))?;
        let da = mlp.down.product(&dy2)?;
        let (dg, du) = match dt {
            DType::F32 => swiglu_grad_real::<f32>(&g, &u, &da)?,
            _ => swiglu_grad_real::<f64>(&g, &u, &da)?,
        };
        drop(da);
        let dhn = (mlp.gate.product(&dg)? + mlp.up.product(&du)?)?;
        let dhn = dhn.reshape(dims.as_slice())?;
        let dx = match dt {
            DType::F32 => rms_grad_real::<f32>(x, &w, &dhn, eps)?,
            _ => rms_grad_real::<f64>(x, &w, &dhn, eps)?,
        };
        Ok(vec![Some((dx + dy)?)])
    })
}

/// Whether [`mlp_residual`] runs on tensors of this type (its kernels are f32 / f64).
pub(crate) fn fusable(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}
