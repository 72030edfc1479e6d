//! Whole-layer decoding on raw f32 buffers: one decode step of every decoder layer without a
//! single generic tensor op.
//!
//! A decode step of a small model is a few dozen tiny products and elementwise ops per layer.
//! As candle ops each one allocates its output, may hand work to candle's own thread pool (which
//! then spins on a 2-core machine while rayon runs the products) and faults in fresh pages; on
//! SmolLM2-135M that overhead was about as large as the arithmetic. A [`DecodePlan`] takes what a
//! step needs from the model once per generation (the packed GGUF weights, norms, biases and
//! LoRA factors, copied to plain vectors) and [`DecodePlan::layer`] runs a layer on row buffers:
//! RMS norm, the packed projections (with their LoRA terms), rotary embedding, attention over the
//! cache (through a callback, so this module knows nothing of the cache's layout), the output
//! projection, the residuals and the SwiGLU MLP. Same maths as the tensor path, f32 throughout;
//! the model's parity tests check cached decoding against the full forward.

use std::sync::Arc;

use crate::decode;
use crate::error::Result;
use crate::packed::PackedWeight;

/// The LoRA term of a projection: `scale · (x Aᵀ) Bᵀ`, `a` `[rank, in]`, `b` `[out, rank]`.
#[derive(Debug, Clone)]
pub(crate) struct PlanLora {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub rank: usize,
    pub scale: f32,
}

/// One projection as a decode step applies it: packed base weight, optional bias and LoRA term.
#[derive(Debug, Clone)]
pub(crate) struct PlanProj {
    pub packed: Arc<PackedWeight>,
    pub bias: Option<Vec<f32>>,
    pub lora: Option<PlanLora>,
}

impl PlanProj {
    /// `x W^T (+ b) (+ LoRA)` for `x` `[m, in]`: `[m, out]`.
    pub fn apply(&self, x: &[f32], m: usize) -> Vec<f32> {
        let y = self.packed.matmul_slice(x, m);
        self.finish(x, y)
    }

    /// Several projections of the same input in one parallel pass (see
    /// [`PackedWeight::matmul_many`]).
    pub fn apply_many<const N: usize>(ps: [&PlanProj; N], x: &[f32], m: usize) -> [Vec<f32>; N] {
        let ws = ps.map(|p| &*p.packed);
        let ys = PackedWeight::matmul_many(&ws, x, m);
        let mut out = ps.into_iter().zip(ys).map(|(p, y)| p.finish(x, y));
        std::array::from_fn(|_| out.next().expect("one result per projection"))
    }

    /// Adds the LoRA term and the bias to the base product `y` of input `x`.
    fn finish(&self, x: &[f32], mut y: Vec<f32>) -> Vec<f32> {
        if let Some(l) = &self.lora {
            decode::lora_rows(x, &l.a, &l.b, l.rank, l.scale, &mut y);
        }
        if let Some(bias) = &self.bias {
            for row in y.chunks_exact_mut(bias.len()) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o += b;
                }
            }
        }
        y
    }
}

/// One decoder layer's weights for decoding.
#[derive(Debug, Clone)]
pub(crate) struct PlanLayer {
    pub ln1: Vec<f32>,
    pub ln2: Vec<f32>,
    pub q: PlanProj,
    pub k: PlanProj,
    pub v: PlanProj,
    pub o: PlanProj,
    pub gate: PlanProj,
    pub up: PlanProj,
    pub down: PlanProj,
}

/// Everything a raw decode step needs, taken from the model once per generation (its weights do
/// not change while a KV cache is being filled).
#[derive(Debug, Clone)]
pub(crate) struct DecodePlan {
    pub layers: Vec<PlanLayer>,
    /// Final norm weight.
    pub norm: Vec<f32>,
    pub eps: f32,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// The attention of one layer over its cache: receives the new rotated queries `[B, H*D]`,
/// rotated keys and values `[B, KVH*D]`, appends the keys and values to the cache and returns
/// the attention output `[B, H*D]`.
pub(crate) type AttendFn<'a> = dyn FnMut(&[f32], Vec<f32>, Vec<f32>) -> Result<Vec<f32>> + 'a;

impl DecodePlan {
    /// Runs layer `i` on `x` `[B, hidden]` in place; `cos`/`sin` `[B, D/2]` are the new
    /// position's rotary tables, `attend` the cache side (see [`AttendFn`]).
    pub fn layer(
        &self,
        i: usize,
        x: &mut [f32],
        cos: &[f32],
        sin: &[f32],
        attend: &mut AttendFn<'_>,
    ) -> Result<()> {
        let l = &self.layers[i];
        let b = x.len() / self.hidden;
        let mut hn = vec![0f32; x.len()];
        rms_norm_rows(x, &l.ln1, self.eps, &mut hn);
        let [mut q, mut k, v] = PlanProj::apply_many([&l.q, &l.k, &l.v], &hn, b);
        decode::rope_rows(&mut q, self.head_dim, cos, sin);
        decode::rope_rows(&mut k, self.head_dim, cos, sin);
        let y = attend(&q, k, v)?;
        add_into(x, &l.o.apply(&y, b));
        rms_norm_rows(x, &l.ln2, self.eps, &mut hn);
        let [mut g, u] = PlanProj::apply_many([&l.gate, &l.up], &hn, b);
        silu_mul(&mut g, &u);
        add_into(x, &l.down.apply(&g, b));
        Ok(())
    }

    /// The final norm of `x` `[B, hidden]`.
    pub fn final_norm(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        rms_norm_rows(x, &self.norm, self.eps, &mut out);
        out
    }
}

/// RMS norm of each row of `x` `[rows, n]` times `w` `[n]`, into `out` (statistics in f32, as
/// candle's fused kernel computes them).
pub(crate) fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let ss: f32 = xr.iter().map(|v| v * v).sum();
        let r = 1.0 / (ss / n as f32 + eps).sqrt();
        for ((o, &xv), &wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * r * wv;
        }
    }
}

/// `g ← silu(g) ⊙ u`.
pub(crate) fn silu_mul(g: &mut [f32], u: &[f32]) {
    for (gv, &uv) in g.iter_mut().zip(u) {
        *gv = *gv / (1.0 + (-*gv).exp()) * uv;
    }
}

/// `x ← x + y`.
fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::tests::random;

    /// Row RMS norm against a direct f64 computation.
    #[test]
    fn rms_norm_rows_matches_f64() {
        let (rows, n, eps) = (3, 37, 1e-5f32);
        let (x, w) = (random(rows * n, 1), random(n, 2));
        let mut out = vec![0f32; rows * n];
        rms_norm_rows(&x, &w, eps, &mut out);
        for r in 0..rows {
            let xr = &x[r * n..][..n];
            let ms: f64 = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
            let s = 1.0 / (ms + eps as f64).sqrt();
            for i in 0..n {
                let want = xr[i] as f64 * s * w[i] as f64;
                let got = out[r * n + i] as f64;
                assert!(
                    (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{got} vs {want}"
                );
            }
        }
    }

    /// SwiGLU against `x·σ(x)·u` in f64.
    #[test]
    fn silu_mul_matches_f64() {
        let (g0, u) = (random(50, 3), random(50, 4));
        let mut g = g0.clone();
        silu_mul(&mut g, &u);
        for i in 0..g.len() {
            let x = g0[i] as f64;
            let want = x / (1.0 + (-x).exp()) * u[i] as f64;
            assert!((g[i] as f64 - want).abs() < 1e-6, "{} vs {want}", g[i]);
        }
    }
}
