//! Lean projections (frozen weight, optional LoRA branch), RMS norm, SwiGLU and rotary
//! embedding: each saves only its inputs for the backward pass.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use super::{dropout_apply, is_real, read, with_grad, zip_map, CResult, Grads, Real, PAR_CHUNK};
use crate::error::Result;
use crate::packed::PackedWeight;

/// The LoRA branch of a projection: `scale · dropout(x) A^T B^T`.
pub(crate) struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    /// `(p, seed)` when dropout is active.
    pub dropout: Option<(f32, u64)>,
}

/// A frozen projection weight `[out, in]` as a lean product reads it: a dense tensor, or the
/// GGUF blocks alone (a released dense base), dequantised for each product and never kept.
#[derive(Clone)]
pub(crate) enum Frozen {
    Dense(Tensor),
    Packed(Arc<PackedWeight>),
}

impl Frozen {
    fn out_features(&self) -> CResult<usize> {
        match self {
            Self::Dense(w) => w.dim(0),
            Self::Packed(p) => Ok(p.rows()),
        }
    }

    /// The dense weight (a transient copy for the packed form).
    fn dense(&self, device: &Device) -> CResult<Tensor> {
        match self {
            Self::Dense(w) => Ok(w.clone()),
            Self::Packed(p) => p
                .dequantize_tensor(device)
                .map_err(candle_core::Error::wrap),
        }
    }

    /// `x2 W^T` for `x2` `[n, in]`.
    pub(super) fn product_t(&self, x2: &Tensor) -> CResult<Tensor> {
        x2.matmul(&self.dense(x2.device())?.t()?)
    }

    /// `g2 W` for `g2` `[n, out]` (the input gradient).
    pub(super) fn product(&self, g2: &Tensor) -> CResult<Tensor> {
        g2.matmul(&self.dense(g2.device())?)
    }
}

/// `x W^T (+ bias) (+ LoRA)` for `x` of shape `[..., in]` and a frozen `W` `[out, in]`: one 2-D
/// matmul on `[rows, in]`; the backward saves only `x` (and A, B), gives `x`, A and B gradients
/// and never computes one for `W` or the bias.
///
/// With `rotary`, the output is rotated as [`Rotary`] does (`[B, H, T, D]`) inside the same node,
/// so the unrotated projection is never kept for the backward. With `residual` (same shape as the
/// output), the node gives `residual + output` (a residual connection whose summand is then never
/// kept: the sum's backward needs no values).
pub(crate) fn linear(
    x: &Tensor,
    w: Frozen,
    bias: Option<&Tensor>,
    lora: Option<Lora>,
    rotary: Option<Rotary>,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let n = x.elem_count() / inp.max(1);
    let out = w.out_features()?;
    let mut od = dims.clone();
    *od.last_mut().expect("rank >= 1") = out;
    let w = match w {
        Frozen::Dense(t) => Frozen::Dense(t.detach()),
        packed => packed,
    };
    let x2 = x.detach().contiguous()?.reshape((n, inp))?;
    let mut y = w.product_t(&x2)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.detach())?;
    }
    let x_tracked = x.track_op();
    let unrotated = {
        let rotary = rotary.clone();
        move |g: &Tensor| -> CResult<Tensor> {
            match &rotary {
                Some(r) => r.unapply(g),
                None => Ok(g.clone()),
            }
        }
    };
    let rotated = move |y: Tensor| -> CResult<Tensor> {
        match &rotary {
            Some(r) => r.apply(&y),
            None => Ok(y),
        }
    };
    let res = residual.map(Tensor::detach);
    let summed = move |y: Tensor| -> CResult<Tensor> {
        match &res {
            Some(r) => r + y,
            None => Ok(y),
        }
    };
    // The residual's gradient is the output's, as is.
    let residual_tracked = residual.map(Tensor::track_op);
    let residual_grad = move |grads: &mut Grads, g: &Tensor| {
        if let Some(tracked) = residual_tracked {
            grads.push(tracked.then(|| g.clone()));
        }
    };
    let Some(l) = lora else {
        let value = summed(rotated(y.reshape(od)?)?)?;
        let args: Vec<&Tensor> = [x].into_iter().chain(residual).collect();
        return with_grad("lean-linear", value, &args, move |_, _, g| {
            let g2 = unrotated(g)?.contiguous()?.reshape((n, out))?;
            let mut grads = vec![Some(w.product(&g2)?.reshape(dims.as_slice())?)];
            residual_grad(&mut grads, g);
            Ok(grads)
        });
    };
    let (ad, bd) = (l.a.detach(), l.b.detach());
    let dropout = l.dropout;
    let drop_x = move |x: &Tensor| -> CResult<Tensor> {
        match dropout {
            Some((p, seed)) => dropout_apply(x, seed, p).map_err(candle_core::Error::wrap),
            None => Ok(x.clone()),
        }
    };
    let scale = l.scale;
    let xd = drop_x(&x2)?;
    // The scale goes on the small [n, r] factor.
    let lo = (xd.matmul(&ad.t()?)? * scale)?.matmul(&bd.t()?)?;
    drop(xd);
    let value = summed(rotated((y + lo)?.reshape(od)?)?)?;
    let (a_tracked, b_tracked) = (l.a.track_op(), l.b.track_op());
    let args: Vec<&Tensor> = [x, &l.a, &l.b].into_iter().chain(residual).collect();
    with_grad("lean-lora", value, &args, move |args, _, g| {
        let (x2, a, b) = (args[0].reshape((n, inp))?, &args[1], &args[2]);
        let g2 = unrotated(g)?.contiguous()?.reshape((n, out))?;
        let gbs = (g2.matmul(b)? * scale)?; // [n, r]
        let gx = if x_tracked {
            let gl = drop_x(&gbs.matmul(a)?)?;
            Some((w.product(&g2)? + gl)?.reshape(dims.as_slice())?)
        } else {
            None
        };
        let xd = drop_x(&x2)?;
        let ga = if a_tracked {
            Some(gbs.t()?.matmul(&xd)?)
        } else {
            None
        };
        let gbw = if b_tracked {
            Some(g2.t()?.matmul(&(xd.matmul(&a.t()?)? * scale)?)?)
        } else {
            None
        };
        let mut grads = vec![gx, ga, gbw];
        residual_grad(&mut grads, g);
        Ok(grads)
    })
}

