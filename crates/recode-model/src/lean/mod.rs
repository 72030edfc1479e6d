//! Memory-lean differentiable kernels for gradient forwards on CPU.
//!
//! candle's autograd keeps every intermediate of a composed op alive until `backward` ends and
//! computes a gradient for *every* argument of an op, frozen or not: `x @ W^T` with a frozen `W`
//! still computes (and keeps in the `GradStore`) a full `[out, in]` gradient for `W`, and a
//! composed softmax keeps five `[B, H, T, T]` tensors per layer. Each kernel here computes its
//! value without a graph and attaches one custom backward that saves only its inputs and output
//! (recomputing the rest, flash-attention style), and returns no gradient for frozen inputs.
//! [`checkpoint`] builds layer-wise activation checkpointing on the same mechanism.

mod attention;
mod checkpoint;
mod head;
mod linear;
mod mlp;

use std::sync::Mutex;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor, TensorId,
};
use rayon::prelude::*;

use crate::error::{ModelError, Result};

pub(crate) use attention::attention;
pub(crate) use checkpoint::checkpoint;
pub(crate) use head::head_logprobs;
pub(crate) use linear::{linear, rms_norm, rope, swiglu, Frozen, Lora, Rotary};
pub(crate) use mlp::{fusable, mlp_residual, FrozenMlp};

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

/// Attaches `value` (computed without a graph) to the graph of `args` with the backward
/// `bwd(args, result, grad) -> grads`. Without a tracked argument, returns `value` as is.
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
    if let [a, b, rest @ ..] = args {
        if rest.len() > 1 {
            return with_grad_anchored(name, value, (a, b), rest, Box::new(bwd));
        }
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

/// A node over more than three arguments (candle's custom ops take at most three): the op takes
/// the first two and, third, an anchor over the `rest` ([`checkpoint::anchor`]); its backward
/// runs `bwd` on every argument and stashes the gradients of the `rest` for the anchor, whose
/// backward (it runs after the op's) hands them to their slots.
fn with_grad_anchored(
    name: &'static str,
    value: Tensor,
    (a, b): (&Tensor, &Tensor),
    rest: &[&Tensor],
    bwd: BwdFn,
) -> Result<Tensor> {
    let n = 2 + rest.len();
    let rest_ids: Vec<(TensorId, bool)> = rest.iter().map(|t| (t.id(), t.track_op())).collect();
    let rest_values = det(rest);
    let stash: checkpoint::Stash = Default::default();
    let rest_owned: Vec<Tensor> = rest.iter().map(|&t| t.clone()).collect();
    let anchor = checkpoint::anchor(&rest_owned, &stash)?;
    let with_rest = move |head: &[Tensor]| -> Vec<Tensor> {
        head.iter().take(2).chain(&rest_values).cloned().collect()
    };
    let Some(anchor) = anchor else {
        // The rest are constants: a two-argument node is enough.
        return with_grad(name, value, &[a, b], move |args, res, g| {
            let mut gs = one(bwd(&with_rest(args), res, g)?, n)?;
            gs.truncate(2);
            Ok(gs)
        });
    };
    with_grad(name, value, &[a, b, &anchor], move |args, res, g| {
        let mut gs = one(bwd(&with_rest(args), res, g)?, n)?;
        let rest_grads = gs.split_off(2);
        let mut st = checkpoint::lock(&stash)?;
        for (&(id, tracked), grad) in rest_ids.iter().zip(rest_grads) {
            if let (true, Some(grad)) = (tracked, grad) {
                let grad = match st.remove(&id) {
                    Some(prev) => (prev + grad)?,
                    None => grad,
                };
                st.insert(id, grad);
            }
        }
        gs.push(Some(args[2].zeros_like()?));
        Ok(gs)
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
