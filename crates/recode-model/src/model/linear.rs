//! A projection `y = x W^T (+ b)` with its optional adapter and packed inference copy.

use std::sync::Arc;

use candle_core::Tensor;

use crate::adapter::Adapter;
use crate::error::Result;
use crate::forward::{matmul_t_ctx, rows_of, Ctx, PACKED_MAX_ROWS};
use crate::lean;
use crate::packed::PackedWeight;

/// A projection `y = x W^T (+ b)` that may carry a LoRA/DoRA adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The dense base weight `[out, in]`; `None` once released, when the packed copy is the
    /// only one (a frozen GGUF base, see [`super::CausalLM::release_dense_base`]).
    pub(crate) weight: Option<Tensor>,
    pub(crate) bias: Option<Tensor>,
    pub(crate) adapter: Option<Adapter>,
    /// The unmerged base weight, kept while the adapter is merged into `weight`.
    pub(crate) unmerged: Option<Tensor>,
    /// The base weight in its GGUF blocks (fast inference decode); `None` once trainable.
    pub(crate) packed: Option<Arc<PackedWeight>>,
    /// `[out, in]`.
    shape: (usize, usize),
}

impl Linear {
    pub(super) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let shape = weight.dims2()?;
        Ok(Self {
            weight: Some(weight),
            bias,
            adapter: None,
            unmerged: None,
            packed: None,
            shape,
        })
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.shape.0
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.shape.1
    }

    /// The dense base weight: the kept one, or a transient dequantised copy of the packed blocks.
    pub(crate) fn dense(&self) -> Result<Tensor> {
        match (&self.weight, &self.packed) {
            (Some(w), _) => Ok(w.clone()),
            (None, Some(p)) => p.dequantize_tensor(&candle_core::Device::Cpu),
            // Not reachable: only a projection with a packed copy releases its dense weight, and
            // dropping the packed copies brings the dense weights back first.
            (None, None) => Err(candle_core::Error::Msg(
                "projection without dense or packed weight".into(),
            )
            .into()),
        }
    }

    /// Drops the dense weight when the packed blocks can stand in for it (frozen f32 CPU weight,
    /// no merged adapter); returns the bytes freed.
    pub(crate) fn release_dense(&mut self) -> usize {
        let releasable = self.packed.is_some()
            && self.unmerged.is_none()
            && self.weight.as_ref().is_some_and(|w| {
                !w.track_op() && w.dtype() == candle_core::DType::F32 && w.device().is_cpu()
            });
        if !releasable {
            return 0;
        }
        self.weight = None;
        self.shape.0 * self.shape.1 * 4
    }

    /// Brings back a dense weight (full fine-tuning, dropping the packed copy).
    pub(crate) fn materialise_dense(&mut self) -> Result<()> {
        if self.weight.is_none() {
            self.weight = Some(self.dense()?);
        }
        Ok(())
    }

    /// The base weight as a lean product reads it when this projection is a plain frozen
    /// `x W^T` in pass `c` (no bias, no active or merged adapter, weight not trained).
    pub(crate) fn plain_frozen(&self, c: &Ctx) -> Option<lean::Frozen> {
        let adapter_on = self.adapter.is_some() && c.o.use_adapters;
        if self.bias.is_some() || adapter_on || self.unmerged.is_some() {
            return None;
        }
        match (&self.weight, &self.packed) {
            (Some(w), _) => {
                let w = c.param(w);
                (!w.track_op()).then_some(lean::Frozen::Dense(w))
            }
            (None, Some(p)) => Some(lean::Frozen::Packed(p.clone())),
            (None, None) => None,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor, c: &Ctx) -> Result<Tensor> {
        self.project(x, c, None, None)
    }

    /// [`Self::forward`] followed by the rotary embedding `rotary` (`[B, H, T, D]`, lean passes
    /// only): one graph node with the projection when it runs as a lean product.
    pub(crate) fn forward_rotary(
        &self,
        x: &Tensor,
        c: &Ctx,
        rotary: Option<&lean::Rotary>,
    ) -> Result<Tensor> {
        self.project(x, c, rotary, None)
    }

    /// `residual + forward(x)`: one graph node with the projection when it runs as a lean
    /// product, so the projection's output is not kept for the backward.
    pub(crate) fn forward_residual(
        &self,
        x: &Tensor,
        c: &Ctx,
        residual: &Tensor,
    ) -> Result<Tensor> {
        self.project(x, c, None, Some(residual))
    }

    fn project(
        &self,
        x: &Tensor,
        c: &Ctx,
        rotary: Option<&lean::Rotary>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let o = &c.o;
        let merged = self.unmerged.is_some();
        // `None`: the base lives only in its packed blocks (frozen).
        let w = match (&self.unmerged, o.use_adapters) {
            (Some(base), false) => Some(c.param(base)),
            _ => self.weight.as_ref().map(|w| c.param(w)),
        };
        let bias = self.bias.as_ref().map(|b| c.param(b));
        let adapter = self.adapter.as_ref().filter(|_| o.use_adapters && !merged);
        let frozen =
            w.as_ref().is_none_or(|w| !w.track_op()) && bias.as_ref().is_none_or(|b| !b.track_op());
        if c.lean && frozen && adapter.is_none_or(|a| a.magnitude.is_none()) {
            let lora = adapter.map(|ad| lean::Lora {
                a: c.param(ad.a.as_tensor()),
                b: c.param(ad.b.as_tensor()),
                scale: ad.scale,
                dropout: (o.train && ad.dropout > 0.0).then_some((ad.dropout, c.seed)),
            });
            let base = match (w, &self.packed) {
                (Some(w), _) => lean::Frozen::Dense(w),
                (None, Some(p)) => lean::Frozen::Packed(p.clone()),
                (None, None) => lean::Frozen::Dense(self.dense()?),
            };
            return lean::linear(x, base, bias.as_ref(), lora, rotary.cloned(), residual);
        }
        let dense = || -> Result<Tensor> {
            match &w {
                Some(w) => Ok(w.clone()),
                None => self.dense(),
            }
        };
        // The packed copy holds the base weight: usable unless a merged adapter is wanted.
        let base_in_use = !merged || !o.use_adapters;
        let mut y = match &self.packed {
            Some(p) if !o.grad && base_in_use && rows_of(x) <= PACKED_MAX_ROWS => p.matmul_t(x)?,
            _ => matmul_t_ctx(x, &dense()?, c)?,
        };
        if let Some(ad) = adapter {
            y = ad.apply(x, &dense, &y, c)?;
        }
        if let Some(b) = &bias {
            y = y.broadcast_add(b)?;
        }
        let y = match rotary {
            Some(r) => lean::rope(&y, r)?,
            None => y,
        };
        Ok(match residual {
            Some(r) => (r + y)?,
            None => y,
        })
    }
}
