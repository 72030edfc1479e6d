//! Self-attention of one decoder layer: rotary tables, the grouped-query attention paths (lean,
//! composed/fused, raw-buffer single-token decode) and the normalisation/softmax helpers.

use candle_core::{DType, Device, Tensor, D};

use super::kv::{KvUse, LayerKv, SharedKv};
use super::linear::Linear;
use crate::decode;
use crate::error::Result;
use crate::forward::{is_cpu_f32_inference, Ctx};
use crate::lean;

/// RMS norm; fused kernel in inference (except f64, which it lacks), differentiable composition (computed in f32 or f64) otherwise.
pub(super) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, grad: bool) -> Result<Tensor> {
    if !grad && x.dtype() != DType::F64 {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::rms_norm(&x, &w.detach(), eps as f32)?);
    }
    let dt = x.dtype();
    let up = if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let xf = x.to_dtype(up)?;
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(ms + eps)?.sqrt()?)?.to_dtype(dt)?;
    Ok(normed.broadcast_mul(w)?)
}

/// Softmax over the last dimension.
fn softmax_last(x: &Tensor, grad: bool) -> Result<Tensor> {
    if grad {
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(x)?)
    }
}

/// Log-softmax over the last dimension (differentiable; the shift is detached).
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let diff = x.broadcast_sub(&max)?;
    let lse = diff.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(diff.broadcast_sub(&lse)?)
}

/// RoPE tables for one forward pass (per row positions, so left padding works).
#[derive(Debug, Clone)]
pub(super) struct Rope {
    /// `[B, T, D/2]` for the fused kernel.
    cos: Tensor,
    sin: Tensor,
    /// `-sin`, for the backward rotation of the lean kernel.
    neg_sin: Tensor,
}

impl Rope {
    /// Cosines `[B, T, D/2]`.
    pub(super) fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// Sines `[B, T, D/2]`.
    pub(super) fn sin(&self) -> &Tensor {
        &self.sin
    }