// ----- normalisation, activation, rotary embedding -----

/// Fused input gradient of the RMS norm, row by row: `r (g w - n mean(g w n))`, `n = x r`.
pub(super) fn rms_grad_real<T: Real>(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    eps: f64,
) -> CResult<Tensor> {
    let shape = x.shape().clone();
    let hs = x.dim(D::Minus1)?;
    let eps = T::from_f64(eps);
    let inv_n = T::from_f64(1.0 / hs as f64);
    let out = read::<T, _>(x, |xs| {
        read::<T, _>(w, |ws| {
            read::<T, _>(g, |gs| {
                let mut out = vec![T::ZERO; xs.len()];
                out.par_chunks_mut(hs)
                    .zip(xs.par_chunks(hs).zip(gs.par_chunks(hs)))
                    .for_each(|(o, (xr, gr))| {
                        let mut ss = T::ZERO;
                        let mut dot = T::ZERO;
                        for ((&x, &g), &w) in xr.iter().zip(gr).zip(ws) {
                            ss += x * x;
                            dot += g * w * x;
                        }
                        let r = T::ONE / (ss * inv_n + eps).sqrt();
                        // mean(g w n) = r · mean(g w x)
                        let c = r * r * r * dot * inv_n;
                        for (((o, &x), &g), &w) in o.iter_mut().zip(xr).zip(gr).zip(ws) {
                            *o = r * g * w - c * x;
                        }
                    });
                out
            })
        })
    })???;
    Tensor::from_vec(out, shape, x.device())
}

/// RMS norm over the last dimension (statistics in f32, or f64 for f64 tensors).
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let up = if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let xd = x.detach().contiguous()?;
    let wd = w.detach();
    let value = if dt == DType::F64 {
        let ms = xd.sqr()?.mean_keepdim(D::Minus1)?;
        xd.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(&wd)?
    } else {
        candle_nn::ops::rms_norm(&xd, &wd, eps as f32)?
    };
    let (x_tracked, w_tracked) = (x.track_op(), w.track_op());
    with_grad("lean-rms-norm", value, &[x, w], move |args, _, g| {
        let (x, w) = (&args[0], &args[1]);
        if is_real(dt) && !w_tracked {
            let gx = match dt {
                DType::F32 => rms_grad_real::<f32>(x, w, g, eps)?,
                _ => rms_grad_real::<f64>(x, w, g, eps)?,
            };
            return Ok(vec![x_tracked.then_some(gx), None]);
        }
        let xf = x.to_dtype(up)?;
        let r = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
            .sqrt()?
            .recip()?;
        let nrm = xf.broadcast_mul(&r)?;
        let gf = g.to_dtype(up)?;
        let gx = if x_tracked {
            let gn = gf.broadcast_mul(&w.to_dtype(up)?)?;
            let dot = (&gn * &nrm)?.mean_keepdim(D::Minus1)?;
            let gx = (gn - nrm.broadcast_mul(&dot)?)?.broadcast_mul(&r)?;
            Some(gx.to_dtype(dt)?)
        } else {
            None
        };
        let gw = if w_tracked {
            let hs = nrm.dim(D::Minus1)?;
            let rows = nrm.elem_count() / hs.max(1);
            let s = (gf * nrm)?.reshape((rows, hs))?.sum(0)?;
            Some(s.to_dtype(w.dtype())?)
        } else {
            None
        };
        Ok(vec![gx, gw])
    })
}

