//! Memory-lean differentiable kernels for gradient forwards on CPU.
//!
//! candle's autograd keeps every intermediate of a composed op alive until `backward` ends and
//! computes a gradient for *every* argument of an op, frozen or not: `x @ W^T` with a frozen `W`
//! still computes (and keeps in the `GradStore`) a full `[out, in]` gradient for `W`, and a
//! composed softmax keeps five `[B, H, T, T]` tensors per layer. Each kernel here computes its
//! value without a graph and attaches one custom backward that saves only its inputs and output
//! (recomputing the rest, flash-attention style), and returns no gradient for frozen inputs.
//! [`checkpoint`] builds layer-wise activation checkpointing on the same mechanism.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor, TensorId,
    Var, D,
};
use rayon::prelude::*;

use crate::error::{ModelError, Result};

type CResult<T> = candle_core::Result<T>;

/// Gradients of a custom op's arguments, in argument order (`None`: frozen / not needed).
type Grads = Vec<Option<Tensor>>;

/// `bwd(detached args, detached result, gradient of the result)`.
type BwdFn = Box<dyn Fn(&[Tensor], &Tensor, &Tensor) -> CResult<Grads> + Send + Sync>;

/// A custom op whose forward value was computed beforehand (without a graph) and whose backward
/// is a closure over whatever it needs (frozen weights, masks, seeds).
struct GradOp {
    name: &'static str,
    value: Mutex<Option<Tensor>>,
    bwd: BwdFn,
}

fn storage_of(value: &Mutex<Option<Tensor>>) -> CResult<(CpuStorage, Shape)> {
    let t = value
        .lock()
        .map_err(|_| candle_core::Error::Msg("lean op: poisoned value".into()))?
        .take()
        .ok_or_else(|| candle_core::Error::Msg("lean op: forward value used twice".into()))?;
    let shape = t.shape().clone();
    let flat = t.flatten_all()?;
    let s = match t.dtype() {
        DType::F32 => CpuStorage::F32(flat.to_vec1()?),
        DType::F64 => CpuStorage::F64(flat.to_vec1()?),
        DType::BF16 => CpuStorage::BF16(flat.to_vec1()?),
        DType::F16 => CpuStorage::F16(flat.to_vec1()?),
        dt => candle_core::bail!("lean op: unsupported dtype {dt:?}"),
    };
    Ok((s, shape))
}

fn det(ts: &[&Tensor]) -> Vec<Tensor> {
    ts.iter().map(|t| t.detach()).collect()
}

fn one(g: Grads, n: usize) -> CResult<Grads> {
    if g.len() != n {
        candle_core::bail!("lean op: {} gradients for {n} arguments", g.len());
    }
    Ok(g)
}

impl CustomOp1 for GradOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> CResult<(CpuStorage, Shape)> {
        storage_of(&self.value)
    }
    fn bwd(&self, a: &Tensor, res: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let mut gs = one((self.bwd)(&det(&[a]), &res.detach(), g)?, 1)?;
        Ok(gs.pop().flatten())
    }
}

impl CustomOp2 for GradOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        storage_of(&self.value)
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let mut gs = one((self.bwd)(&det(&[a, b]), &res.detach(), g)?, 2)?.into_iter();
        Ok((gs.next().flatten(), gs.next().flatten()))
    }
}

impl CustomOp3 for GradOp {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        storage_of(&self.value)
    }
    #[allow(clippy::type_complexity)]
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut gs = one((self.bwd)(&det(&[a, b, c]), &res.detach(), g)?, 3)?.into_iter();
        Ok((
            gs.next().flatten(),
            gs.next().flatten(),
            gs.next().flatten(),
        ))
    }
}

