//! One decoder layer: pre-norm attention and SwiGLU MLP with residual connections.

use candle_core::Tensor;

use super::attention::{rms_norm, Attention, Rope};
use super::kv::KvUse;
use super::linear::Linear;
use crate::adapter::PROJECTIONS;
use crate::error::Result;
use crate::forward::Ctx;
use crate::lean;

#[derive(Debug, Clone)]
pub(super) struct Mlp {
    pub(super) gate: Linear,
    pub(super) up: Linear,
    pub(super) down: Linear,
}

impl Mlp {
    /// `x + mlp(rms_norm(x) · norm_w)` as one lean node when every projection is plain frozen
    /// and the norm weight is not trained ([`lean::mlp_residual`]); `None` otherwise.
    fn fused_residual(
        &self,
        x: &Tensor,
        norm_w: &Tensor,
        eps: f64,
        c: &Ctx,
    ) -> Result<Option<Tensor>> {
        if !c.lean || norm_w.track_op() || !lean::fusable(x.dtype()) {
            return Ok(None);
        }
        let (Some(gate), Some(up), Some(down)) = (
            self.gate.plain_frozen(c),
            self.up.plain_frozen(c),
            self.down.plain_frozen(c),
        ) else {
            return Ok(None);
        };
        let mlp = lean::FrozenMlp { gate, up, down };
        lean::mlp_residual(x, norm_w, eps, mlp).map(Some)
    }

    fn forward(&self, x: &Tensor, c: &Ctx) -> Result<Tensor> {
        let g = self.gate.forward(x, &c.slot(4))?;
        let u = self.up.forward(x, &c.slot(5))?;
        let a = if c.lean {
            lean::swiglu(&g, &u)?
        } else {
            (g.silu()? * u)?
        };
        self.down.forward(&a, &c.slot(6))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) attn: Attention,
    pub(super) mlp: Mlp,
    pub(super) ln1: Tensor,
    pub(super) ln2: Tensor,
}

impl Block {
    /// One decoder layer on `x` `[B, T, H]` (layer `i`, for the dropout seeds).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &self,
        i: usize,
        x: &Tensor,
        rope: &Rope,
        bias: &Tensor,
        kv: KvUse<'_>,
        c: &Ctx,
        eps: f64,
    ) -> Result<Tensor> {
        let c = c.slot(i as u64);
        let norm = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
            let w = c.param(w);
            if c.lean {
                lean::rms_norm(x, &w, eps)
            } else {
                rms_norm(x, &w, eps, c.o.grad)
            }
        };
        let hn = norm(x, &self.ln1)?;
        let x = self.attn.forward(&hn, x, rope, bias, kv, &c)?;
        if let Some(y) = self.mlp.fused_residual(&x, &c.param(&self.ln2), eps, &c)? {
            return Ok(y);
        }
        let hn = norm(&x, &self.ln2)?;
        Ok((&x + self.mlp.forward(&hn, &c)?)?)
    }

    /// The tensors of this layer that a gradient forward may train.
    pub(super) fn parameters(&self) -> Vec<Tensor> {
        let mut out = vec![self.ln1.clone(), self.ln2.clone()];
        for name in PROJECTIONS {
            let l = self.projection(name).expect("known projection");
            out.extend(l.weight.iter().cloned());
            out.extend(l.bias.iter().cloned());
            out.extend(l.unmerged.iter().cloned());
            if let Some(ad) = &l.adapter {
                out.push(ad.a.as_tensor().clone());
                out.push(ad.b.as_tensor().clone());
                out.extend(ad.magnitude.iter().map(|m| m.as_tensor().clone()));
            }
        }
        out
    }

    /// The projection named `q_proj` … `down_proj`.
    pub(super) fn projection_mut(&mut self, name: &str) -> Option<&mut Linear> {
        Some(match name {
            "q_proj" => &mut self.attn.q,
            "k_proj" => &mut self.attn.k,
            "v_proj" => &mut self.attn.v,
            "o_proj" => &mut self.attn.o,
            "gate_proj" => &mut self.mlp.gate,
            "up_proj" => &mut self.mlp.up,
            "down_proj" => &mut self.mlp.down,
            _ => return None,
        })
    }

    pub(super) fn projection(&self, name: &str) -> Option<&Linear> {
        Some(match name {
            "q_proj" => &self.attn.q,
            "k_proj" => &self.attn.k,
            "v_proj" => &self.attn.v,
            "o_proj" => &self.attn.o,
            "gate_proj" => &self.mlp.gate,
            "up_proj" => &self.mlp.up,
            "down_proj" => &self.mlp.down,
            _ => return None,
        })
    }
}