#[inline]
fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (T::ZERO - x).exp())
}

/// Fused backward of `silu(x) * u`: `(d/dx, d/du)`.
pub(super) fn swiglu_grad_real<T: Real>(
    x: &Tensor,
    u: &Tensor,
    g: &Tensor,
) -> CResult<(Tensor, Tensor)> {
    let shape = x.shape().clone();
    let (gx, gu) = read::<T, _>(x, |xs| {
        read::<T, _>(u, |us| {
            read::<T, _>(g, |gs| {
                let mut gx = vec![T::ZERO; xs.len()];
                let mut gu = vec![T::ZERO; xs.len()];
                gx.par_chunks_mut(PAR_CHUNK)
                    .zip(gu.par_chunks_mut(PAR_CHUNK))
                    .enumerate()
                    .for_each(|(ci, (ox, ou))| {
                        let o = ci * PAR_CHUNK;
                        for j in 0..ox.len() {
                            let (x, u, g) = (xs[o + j], us[o + j], gs[o + j]);
                            let s = sigmoid(x);
                            ou[j] = g * x * s;
                            // d silu / dx = σ(x) (1 + x (1 - σ(x)))
                            ox[j] = g * u * s * (T::ONE + x * (T::ONE - s));
                        }
                    });
                (gx, gu)
            })
        })
    })???;
    Ok((
        Tensor::from_vec(gx, shape.clone(), x.device())?,
        Tensor::from_vec(gu, shape, x.device())?,
    ))
}

/// `silu(gate) * up`, saving only its two inputs.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let dt = gate.dtype();
    let value = match dt {
        DType::F32 => zip_map::<f32>(gate, up, |x, u| x * sigmoid(x) * u)?,
        DType::F64 => zip_map::<f64>(gate, up, |x, u| x * sigmoid(x) * u)?,
        _ => (gate.detach().silu()? * up.detach())?,
    };
    let (gt, ut) = (gate.track_op(), up.track_op());
    with_grad("lean-swiglu", value, &[gate, up], move |args, _, g| {
        let (x, u) = (&args[0], &args[1]);
        if is_real(dt) {
            let (gx, gu) = match dt {
                DType::F32 => swiglu_grad_real::<f32>(x, u, g)?,
                _ => swiglu_grad_real::<f64>(x, u, g)?,
            };
            return Ok(vec![gt.then_some(gx), ut.then_some(gu)]);
        }
        let sig = candle_nn::ops::sigmoid(x)?;
        let gu = if ut { Some((g * (x * &sig)?)?) } else { None };
        let gg = if gt {
            // d silu / dx = σ(x) (1 + x (1 - σ(x)))
            let d = (&sig * ((x * sig.affine(-1.0, 1.0)?)? + 1.0)?)?;
            Some(((g * u)? * d)?)
        } else {
            None
        };
        Ok(vec![gg, gu])
    })
}

/// Rotary embedding of a projection's output `[B, T, H*D]` into `[B, H, T, D]` (rotate-half
/// convention; `cos`/`sin` are `[B, T, D/2]`); its backward is the rotation by `-θ`.
#[derive(Clone)]
pub(crate) struct Rotary {
    pub heads: usize,
    pub cos: Tensor,
    pub sin: Tensor,
    pub neg_sin: Tensor,
}

impl Rotary {
    /// `x` `[B, T, H*D]` rotated, as `[B, H, T, D]`.
    fn apply(&self, x: &Tensor) -> CResult<Tensor> {
        let (b, t, hd) = x.dims3()?;
        let xh = x
            .reshape((b, t, self.heads, hd / self.heads))?
            .transpose(1, 2)?
            .contiguous()?;
        candle_nn::rotary_emb::rope(&xh, &self.cos, &self.sin)
    }

    /// The gradient of [`Self::apply`]'s input from that of its output `g` `[B, H, T, D]`.
    fn unapply(&self, g: &Tensor) -> CResult<Tensor> {
        let (b, h, t, d) = g.dims4()?;
        let gx = candle_nn::rotary_emb::rope(&g.contiguous()?, &self.cos, &self.neg_sin)?;
        gx.transpose(1, 2)?.reshape((b, t, h * d))
    }
}

/// [`Rotary`] on `x` as its own graph node (a projection that [`linear`] does not run).
pub(crate) fn rope(x: &Tensor, rotary: &Rotary) -> Result<Tensor> {
    let value = rotary.apply(&x.detach())?;
    let rotary = rotary.clone();
    with_grad("lean-rope", value, &[x], move |_, _, g| {
        Ok(vec![Some(rotary.unapply(g)?)])
    })
}