    pub(super) fn new(
        inv_freq: &[f64],
        positions: &[Vec<u32>],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let b = positions.len();
        let t = positions.first().map_or(0, Vec::len);
        let h = inv_freq.len();
        let mut cos = Vec::with_capacity(b * t * h);
        let mut sin = Vec::with_capacity(b * t * h);
        for row in positions {
            for &p in row {
                for &f in inv_freq {
                    let a = p as f64 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let cos = Tensor::from_vec(cos, (b, t, h), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (b, t, h), device)?.to_dtype(dtype)?;
        let neg_sin = sin.neg()?;
        Ok(Self { cos, sin, neg_sin })
    }

    /// Rotates `x` of shape `[B, H, T, D]` (rotate-half convention of HF).
    fn apply(&self, x: &Tensor, grad: bool) -> Result<Tensor> {
        if !grad {
            return Ok(candle_nn::rotary_emb::rope(
                &x.contiguous()?,
                &self.cos,
                &self.sin,
            )?);
        }
        let half = x.dim(D::Minus1)? / 2;
        let cos = Tensor::cat(&[&self.cos, &self.cos], D::Minus1)?.unsqueeze(1)?;
        let sin = Tensor::cat(&[&self.sin, &self.sin], D::Minus1)?.unsqueeze(1)?;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) q: Linear,
    pub(super) k: Linear,
    pub(super) v: Linear,
    pub(super) o: Linear,
    pub(super) n_heads: usize,
    pub(super) n_kv: usize,
    pub(super) head_dim: usize,
}

impl Attention {
    /// `residual + attention(x)` (the residual connection is part of the output projection's
    /// node in lean passes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &self,
        x: &Tensor,
        residual: &Tensor,
        rope: &Rope,
        mask: &Tensor,
        kv: KvUse<'_>,
        c: &Ctx,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.n_heads, self.n_kv, self.head_dim);
        if c.lean && !matches!(kv, KvUse::Cache(..)) {
            let rotary = |heads| lean::Rotary {
                heads,
                cos: rope.cos.clone(),
                sin: rope.sin.clone(),
                neg_sin: rope.neg_sin.clone(),
            };
            let q = self.q.forward_rotary(x, &c.slot(0), Some(&rotary(h)))?;
            let k = self.k.forward_rotary(x, &c.slot(1), Some(&rotary(kvh)))?;
            let v = self.v.forward(x, &c.slot(2))?;
            // Keys [B, KVH, L, D], values [B, L, KVH*D]; a shared prefix's go in front of each
            // row inside the attention node.
            let (k, v, prefix) = match kv {
                KvUse::After(p) => (k, v, Some((&p.k, &p.v))),
                other => {
                    let (k, v) = with_shared(other, k, v, 2, 1)?;
                    (k, v, None)
                }
            };
            let y = lean::attention(&q, &k, &v, prefix, mask)?;
            return self.o.forward_residual(&y, &c.slot(3), residual);
        }
        let kv = match kv {
            KvUse::Cache(slot, cap, None) if t == 1 && is_cpu_f32_inference(x, c) => {
                return self.decode_one(x, residual, rope, mask, slot, cap, c);
            }
            other => other,
        };
        // `x` may hold a padded call's real tokens only ([1, N, hidden]): the projections run on
        // them, attention on the padded layout.
        let real = match &kv {
            KvUse::Cache(_, _, real) => *real,
            _ => None,
        };
        let (b, t) = real.map_or((b, t), |r| (r.batch, r.len));
        let project = |lin: &Linear, slot: u64| -> Result<Tensor> {
            let y = lin.forward(x, &c.slot(slot))?;
            match real {
                Some(r) => r.scatter(&y),
                None => Ok(y),
            }
        };
        let o = &c.o;
        let q = project(&self.q, 0)?
            .reshape((b, t, h, d))?
            .transpose(1, 2)?;
        let k = project(&self.k, 1)?
            .reshape((b, t, kvh, d))?
            .transpose(1, 2)?;
        let v = project(&self.v, 2)?
            .reshape((b, t, kvh, d))?
            .transpose(1, 2)?;
        let q = rope.apply(&q, o.grad)?;
        let k = rope.apply(&k, o.grad)?;
        let (k, v) = match kv {
            KvUse::Cache(slot, cap, _) => LayerKv::append(slot, &k, &v, cap)?,
            // Keys and values both [B, KVH, L, D].
            other => with_shared(other, k, v.contiguous()?, 2, 2)?,
        };
        let l = k.dim(2)?;
        let rep = h / kvh;
        let scale = 1.0 / (d as f64).sqrt();
        // [B, H, T, D]
        let y = if is_cpu_f32_inference(x, c) && t >= CAUSAL_BLOCKS * 16 {
            causal_blocks(&q, &k, &v, mask, scale as f32, kvh)?
        } else {
            // Group the query heads that share a KV head: [B, KVH, rep*T, D] (no K/V copies).
            let q = q.contiguous()?.reshape((b, kvh, rep * t, d))?;
            let p = if is_cpu_f32_inference(x, c) {
                biased_probs(&q.matmul(&k.t()?)?, mask, scale as f32, h, t)?
            } else {
                let scores = (q.matmul(&k.t()?)? * scale)?
                    .reshape((b, h, t, l))?
                    .broadcast_add(mask)?;
                softmax_last(&scores, o.grad)?.reshape((b, kvh, rep * t, l))?
            };
            p.matmul(&v)?.reshape((b, h, t, d))?
        };
        let y = y.transpose(1, 2)?.reshape((b, t, h * d))?;
        let y = match real {
            Some(r) => r.gather(&y)?,
            None => y,
        };
        self.o.forward_residual(&y, &c.slot(3), residual)
    }
}

/// Query blocks of a long inference pass ([`causal_blocks`]).
const CAUSAL_BLOCKS: usize = 4;

/// Causal attention of `q` `[B, H, T, D]` (rotated) over `k`, `v` `[B, KVH, L, D]` with `bias`
/// `[B, 1, T, L]`, a block of queries at a time: a block's scores and weighted values stop at its
/// last query's key, so the keys masked for the whole block (3/8 of all scores with four
/// blocks) are never computed. Masked keys weigh exactly 0 in [`biased_probs`], so a row sums the
/// same terms as over every key. → `[B, H, T, D]`.
fn causal_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f32,
    kvh: usize,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let l = k.dim(2)?;
    let rep = h / kvh;
    // [B, KVH, rep, T, D]: the heads of a KV group, each over every query.
    let q = q.contiguous()?.reshape((b, kvh, rep, t, d))?;
    let size = t.div_ceil(CAUSAL_BLOCKS);
    let mut ys = Vec::with_capacity(CAUSAL_BLOCKS);
    for t0 in (0..t).step_by(size) {
        let n = size.min(t - t0);
        let keys = l - t + t0 + n;
        let qb = q
            .narrow(3, t0, n)?
            .contiguous()?
            .reshape((b, kvh, rep * n, d))?;
        let kb = k.narrow(2, 0, keys)?;
        let bb = bias.narrow(2, t0, n)?.narrow(3, 0, keys)?;
        let p = biased_probs(&qb.matmul(&kb.t()?)?, &bb, scale, h, n)?;
        ys.push(p.matmul(&v.narrow(2, 0, keys)?)?.reshape((b, h, n, d))?);
    }
    Ok(Tensor::cat(&ys, 2)?)
}