/// Attaches `value` (computed without a graph) to the graph of `args` (1 to 3 tensors) with the
/// backward `bwd(args, result, grad) -> grads`. Without a tracked argument, returns `value` as is.
pub(crate) fn with_grad<F>(
    name: &'static str,
    value: Tensor,
    args: &[&Tensor],
    bwd: F,
) -> Result<Tensor>
where
    F: Fn(&[Tensor], &Tensor, &Tensor) -> CResult<Grads> + Send + Sync + 'static,
{
    let value = value.detach();
    if !args.iter().any(|a| a.track_op()) {
        return Ok(value);
    }
    let op = GradOp {
        name,
        value: Mutex::new(Some(value)),
        bwd: Box::new(bwd),
    };
    Ok(match args {
        [a] => a.apply_op1(op)?,
        [a, b] => a.apply_op2(b, op)?,
        [a, b, c] => a.apply_op3(b, c, op)?,
        _ => {
            return Err(ModelError::Input(format!(
                "lean op {name}: {} arguments",
                args.len()
            )))
        }
    })
}

// ----- fused elementwise kernels (f32 / f64; other dtypes use composed candle ops) -----

/// The float types with fused kernels.
trait Real:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INF: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn maxf(self, o: Self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn maxf(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
        }
    };
}
real!(f32);
real!(f64);

/// Runs `f` on the contiguous CPU data of `t`.
pub(crate) fn read<T: candle_core::WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> R,
) -> CResult<R> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cs) = &*st else {
        candle_core::bail!("lean kernel: CPU tensors only");
    };
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("lean kernel: not contiguous".into()))?;
    Ok(f(&cs.as_slice::<T>()?[a..b]))
}

