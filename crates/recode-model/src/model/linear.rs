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
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
    pub(crate) adapter: Option<Adapter>,
    /// The unmerged base weight, kept while the adapter is merged into `weight`.
    pub(crate) unmerged: Option<Tensor>,
    /// The base weight in its GGUF blocks (fast inference decode); `None` once trainable.
    pub(crate) packed: Option<Arc<PackedWeight>>,
}

impl Linear {
    pub(super) fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            adapter: None,
            unmerged: None,
            packed: None,
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub(crate) fn forward(&self, x: &Tensor, c: &Ctx) -> Result<Tensor> {
        let o = &c.o;
        let merged = self.unmerged.is_some();
        let w = match (&self.unmerged, o.use_adapters) {
            (Some(base), false) => c.param(base),
            _ => c.param(&self.weight),
        };
        let bias = self.bias.as_ref().map(|b| c.param(b));
        let adapter = self.adapter.as_ref().filter(|_| o.use_adapters && !merged);
        let frozen = !w.track_op() && bias.as_ref().is_none_or(|b| !b.track_op());
        if c.lean && frozen && adapter.is_none_or(|a| a.magnitude.is_none()) {
            let lora = adapter.map(|ad| lean::Lora {
                a: c.param(ad.a.as_tensor()),
                b: c.param(ad.b.as_tensor()),
                scale: ad.scale,
                dropout: (o.train && ad.dropout > 0.0).then_some((ad.dropout, c.seed)),
            });
            return lean::linear(x, &w, bias.as_ref(), lora);
        }
        // The packed copy holds the base weight: usable unless a merged adapter is wanted.
        let base_in_use = !merged || !o.use_adapters;
        let mut y = match &self.packed {
            Some(p) if !o.grad && base_in_use && rows_of(x) <= PACKED_MAX_ROWS => p.matmul_t(x)?,
            _ => matmul_t_ctx(x, &w, c)?,
        };
        if let Some(ad) = adapter {
            y = ad.apply(x, &w, &y, c)?;
        }
        if let Some(b) = &bias {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }
}
