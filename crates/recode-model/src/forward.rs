//! What a forward pass of the model and of its adapters share: the public options
//! ([`ForwardOpts`], [`LogitsMode`]), the internal pass context [`Ctx`] and the `x @ W^T` products.
//! Both [`crate::model`] and [`crate::adapter`] build on this module; it depends on neither.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::lean;

/// Inference products with at most this many input rows (decode steps) use the packed
/// block-quantised weights when the model has them; larger ones (prefill) use the dense gemm.
pub(crate) const PACKED_MAX_ROWS: usize = 16;

/// Rows of `x` seen as a `[rows, last_dim]` matrix.
pub(crate) fn rows_of(x: &Tensor) -> usize {
    let inner = x.dims().last().copied().unwrap_or(1).max(1);
    x.elem_count() / inner
}

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOpts {
    /// Record the graph for `backward` (differentiable kernels; no KV cache).
    pub grad: bool,
    /// Training behaviour (adapter dropout active).
    pub train: bool,
    /// Apply the LoRA/DoRA adapters; `false` gives the frozen base model (the KL reference).
    pub use_adapters: bool,
}

impl ForwardOpts {
    /// Inference with adapters: fused kernels, no graph.
    pub const INFERENCE: Self = Self {
        grad: false,
        train: false,
        use_adapters: true,
    };
    /// Policy forward for training: graph recorded, dropout on, adapters on.
    pub const TRAIN: Self = Self {
        grad: true,
        train: true,
        use_adapters: true,
    };
    /// Frozen reference forward: base model only, no graph.
    pub const REFERENCE: Self = Self {
        grad: false,
        train: false,
        use_adapters: false,
    };
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// Logits for every input position: `[B, T, V]`.
    All,
    /// Logits for the last position only: `[B, 1, V]` (generation; skips most of the vocab matmul).
    Last,
}

/// A parameter as used by a forward pass: detached when no graph is wanted, so that inference never
/// keeps activations alive through trainable variables.
pub(crate) fn use_param(t: &Tensor, grad: bool) -> Tensor {
    if grad {
        t.clone()
    } else {
        t.detach()
    }
}

/// How one forward pass runs internally: the public options plus the kernel family, whether
/// parameters enter the graph, and the dropout seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub o: ForwardOpts,
    /// Memory-lean kernels with custom backward passes (gradient forwards on CPU).
    pub lean: bool,
    /// Parameters enter the graph (`false` for the graph-free pass of a checkpointed layer).
    pub track: bool,
    /// Seed of this forward's dropout masks (lean kernels), mixed with a per-projection slot.
    pub seed: u64,
}

impl Ctx {
    pub(crate) fn new(o: ForwardOpts, lean: bool, seed: u64) -> Self {
        Self {
            o,
            lean: lean && o.grad,
            track: o.grad,
            seed,
        }
    }

    /// The same pass with the seed of dropout slot `slot`.
    pub(crate) fn slot(&self, slot: u64) -> Self {
        Self {
            seed: lean::mix_seed(self.seed, slot),
            ..*self
        }
    }

    /// A parameter as this pass uses it (see [`use_param`]).
    pub(crate) fn param(&self, t: &Tensor) -> Tensor {
        use_param(t, self.track)
    }
}

/// `x @ w^T`; with lean kernels and a frozen `w`, through [`lean::linear`] (no weight gradient).
pub(crate) fn matmul_t_ctx(x: &Tensor, w: &Tensor, c: &Ctx) -> Result<Tensor> {
    if c.lean && !w.track_op() {
        lean::linear(x, lean::Frozen::Dense(w.clone()), None, None, None, None)
    } else {
        matmul_t(x, w)
    }
}

/// `x @ w^T` for `x` of any rank `[..., in]` and `w` of shape `[out, in]`.
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let inner = dims[dims.len() - 1];
    let rows = x.elem_count() / inner.max(1);
    let out = w.dim(0)?;
    let x2 = if x.is_contiguous() {
        x.reshape((rows, inner))?
    } else {
        x.contiguous()?.reshape((rows, inner))?
    };
    let y = x2.matmul(&w.t()?)?;
    let mut od = dims.to_vec();
    *od.last_mut().expect("rank >= 1") = out;
    Ok(y.reshape(od)?)
}

/// Whether a forward of `x` under `c` may use the raw f32 CPU kernels of [`crate::decode`].
pub(crate) fn is_cpu_f32_inference(x: &Tensor, c: &Ctx) -> bool {
    !c.o.grad && x.dtype() == DType::F32 && x.device().is_cpu()
}