/// Attention probabilities from raw scores `s` `[B, KVH, rep*T, L]` and the bias `[B, 1, T, L]`
/// in one pass ([`decode::biased_softmax`]), same shape as `s`.
fn biased_probs(s: &Tensor, bias: &Tensor, scale: f32, heads: usize, t: usize) -> Result<Tensor> {
    let l = s.dim(D::Minus1)?;
    let bias = bias.broadcast_as((s.dim(0)?, 1, t, l))?.contiguous()?;
    let p = lean::read::<f32, _>(s, |ss| {
        lean::read::<f32, _>(&bias, |bs| {
            decode::biased_softmax(ss, bs, scale, heads, t, l)
        })
    })??;
    Ok(Tensor::from_vec(p, s.dims(), s.device())?)
}

/// Applies a shared prefix to one layer's keys `k` and values `v` (their position dims `kd`,
/// `vd`): records them for [`KvUse::Record`], puts the prefix's (broadcast over the rows) in
/// front for [`KvUse::After`], leaves them alone otherwise.
fn with_shared(
    kv: KvUse<'_>,
    k: Tensor,
    v: Tensor,
    kd: usize,
    vd: usize,
) -> Result<(Tensor, Tensor)> {
    match kv {
        KvUse::Record(slot) => {
            *slot = Some(SharedKv {
                k: k.clone(),
                v: v.clone(),
            });
            Ok((k, v))
        }
        KvUse::After(p) => {
            let rows = |x: &Tensor, like: &Tensor| -> Result<Tensor> {
                let mut dims = x.dims().to_vec();
                dims[0] = like.dim(0)?;
                Ok(x.broadcast_as(dims)?)
            };
            let k = Tensor::cat(&[&rows(&p.k, &k)?, &k], kd)?.contiguous()?;
            let v = Tensor::cat(&[&rows(&p.v, &v)?, &v], vd)?.contiguous()?;
            Ok((k, v))
        }
        KvUse::Own | KvUse::Cache(..) => Ok((k, v)),
    }
}

impl Attention {
    /// One new token per sequence (`x` `[B, 1, hidden]`, CPU f32, no gradient): the projections
    /// as usual, then rotary embedding, cache append and attention with the raw-buffer kernels
    /// of [`crate::decode`] instead of a dozen generic tensor ops.
    #[allow(clippy::too_many_arguments)]
    fn decode_one(
        &self,
        x: &Tensor,
        residual: &Tensor,
        rope: &Rope,
        bias: &Tensor,
        slot: &mut Option<LayerKv>,
        capacity: usize,
        c: &Ctx,
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        let (h, kvh, d) = (self.n_heads, self.n_kv, self.head_dim);
        let (cos, sin) = (values(&rope.cos)?, values(&rope.sin)?);
        let mut q = values(&self.q.forward(x, &c.slot(0))?)?;
        let mut k = values(&self.k.forward(x, &c.slot(1))?)?;
        let v = self.v.forward(x, &c.slot(2))?;
        decode::rope_rows(&mut q, d, &cos, &sin);
        decode::rope_rows(&mut k, d, &cos, &sin);
        let bias = values(bias)?;
        let dims = HeadDims {
            heads: h,
            kv_heads: kvh,
            head_dim: d,
        };
        let y = attend_cached(slot, capacity, &q, k, values(&v)?, &bias, dims)?;
        let y = Tensor::from_vec(y, (b, 1, h * d), x.device())?;
        self.o.forward_residual(&y, &c.slot(3), residual)
    }
}