/// Elements per rayon task of the elementwise kernels.
const PAR_CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])` over two tensors of the same shape.
fn zip_map<T: Real>(a: &Tensor, b: &Tensor, f: impl Fn(T, T) -> T + Sync) -> CResult<Tensor> {
    let shape = a.shape().clone();
    let dev = a.device().clone();
    let out = read::<T, _>(a, |xa| {
        read::<T, _>(b, |xb| {
            let mut out = vec![T::ZERO; xa.len()];
            out.par_chunks_mut(PAR_CHUNK)
                .zip(xa.par_chunks(PAR_CHUNK).zip(xb.par_chunks(PAR_CHUNK)))
                .for_each(|(o, (ca, cb))| {
                    for ((o, &p), &q) in o.iter_mut().zip(ca).zip(cb) {
                        *o = f(p, q);
                    }
                });
            out
        })
    })??;
    Tensor::from_vec(out, shape, &dev)
}

fn is_real(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}

// ----- dropout with replayable masks -----

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `seed` and a slot number (layer, projection).
pub(crate) fn mix_seed(seed: u64, slot: u64) -> u64 {
    splitmix(seed ^ splitmix(slot.wrapping_add(0x5851_F42D_4C95_7F2D)))
}

/// Inverted-dropout mask of `shape` (0 or 1/(1-p)), a pure function of `seed`: the backward pass
/// and checkpoint recomputation regenerate it instead of storing it.
pub(crate) fn dropout_mask(
    seed: u64,
    shape: &[usize],
    p: f32,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let keep = 1.0 / (1.0 - p);
    let thr = (f64::from(p) * 4_294_967_296.0) as u64;
    let mut v = vec![0f32; n];
    const CH: usize = 1 << 14;
    v.par_chunks_mut(CH).enumerate().for_each(|(ci, ch)| {
        for (j, o) in ch.iter_mut().enumerate() {
            *o = if keeps(seed, (ci * CH + j) as u64, thr) {
                keep
            } else {
                0.0
            };
        }
    });
    Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
}

/// The mask value of element `i` (see [`dropout_mask`]).
#[inline]
fn keeps(seed: u64, i: u64, thr: u64) -> bool {
    (splitmix(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 32) >= thr
}

fn dropout_apply_real<T: Real>(x: &Tensor, seed: u64, p: f32) -> CResult<Tensor> {
    let keep = T::from_f64(1.0 / (1.0 - f64::from(p)));
    let thr = (f64::from(p) * 4_294_967_296.0) as u64;
    let shape = x.shape().clone();
    let out = read::<T, _>(x, |xs| {
        let mut out = vec![T::ZERO; xs.len()];
        out.par_chunks_mut(PAR_CHUNK)
            .zip(xs.par_chunks(PAR_CHUNK))
            .enumerate()
            .for_each(|(ci, (o, c))| {
                for (j, (o, &v)) in o.iter_mut().zip(c).enumerate() {
                    if keeps(seed, (ci * PAR_CHUNK + j) as u64, thr) {
                        *o = v * keep;
                    }
                }
            });
        out
    })?;
    Tensor::from_vec(out, shape, x.device())
}

/// `x ⊙ dropout_mask(seed, x.shape, p)` in one pass.
pub(crate) fn dropout_apply(x: &Tensor, seed: u64, p: f32) -> Result<Tensor> {
    Ok(match x.dtype() {
        DType::F32 => dropout_apply_real::<f32>(x, seed, p)?,
        DType::F64 => dropout_apply_real::<f64>(x, seed, p)?,
        dt => (x * dropout_mask(seed, x.dims(), p, dt, x.device())?)?,
    })
}

// ----- linear layers -----

/// The LoRA branch of a projection: `scale · dropout(x) A^T B^T`.
pub(crate) struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    /// `(p, seed)` when dropout is active.
    pub dropout: Option<(f32, u64)>,
}

/// `x W^T (+ bias) (+ LoRA)` for `x` of shape `[..., in]` and a frozen `W` `[out, in]`: one 2-D
/// matmul on `[rows, in]`; the backward saves only `x` (and A, B), gives `x`, A and B gradients
/// and never computes one for `W` or the bias.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    lora: Option<Lora>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let n = x.elem_count() / inp.max(1);
    let out = w.dim(0)?;
    let mut od = dims.clone();
    *od.last_mut().expect("rank >= 1") = out;
    let w = w.detach();
    let x2 = x.detach().contiguous()?.reshape((n, inp))?;
    let mut y = x2.matmul(&w.t()?)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.detach())?;
    }
    let x_tracked = x.track_op();
    let Some(l) = lora else {
        let value = y.reshape(od)?;
        return with_grad("lean-linear", value, &[x], move |_, _, g| {
            let g2 = g.contiguous()?.reshape((n, out))?;
            Ok(vec![Some(g2.matmul(&w)?.reshape(dims.as_slice())?)])
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
    let value = (y + lo)?.reshape(od)?;
    let (a_tracked, b_tracked) = (l.a.track_op(), l.b.track_op());
    with_grad("lean-lora", value, &[x, &l.a, &l.b], move |args, _, g| {
        let (x2, a, b) = (args[0].reshape((n, inp))?, &args[1], &args[2]);
        let g2 = g.contiguous()?.reshape((n, out))?;
        let gbs = (g2.matmul(b)? * scale)?; // [n, r]
        let gx = if x_tracked {
            let gl = drop_x(&gbs.matmul(a)?)?;
            Some((g2.matmul(&w)? + gl)?.reshape(dims.as_slice())?)
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
        Ok(vec![gx, ga, gbw])
    })
}

// ----- normalisation, activation, rotary embedding -----

/// Fused input gradient of the RMS norm, row by row: `r (g w - n mean(g w n))`, `n = x r`.
fn rms_grad_real<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> CResult<Tensor> {
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
fn swiglu_grad_real<T: Real>(x: &Tensor, u: &Tensor, g: &Tensor) -> CResult<(Tensor, Tensor)> {
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

/// Rotary embedding of a projection output `[B, T, H*D]`, returned as `[B, H, T, D]`
/// (rotate-half convention; `cos`/`sin` are `[B, T, D/2]`). The backward is the rotation by `-θ`.
pub(crate) fn rope(
    x: &Tensor,
    heads: usize,
    cos: &Tensor,
    sin: &Tensor,
    neg_sin: &Tensor,
) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    let d = hd / heads;
    let xh = x
        .detach()
        .reshape((b, t, heads, d))?
        .transpose(1, 2)?
        .contiguous()?;
    let value = candle_nn::rotary_emb::rope(&xh, cos, sin)?;
    drop(xh);
    let (cos, neg_sin) = (cos.clone(), neg_sin.clone());
    with_grad("lean-rope", value, &[x], move |_, _, g| {
        let gx = candle_nn::rotary_emb::rope(&g.contiguous()?, &cos, &neg_sin)?;
        Ok(vec![Some(gx.transpose(1, 2)?.reshape((b, t, hd))?)])
    })
}

// ----- attention -----

/// Row softmax of `s + bias` where row `i` of `s` `[rows, L]` takes bias row `i % T`.
fn biased_softmax_real<T: Real>(s: &Tensor, bias: &Tensor, t: usize) -> CResult<Tensor> {
    let shape = s.shape().clone();
    let l = s.dim(D::Minus1)?;
    let out = read::<T, _>(s, |ss| {
        read::<T, _>(bias, |bs| {
            let mut out = vec![T::ZERO; ss.len()];
            out.par_chunks_mut(l)
                .zip(ss.par_chunks(l))
                .enumerate()
                .for_each(|(i, (o, row))| {
                    let br = &bs[(i % t) * l..][..l];
                    let mut mx = T::NEG_INF;
                    for ((o, &v), &b) in o.iter_mut().zip(row).zip(br) {
                        *o = v + b;
                        mx = mx.maxf(*o);
                    }
                    let mut sum = T::ZERO;
                    for o in o.iter_mut() {
                        *o = (*o - mx).exp();
                        sum += *o;
                    }
                    let inv = T::ONE / sum;
                    for o in o.iter_mut() {
                        *o *= inv;
                    }
                });
            out
        })
    })??;
    Tensor::from_vec(out, shape, s.device())
}

/// Softmax probabilities of one batch row: `q` `[KVH, rep*T, D]` (already scaled), `k`
/// `[KVH, L, D]`, `bias` `[1, T, L]` (0 or a large negative number) → `[KVH, rep*T, L]`.
fn probs(q: &Tensor, k: &Tensor, bias: &Tensor, h: usize) -> CResult<Tensor> {
    let (kvh, rt, _) = q.dims3()?;
    let l = k.dim(1)?;
    let t = rt * kvh / h;
    let s = q.matmul(&k.t()?)?;
    match s.dtype() {
        DType::F32 => return biased_softmax_real::<f32>(&s, bias, t),
        DType::F64 => return biased_softmax_real::<f64>(&s, bias, t),
        _ => {}
    }
    let s = s.reshape((h, t, l))?.broadcast_add(bias)?;
    candle_nn::ops::softmax_last_dim(&s)?.reshape((kvh, rt, l))
}

/// Softmax backward `p ⊙ (dp - Σ_d go ⊙ o)`, rows of `p`/`dp` `[rows, L]`, `go`/`o` `[rows, D]`.
fn softmax_grad_real<T: Real>(p: &Tensor, dp: &Tensor, go: &Tensor, o: &Tensor) -> CResult<Tensor> {
    let shape = p.shape().clone();
    let l = p.dim(D::Minus1)?;
    let d = go.dim(D::Minus1)?;
    let out = read::<T, _>(p, |ps| {
        read::<T, _>(dp, |dps| {
            read::<T, _>(go, |gos| {
                read::<T, _>(o, |os| {
                    let mut out = vec![T::ZERO; ps.len()];
                    out.par_chunks_mut(l)
                        .zip(ps.par_chunks(l).zip(dps.par_chunks(l)))
                        .enumerate()
                        .for_each(|(i, (out, (pr, dpr)))| {
                            let mut delta = T::ZERO;
                            for (&a, &b) in gos[i * d..][..d].iter().zip(&os[i * d..][..d]) {
                                delta += a * b;
                            }
                            for ((o, &p), &dp) in out.iter_mut().zip(pr).zip(dpr) {
                                *o = p * (dp - delta);
                            }
                        });
                    out
                })
            })
        })
    })????;
    Tensor::from_vec(out, shape, p.device())
}

/// Query rows per block of the attention kernel (about 8 blocks per sequence): the keys after a
/// block's last query are masked, so they are skipped (almost half of the attention FLOPs).
fn query_block(t: usize) -> usize {
    t.div_ceil(8).max(4).min(t.max(1))
}

/// Causal grouped-query attention without cache: `q` `[B, H, T, D]`, `k` `[B, KVH, L, D]`, `v` the
/// value projection `[B, L, KVH*D]`, `bias` `[B, 1, T, L]` (causal, last query at key `L-1`) →
/// `[B, T, H*D]`. Computed one batch row and one block of queries at a time; the backward pass
/// recomputes the probabilities the same way, so no `[B, H, T, L]` tensor is ever kept.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (_, kvh, l, _) = k.dims4()?;
    if l < t {
        return Err(ModelError::Input(format!(
            "attention: {l} keys for {t} queries"
        )));
    }
    let rep = h / kvh;
    let scale = 1.0 / (d as f64).sqrt();
    let qb = query_block(t);
    // (first query, queries, keys seen by the block's last query)
    let blocks: Arc<Vec<(usize, usize, usize)>> = Arc::new(
        (0..t)
            .step_by(qb)
            .map(|q0| {
                let n = qb.min(t - q0);
                (q0, n, l - t + q0 + n)
            })
            .collect(),
    );
    let split_v = move |v: &Tensor| -> CResult<Tensor> {
        v.reshape((b, l, kvh, d))?.transpose(1, 2)?.contiguous()
    };
    // Queries q0..q0+n of [H, T, D] as [KVH, rep*n, D], scaled.
    let q_block = move |qr: &Tensor, q0: usize, n: usize| -> CResult<Tensor> {
        qr.narrow(1, q0, n)?
            .contiguous()?
            .reshape((kvh, rep * n, d))?
            * scale
    };
    // Rows q0..q0+n of [T, H*D] as [KVH, rep*n, D].
    let o_block = move |x: &Tensor, q0: usize, n: usize| -> CResult<Tensor> {
        x.narrow(0, q0, n)?
            .reshape((n, h, d))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((kvh, rep * n, d))
    };
    let qd = q.detach();
    let kd = k.detach();
    let vd = split_v(&v.detach())?;
    let mut ys = Vec::with_capacity(b);
    for r in 0..b {
        let (qr, kr, vr, br) = (qd.get(r)?, kd.get(r)?, vd.get(r)?, bias.get(r)?);
        let mut yb = Vec::with_capacity(blocks.len());
        for &(q0, n, kl) in blocks.iter() {
            let qs = q_block(&qr, q0, n)?;
            let bb = br.narrow(1, q0, n)?.narrow(2, 0, kl)?;
            let p = probs(&qs, &kr.narrow(1, 0, kl)?, &bb, h)?;
            yb.push(p.matmul(&vr.narrow(1, 0, kl)?)?.reshape((h, n, d))?);
        }
        let y = Tensor::cat(&yb, 1)?.transpose(0, 1)?;
        ys.push(y.contiguous()?.reshape((t, h * d))?);
    }
    let value = Tensor::stack(&ys, 0)?;
    drop((ys, vd, qd, kd));
    let bias = bias.clone();
    let tracked = [q.track_op(), k.track_op(), v.track_op()];
    with_grad("lean-attention", value, &[q, k, v], move |args, res, g| {
        let (q, k) = (&args[0], &args[1]);
        let v = split_v(&args[2])?;
        let (mut gq, mut gk, mut gv) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..b {
            let (qr, kr, vr, br) = (q.get(r)?, k.get(r)?, v.get(r)?, bias.get(r)?);
            let (gr, or) = (g.get(r)?, res.get(r)?);
            let mut dq = Vec::with_capacity(blocks.len());
            let mut dk: Option<Tensor> = None;
            let mut dv: Option<Tensor> = None;
            let acc = |acc: &mut Option<Tensor>, part: Tensor, kl: usize| -> CResult<()> {
                let part = part.pad_with_zeros(1, 0, l - kl)?;
                *acc = Some(match acc.take() {
                    Some(a) => (a + part)?,
                    None => part,
                });
                Ok(())
            };
            for &(q0, n, kl) in blocks.iter() {
                let qs = q_block(&qr, q0, n)?;
                let kk = kr.narrow(1, 0, kl)?;
                let vv = vr.narrow(1, 0, kl)?;
                let bb = br.narrow(1, q0, n)?.narrow(2, 0, kl)?;
                let p = probs(&qs, &kk, &bb, h)?; // [KVH, rep*n, kl]
                let go = o_block(&gr, q0, n)?;
                let o = o_block(&or, q0, n)?;
                if tracked[2] {
                    acc(&mut dv, p.t()?.matmul(&go)?, kl)?; // [KVH, kl, D]
                }
                let dp = go.matmul(&vv.t()?)?;
                let ds = match dp.dtype() {
                    DType::F32 => softmax_grad_real::<f32>(&p, &dp, &go, &o)?,
                    DType::F64 => softmax_grad_real::<f64>(&p, &dp, &go, &o)?,
                    _ => {
                        let delta = (&go * &o)?.sum_keepdim(D::Minus1)?;
                        (p * dp.broadcast_sub(&delta)?)?
                    }
                };
                if tracked[0] {
                    dq.push((ds.matmul(&kk)? * scale)?.reshape((h, n, d))?);
                }
                if tracked[1] {
                    acc(&mut dk, ds.t()?.matmul(&qs)?, kl)?;
                }
            }
            if tracked[0] {
                gq.push(Tensor::cat(&dq, 1)?);
            }
            if let Some(dk) = dk {
                gk.push(dk);
            }
            if let Some(dv) = dv {
                gv.push(dv.transpose(0, 1)?.contiguous()?.reshape((l, kvh * d))?);
            }
        }
        let st = |v: Vec<Tensor>| -> CResult<Option<Tensor>> {
            if v.is_empty() {
                Ok(None)
            } else {
                Tensor::stack(&v, 0).map(Some)
            }
        };
        Ok(vec![st(gq)?, st(gk)?, st(gv)?])
    })
}

// ----- output head -----

/// Rows of logits materialised at once by [`head_logprobs`] (≈ 32 MB of f32).
const HEAD_CHUNK_ELEMS: usize = 1 << 23;

/// Per row of logits `z` `[m, V]`: (log p(target), entropy).
fn head_rows_real<T: Real>(z: &Tensor, tg: &[u32], ent: bool) -> CResult<(Tensor, Option<Tensor>)> {
    let v = z.dim(1)?;
    let (lp, en): (Vec<T>, Vec<T>) = read::<T, _>(z, |zs| {
        zs.par_chunks(v)
            .zip(tg.par_iter())
            .map(|(row, &t)| {
                let mx = row.iter().fold(T::NEG_INF, |a, &b| a.maxf(b));
                let (mut sum, mut sz) = (T::ZERO, T::ZERO);
                for &x in row {
                    let e = (x - mx).exp();
                    sum += e;
                    if ent {
                        sz += e * (x - mx);
                    }
                }
                let lse = sum.ln();
                // H = -Σ p log p = lse - Σ p (z - max), over the shifted logits.
                (row[t as usize] - mx - lse, lse - sz / sum)
            })
            .unzip()
    })?;
    let dev = z.device();
    let n = lp.len();
    Ok((
        Tensor::from_vec(lp, n, dev)?,
        if ent {
            Some(Tensor::from_vec(en, n, dev)?)
        } else {
            None
        },
    ))
}

/// `coef_i (onehot(target_i) - softmax(z_i))` for each row of `z` `[m, V]`.
fn head_grad_real<T: Real>(z: &Tensor, tg: &[u32], coef: &Tensor) -> CResult<Tensor> {
    let (m, v) = z.dims2()?;
    let out = read::<T, _>(z, |zs| {
        read::<T, _>(coef, |cs| {
            let mut out = vec![T::ZERO; zs.len()];
            out.par_chunks_mut(v)
                .zip(zs.par_chunks(v))
                .zip(tg.par_iter().zip(cs.par_iter()))
                .for_each(|((o, row), (&t, &c))| {
                    let mx = row.iter().fold(T::NEG_INF, |a, &b| a.maxf(b));
                    let mut sum = T::ZERO;
                    for (o, &x) in o.iter_mut().zip(row) {
                        *o = (x - mx).exp();
                        sum += *o;
                    }
                    let k = T::ZERO - c / sum;
                    for o in o.iter_mut() {
                        *o *= k;
                    }
                    o[t as usize] += c;
                });
            out
        })
    })??;
    Tensor::from_vec(out, (m, v), z.device())
}

/// Log-probabilities of `targets` `[N]` under `softmax(h W^T / temperature)` for `h` `[N, H]` and
/// `W` `[V, H]`, computed a chunk of rows at a time with logsumexp and gather (the full `[N, V]`
/// logits never exist). The backward recomputes each chunk's logits. Returns `[N]` log-probs and,
/// when asked, the (detached) entropy `[N]`.
pub(crate) fn head_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (n, _) = h.dims2()?;
    let v = w.dim(0)?;
    let dt = h.dtype();
    let rows = (HEAD_CHUNK_ELEMS / v.max(1)).clamp(1, n.max(1));
    let inv_t = 1.0 / temperature;
    let hd = h.detach();
    let wd = w.detach();
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    let tgv: Arc<Vec<u32>> = Arc::new(targets.to_vec1()?);
    if let Some(&bad) = tgv.iter().find(|&&t| t as usize >= v) {
        return Err(ModelError::Input(format!(
            "token id {bad} out of range for a vocabulary of {v}"
        )));
    }
    let logits_of = move |h: &Tensor, w: &Tensor, s: usize, m: usize| -> CResult<Tensor> {
        let z = h.narrow(0, s, m)?.matmul(&w.t()?)?;
        if inv_t == 1.0 {
            Ok(z)
        } else {
            z * inv_t
        }
    };
    let mut lps = Vec::new();
    let mut ents = Vec::new();
    for s in (0..n).step_by(rows) {
        let m = rows.min(n - s);
        let z = logits_of(&hd, &wd, s, m)?;
        let tg = &tgv[s..s + m];
        let (lp, ent) = match dt {
            DType::F32 => head_rows_real::<f32>(&z, tg, with_entropy)?,
            DType::F64 => head_rows_real::<f64>(&z, tg, with_entropy)?,
            _ => {
                let max = z.max_keepdim(1)?;
                let zs = z.broadcast_sub(&max)?;
                let lse = zs.exp()?.sum_keepdim(1)?.log()?; // of the shifted logits
                let tg = targets.narrow(0, s, m)?.unsqueeze(1)?;
                let lp = (zs.gather(&tg, 1)? - &lse)?.squeeze(1)?;
                let ent = if with_entropy {
                    let p = zs.broadcast_sub(&lse)?.exp()?;
                    Some((lse.squeeze(1)? - (p * &zs)?.sum(1)?)?)
                } else {
                    None
                };
                (lp, ent)
            }
        };
        lps.push(lp);
        ents.extend(ent);
    }
    let value = Tensor::cat(&lps, 0)?;
    let entropy = if with_entropy {
        Some(Tensor::cat(&ents, 0)?)
    } else {
        None
    };
    drop((lps, ents));
    let (h_tracked, w_tracked) = (h.track_op(), w.track_op());
    let lp = with_grad("lean-head-logprobs", value, &[h, w], move |args, _, g| {
        let (h, w) = (&args[0], &args[1]);
        let mut gh = Vec::new();
        let mut gw: Option<Tensor> = None;
        for s in (0..n).step_by(rows) {
            let m = rows.min(n - s);
            let z = logits_of(h, w, s, m)?;
            let coef = (g.narrow(0, s, m)? * inv_t)?.contiguous()?; // [m]
                                                                    // d lp / d z = coef · (onehot(target) - p); z = h W^T / T.
            let dz = match dt {
                DType::F32 => head_grad_real::<f32>(&z, &tgv[s..s + m], &coef)?,
                DType::F64 => head_grad_real::<f64>(&z, &tgv[s..s + m], &coef)?,
                _ => {
                    let tg = targets.narrow(0, s, m)?;
                    let p = candle_nn::ops::softmax_last_dim(&z)?;
                    let coef = coef.unsqueeze(1)?;
                    let onehot =
                        p.zeros_like()?
                            .scatter_add(&tg.unsqueeze(1)?, &coef.ones_like()?, 1)?;
                    (onehot - p)?.broadcast_mul(&coef)?
                }
            };
            drop(z);
            if h_tracked {
                gh.push(dz.matmul(w)?);
            }
            if w_tracked {
                let part = dz.t()?.matmul(&h.narrow(0, s, m)?)?;
                gw = Some(match gw {
                    Some(acc) => (acc + part)?,
                    None => part,
                });
            }
        }
        let gh = if gh.is_empty() {
            None
        } else {
            Some(Tensor::cat(&gh, 0)?)
        };
        Ok(vec![gh, gw])
    })?;
    Ok((lp, entropy))
}

// ----- activation checkpointing -----

/// Gradients computed by a checkpointed layer's backward for its parameters, waiting to be handed
/// to the parameters' gradient slots.
pub(crate) type Stash = Arc<Mutex<HashMap<TensorId, Tensor>>>;

fn lock(s: &Stash) -> CResult<std::sync::MutexGuard<'_, HashMap<TensorId, Tensor>>> {
    s.lock()
        .map_err(|_| candle_core::Error::Msg("checkpoint: poisoned gradient stash".into()))
}

/// A scalar that depends on every tracked tensor of `params` and whose backward delivers the
/// gradient stashed for each of them (none while the stash is empty). Used as an extra argument of
/// a checkpointed layer, so the parameters' slots are filled after the layer's backward ran.
fn anchor(params: &[Tensor], stash: &Stash) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for p in params.iter().filter(|p| p.track_op()) {
        let z = Tensor::zeros(1, DType::F32, p.device())?;
        let (st, id) = (stash.clone(), p.id());
        let zp = with_grad("ckpt-param", z, &[p], move |_, _, _| {
            Ok(vec![lock(&st)?.remove(&id)])
        })?;
        acc = Some(match acc {
            Some(a) => (a + zp)?,
            None => zp,
        });
    }
    Ok(acc)
}

/// Layer-wise activation checkpointing: runs `f` on `x` without recording a graph (`f(x, false)`
/// must use `params` detached), keeping only `x`; the backward recomputes `f(x_leaf, true)` with
/// the graph, backpropagates `(out · grad_out).sum()` and returns the input gradient, while the
/// gradients of the tracked `params` reach their slots through an anchor argument.
pub(crate) fn checkpoint<F>(x: &Tensor, params: Vec<Tensor>, f: F) -> Result<Tensor>
where
    F: Fn(&Tensor, bool) -> Result<Tensor> + Send + Sync + 'static,
{
    let value = f(&x.detach(), false)?;
    let params: Vec<Tensor> = params.into_iter().filter(|p| p.track_op()).collect();
    let stash: Stash = Arc::new(Mutex::new(HashMap::new()));
    let anchor = anchor(&params, &stash)?;
    let x_tracked = x.track_op();
    let mut args = vec![x];
    if let Some(a) = &anchor {
        args.push(a);
    }
    let has_anchor = anchor.is_some();
    with_grad("checkpoint", value, &args, move |args, _, g| {
        let xv = Var::from_tensor(&args[0])?;
        let out = f(xv.as_tensor(), true).map_err(candle_core::Error::wrap)?;
        let gout = g.clone();
        let root = with_grad(
            "ckpt-seed",
            Tensor::zeros((), out.dtype(), out.device())?,
            &[&out],
            move |_, _, _| Ok(vec![Some(gout.clone())]),
        )
        .map_err(candle_core::Error::wrap)?;
        let mut grads = root.backward()?;
        drop((root, out));
        let gx = grads.remove(xv.as_tensor());
        {
            let mut st = lock(&stash)?;
            for p in &params {
                if let Some(gp) = grads.remove(p) {
                    let gp = match st.remove(&p.id()) {
                        Some(prev) => (prev + gp)?,
                        None => gp,
                    };
                    st.insert(p.id(), gp);
                }
            }
        }
        let mut out = vec![if x_tracked { gx } else { None }];
        if has_anchor {
            out.push(Some(args[1].zeros_like()?));
        }
        Ok(out)
    })
}