/// The f32 values of `t`, flattened (the raw-buffer decode paths' input).
pub(super) fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// Head counts and size of one attention layer.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeadDims {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// One decode position of a layer: appends the new keys `k` and values `v` (`[B, KVH*D]`,
/// rotated keys) to the layer's cache, then attends the rotated queries `q` `[B, H*D]` over
/// every cached position with `bias` `[B, L]` (0 or a large negative number) → `[B, H*D]`.
pub(super) fn attend_cached(
    slot: &mut Option<LayerKv>,
    capacity: usize,
    q: &[f32],
    k: Vec<f32>,
    v: Vec<f32>,
    bias: &[f32],
    dims: HeadDims,
) -> Result<Vec<f32>> {
    let (kvh, d) = (dims.kv_heads, dims.head_dim);
    let b = k.len() / (kvh * d).max(1);
    let k = Tensor::from_vec(k, (b, kvh, 1, d), &Device::Cpu)?;
    let v = Tensor::from_vec(v, (b, kvh, 1, d), &Device::Cpu)?;
    let kv = LayerKv::push(slot, &k, &v, capacity)?;
    let shape = decode::DecodeShape {
        batch: b,
        heads: dims.heads,
        kv_heads: kvh,
        head_dim: d,
        capacity: kv.k.dim(2)?,
        len: kv.len,
    };
    let attend = |shared: Option<decode::SharedPositions<'_>>| {
        lean::read::<f32, _>(&kv.k, |ks| {
            lean::read::<f32, _>(&kv.v, |vs| decode::attend(q, ks, vs, shared, bias, shape))
        })
    };
    Ok(match &kv.shared {
        None => attend(None)??,
        Some(sh) => {
            let len = sh.len()?;
            lean::read::<f32, _>(&sh.k, |sk| {
                lean::read::<f32, _>(&sh.v, |sv| {
                    attend(Some(decode::SharedPositions {
                        k: sk,
                        v: sv,
                        len,
                        rows: &sh.rows,
                    }))
                })
            })????
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::tests::random;

    /// Query blocks that stop at their last query's key give every real query the bits of the
    /// pass over all keys (left padding, a cached past, grouped heads, ragged last block).
    #[test]
    fn causal_blocks_give_the_full_pass_bits() {
        let (b, kvh, rep, t, past, d) = (2, 2, 3, 70, 5, 8);
        let (h, l) = (kvh * rep, past + t);
        let dev = Device::Cpu;
        let q = Tensor::from_vec(random(b * h * t * d, 41), (b, h, t, d), &dev).unwrap();
        let k = Tensor::from_vec(random(b * kvh * l * d, 42), (b, kvh, l, d), &dev).unwrap();
        let v = Tensor::from_vec(random(b * kvh * l * d, 43), (b, kvh, l, d), &dev).unwrap();
        // Row 1 starts with 9 padding positions.
        let pad = [0usize, 9];
        let mut bias = Vec::with_capacity(b * t * l);
        for &p in &pad {
            for i in 0..t {
                for j in 0..l {
                    let ok = j <= past + i && j >= p;
                    bias.push(if ok { 0.0f32 } else { decode::MASK_BIAS });
                }
            }
        }
        let bias = Tensor::from_vec(bias, (b, 1, t, l), &dev).unwrap();
        let scale = 1.0 / (d as f32).sqrt();
        let blocked = causal_blocks(&q, &k, &v, &bias, scale, kvh).unwrap();
        let qg = q.reshape((b, kvh, rep * t, d)).unwrap();
        let p = biased_probs(&qg.matmul(&k.t().unwrap()).unwrap(), &bias, scale, h, t).unwrap();
        let full = p.matmul(&v).unwrap().reshape((b, h, t, d)).unwrap();
        for (r, &p) in pad.iter().enumerate() {
            // Queries at padded places attend to nothing real; their rows are dropped.
            let first = p.saturating_sub(past);
            let rows = |y: &Tensor| -> Vec<u32> {
                let y = y.get(r).unwrap().narrow(1, first, t - first).unwrap();
                let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                y.into_iter().map(f32::to_bits).collect()
            };
            assert_eq!(rows(&blocked), rows(&full), "row {r}");
        }
    }
}
