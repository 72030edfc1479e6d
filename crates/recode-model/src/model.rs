//! The decoder: Llama / Qwen2 blocks written with plain candle ops so that gradients flow through
//! every parameter (base weights when made trainable, LoRA/DoRA adapters), plus a KV cache for
//! inference. Inference mode swaps in candle's fused kernels (RoPE, RMS norm, softmax), which have
//! no backward pass. Gradient forwards on CPU use the memory-lean kernels of `lean` (custom
//! backward passes that keep only each op's inputs, no gradients for frozen weights, chunked
//! log-probs, optional layer-wise activation checkpointing); elsewhere, or with
//! [`CausalLM::set_lean_kernels`]`(false)`, differentiable compositions of the same maths.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor, Var, D};

use crate::adapter::Adapter;
use crate::config::ModelConfig;
use crate::decode;
use crate::error::{ModelError, Result};
use crate::lean;
use crate::packed::PackedWeight;
use crate::weights::NamedTensors;

/// Inference products with at most this many input rows (decode steps) use the packed
/// block-quantised weights when the model has them; larger ones (prefill) use the dense gemm.
pub(crate) const PACKED_MAX_ROWS: usize = 16;

/// Shortest common prefix that [`CausalLM::set_prefix_sharing`] runs once (shorter ones are not
/// worth the second pass per layer).
const MIN_SHARED_PREFIX: usize = 16;

/// Dropout slot of the rows' own tokens after a shared prefix.
const SHARED_REST_SLOT: u64 = 0x005E_ED0F_4E57;

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
        lean::linear(x, w, None, None)
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
    fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
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

/// RMS norm; fused kernel in inference (except f64, which it lacks), differentiable composition (computed in f32 or f64) otherwise.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, grad: bool) -> Result<Tensor> {
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
struct Rope {
    /// `[B, T, D/2]` for the fused kernel.
    cos: Tensor,
    sin: Tensor,
    /// `-sin`, for the backward rotation of the lean kernel.
    neg_sin: Tensor,
}

impl Rope {
    fn new(
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

/// Keys and values of one layer, stored in a pre-allocated buffer that grows by doubling.
#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl LayerKv {
    fn append(
        slot: &mut Option<LayerKv>,
        k: &Tensor,
        v: &Tensor,
        capacity: usize,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let k = k.contiguous()?;
        let v = v.contiguous()?;
        let kv = match slot {
            Some(kv) => kv,
            None => {
                let (b, h, _, d) = k.dims4()?;
                let cap = capacity.max(t);
                let k0 = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
                let v0 = Tensor::zeros((b, h, cap, d), v.dtype(), v.device())?;
                slot.insert(LayerKv {
                    k: k0,
                    v: v0,
                    len: 0,
                })
            }
        };
        let cap = kv.k.dim(2)?;
        if kv.len + t > cap {
            let extra = (kv.len + t).max(2 * cap) - cap;
            let (b, h, _, d) = kv.k.dims4()?;
            let zk = Tensor::zeros((b, h, extra, d), k.dtype(), k.device())?;
            let zv = Tensor::zeros((b, h, extra, d), v.dtype(), v.device())?;
            kv.k = Tensor::cat(&[&kv.k, &zk], 2)?;
            kv.v = Tensor::cat(&[&kv.v, &zv], 2)?;
        }
        kv.k.slice_set(&k, 2, kv.len)?;
        kv.v.slice_set(&v, 2, kv.len)?;
        kv.len += t;
        Ok((kv.k.narrow(2, 0, kv.len)?, kv.v.narrow(2, 0, kv.len)?))
    }
}

/// Inference KV cache for a batch: per-layer keys/values, the attention mask of every cached
/// position, and the next RoPE position of each row.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    mask: Vec<Vec<u8>>,
    next_pos: Vec<u32>,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers, pre-allocating `capacity` positions on first use.
    pub fn new(n_layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            mask: Vec::new(),
            next_pos: Vec::new(),
            capacity,
        }
    }

    /// Number of cached positions (including padding).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the cached batch.
    pub fn batch_size(&self) -> usize {
        self.mask.len()
    }

    /// Keeps only the given rows, in the given order (rows may repeat): used to fan one prefill
    /// out to n samples and to drop finished sequences.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch_size()) {
            return Err(ModelError::Input(format!(
                "select_rows: row {bad} out of range for batch {}",
                self.batch_size()
            )));
        }
        if rows.is_empty() {
            return Err(ModelError::Input("select_rows: no rows".into()));
        }
        let device = self
            .layers
            .iter()
            .flatten()
            .next()
            .map(|kv| kv.k.device().clone());
        if let Some(device) = device {
            let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::new(idx.as_slice(), &device)?;
            for kv in self.layers.iter_mut().flatten() {
                kv.k = kv.k.index_select(&idx, 0)?;
                kv.v = kv.v.index_select(&idx, 0)?;
            }
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        self.next_pos = rows.iter().map(|&r| self.next_pos[r]).collect();
        Ok(())
    }
}

/// Converts a `[B, T]` mask tensor (any integer or float dtype, 1 = token, 0 = padding) to rows.
fn mask_rows(mask: &Tensor) -> Result<Vec<Vec<u8>>> {
    let m = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    Ok(m.into_iter()
        .map(|r| r.into_iter().map(|x| u8::from(x != 0.0)).collect())
        .collect())
}

/// Keys (rotated) and values of a prefix that every row of a forward pass shares, computed once
/// with batch 1, in the layout of the attention path that made them.
#[derive(Debug, Clone)]
struct SharedKv {
    k: Tensor,
    v: Tensor,
}

/// Where a layer's attention gets its keys and values besides the call's own tokens.
enum KvUse<'a> {
    /// The call's own tokens only.
    Own,
    /// An inference cache (appended to) and its initial capacity.
    Cache(&'a mut Option<LayerKv>, usize),
    /// The call is the shared prefix: keep its keys and values for [`KvUse::After`].
    Record(&'a mut Option<SharedKv>),
    /// The call continues a shared prefix: attend to it first (its gradient flows back to it).
    After(&'a SharedKv),
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        mask: &Tensor,
        kv: KvUse<'_>,
        c: &Ctx,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.n_heads, self.n_kv, self.head_dim);
        if c.lean && !matches!(kv, KvUse::Cache(..)) {
            let q = self.q.forward(x, &c.slot(0))?;
            let k = self.k.forward(x, &c.slot(1))?;
            let v = self.v.forward(x, &c.slot(2))?;
            let q = lean::rope(&q, h, &rope.cos, &rope.sin, &rope.neg_sin)?;
            let k = lean::rope(&k, kvh, &rope.cos, &rope.sin, &rope.neg_sin)?;
            // Keys [B, KVH, L, D] (dim 2), values [B, L, KVH*D] (dim 1).
            let (k, v) = with_shared(kv, k, v, 2, 1)?;
            let y = lean::attention(&q, &k, &v, mask)?;
            return self.o.forward(&y, &c.slot(3));
        }
        let kv = match kv {
            KvUse::Cache(slot, cap) if t == 1 && is_cpu_f32_inference(x, c) => {
                return self.decode_one(x, rope, mask, slot, cap, c);
            }
            other => other,
        };
        let o = &c.o;
        let q = self
            .q
            .forward(x, &c.slot(0))?
            .reshape((b, t, h, d))?
            .transpose(1, 2)?;
        let k = self
            .k
            .forward(x, &c.slot(1))?
            .reshape((b, t, kvh, d))?
            .transpose(1, 2)?;
        let v = self
            .v
            .forward(x, &c.slot(2))?
            .reshape((b, t, kvh, d))?
            .transpose(1, 2)?;
        let q = rope.apply(&q, o.grad)?;
        let k = rope.apply(&k, o.grad)?;
        let (k, v) = match kv {
            KvUse::Cache(slot, cap) => LayerKv::append(slot, &k, &v, cap)?,
            // Keys and values both [B, KVH, L, D].
            other => with_shared(other, k, v.contiguous()?, 2, 2)?,
        };
        let l = k.dim(2)?;
        let rep = h / kvh;
        // Group the query heads that share a KV head: [B, KVH, rep*T, D] (no K/V copies).
        let q = q.contiguous()?.reshape((b, kvh, rep * t, d))?;
        let scale = 1.0 / (d as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?
            .reshape((b, h, t, l))?
            .broadcast_add(mask)?;
        let p = softmax_last(&scores, o.grad)?.reshape((b, kvh, rep * t, l))?;
        let y = p
            .matmul(&v)?
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o.forward(&y, &c.slot(3))
    }
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
    fn decode_one(
        &self,
        x: &Tensor,
        rope: &Rope,
        bias: &Tensor,
        slot: &mut Option<LayerKv>,
        capacity: usize,
        c: &Ctx,
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        let (h, kvh, d) = (self.n_heads, self.n_kv, self.head_dim);
        let flat = |t: Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let (cos, sin) = (flat(rope.cos.clone())?, flat(rope.sin.clone())?);
        let mut q = flat(self.q.forward(x, &c.slot(0))?)?;
        let mut k = flat(self.k.forward(x, &c.slot(1))?)?;
        let v = self.v.forward(x, &c.slot(2))?.reshape((b, kvh, 1, d))?;
        decode::rope_rows(&mut q, d, &cos, &sin);
        decode::rope_rows(&mut k, d, &cos, &sin);
        let k = Tensor::from_vec(k, (b, kvh, 1, d), x.device())?;
        LayerKv::append(slot, &k, &v, capacity)?;
        let kv = slot.as_ref().expect("LayerKv::append fills the slot");
        let bias = flat(bias.clone())?;
        let shape = decode::DecodeShape {
            batch: b,
            heads: h,
            kv_heads: kvh,
            head_dim: d,
            capacity: kv.k.dim(2)?,
            len: kv.len,
        };
        let y = lean::read::<f32, _>(&kv.k, |ks| {
            lean::read::<f32, _>(&kv.v, |vs| decode::attend(&q, ks, vs, &bias, shape))
        })??;
        let y = Tensor::from_vec(y, (b, 1, h * d), x.device())?;
        self.o.forward(&y, &c.slot(3))
    }
}

/// Whether a forward of `x` under `c` may use the raw f32 CPU kernels of [`crate::decode`].
pub(crate) fn is_cpu_f32_inference(x: &Tensor, c: &Ctx) -> bool {
    !c.o.grad && x.dtype() == DType::F32 && x.device().is_cpu()
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
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
struct Block {
    attn: Attention,
    mlp: Mlp,
    ln1: Tensor,
    ln2: Tensor,
}

/// Names of the projection modules that adapters can target.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Block {
    /// One decoder layer on `x` `[B, T, H]` (layer `i`, for the dropout seeds).
    #[allow(clippy::too_many_arguments)]
    fn forward(
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
        let a = self.attn.forward(&hn, rope, bias, kv, &c)?;
        let x = (x + a)?;
        let hn = norm(&x, &self.ln2)?;
        Ok((&x + self.mlp.forward(&hn, &c)?)?)
    }

    /// The tensors of this layer that a gradient forward may train.
    fn parameters(&self) -> Vec<Tensor> {
        let mut out = vec![self.ln1.clone(), self.ln2.clone()];
        for name in PROJECTIONS {
            let l = self.projection(name).expect("known projection");
            out.push(l.weight.clone());
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
    fn projection_mut(&mut self, name: &str) -> Option<&mut Linear> {
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

    fn projection(&self, name: &str) -> Option<&Linear> {
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

/// Module path of a projection in HF naming (`self_attn.q_proj`, `mlp.up_proj`).
pub fn projection_path(name: &str) -> &'static str {
    match name {
        "q_proj" => "self_attn.q_proj",
        "k_proj" => "self_attn.k_proj",
        "v_proj" => "self_attn.v_proj",
        "o_proj" => "self_attn.o_proj",
        "gate_proj" => "mlp.gate_proj",
        "up_proj" => "mlp.up_proj",
        _ => "mlp.down_proj",
    }
}

/// Per-token log-probabilities of the next token, as the RL trainer needs them.
#[derive(Debug, Clone)]
pub struct TokenLogprobs {
    /// `[B, T-1]`: log p(input_ids[:, t+1] | input_ids[:, ..=t]).
    pub logprobs: Tensor,
    /// `[B, T-1]` entropy of each next-token distribution (detached), when asked for.
    pub entropy: Option<Tensor>,
}

/// A causal language model of the Llama or Qwen2 family.
#[derive(Debug, Clone)]
pub struct CausalLM {
    config: ModelConfig,
    device: Device,
    dtype: DType,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Option<Linear>,
    inv_freq: Vec<f64>,
    /// The embedding matrix in GGUF blocks, used as the tied output projection when decoding.
    embed_packed: Option<Arc<PackedWeight>>,
    /// Gradient forwards on CPU use the memory-lean kernels of [`lean`].
    lean_kernels: bool,
    /// Gradient forwards recompute each decoder layer in the backward pass.
    checkpointing: bool,
    /// Cache-free forwards run a token prefix common to every row once.
    prefix_sharing: bool,
    /// Base seed of the lean kernels' dropout masks (`None`: fresh entropy per forward).
    dropout_seed: Option<u64>,
    /// Forwards run since the seed was set (each gets its own masks).
    dropout_calls: Arc<AtomicU64>,
}

impl CausalLM {
    /// Builds the model from HF-named tensors (consumed), checking every name and shape.
    pub fn from_tensors(
        config: ModelConfig,
        mut tensors: NamedTensors,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| ModelError::Weights(format!("missing tensor `{name}`")))?;
            if t.dims() != shape {
                return Err(ModelError::Weights(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            Ok(t.to_dtype(dtype)?.to_device(device)?)
        };
        let (hs, im) = (c.hidden_size, c.intermediate_size);
        let qd = c.num_attention_heads * c.head_dim;
        let kd = c.num_key_value_heads * c.head_dim;
        let embed = take("model.embed_tokens.weight", &[c.vocab_size, hs])?;
        let mut blocks = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut lin = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
                let w = take(&format!("{p}.{name}.weight"), &[out, inp])?;
                let b = if bias {
                    Some(take(&format!("{p}.{name}.bias"), &[out])?)
                } else {
                    None
                };
                Ok(Linear::new(w, b))
            };
            let ab = c.attention_bias;
            let attn = Attention {
                q: lin("self_attn.q_proj", qd, hs, ab)?,
                k: lin("self_attn.k_proj", kd, hs, ab)?,
                v: lin("self_attn.v_proj", kd, hs, ab)?,
                o: lin("self_attn.o_proj", hs, qd, false)?,
                n_heads: c.num_attention_heads,
                n_kv: c.num_key_value_heads,
                head_dim: c.head_dim,
            };
            let mlp = Mlp {
                gate: lin("mlp.gate_proj", im, hs, false)?,
                up: lin("mlp.up_proj", im, hs, false)?,
                down: lin("mlp.down_proj", hs, im, false)?,
            };
            blocks.push(Block {
                attn,
                mlp,
                ln1: take(&format!("{p}.input_layernorm.weight"), &[hs])?,
                ln2: take(&format!("{p}.post_attention_layernorm.weight"), &[hs])?,
            });
        }
        let norm = take("model.norm.weight", &[hs])?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                take("lm_head.weight", &[c.vocab_size, hs])?,
                None,
            ))
        };
        let inv_freq = config.inv_freq();
        Ok(Self {
            config,
            device: device.clone(),
            dtype,
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq,
            embed_packed: None,
            lean_kernels: true,
            checkpointing: false,
            prefix_sharing: true,
            dropout_seed: None,
            dropout_calls: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Enables layer-wise activation checkpointing for gradient forwards (default off): only
    /// each decoder layer's input is kept, and the backward pass recomputes the layer from it
    /// (about one extra forward of compute) before backpropagating through it. Gradients are
    /// those of plain autograd; `loss.backward()` is used as usual. Takes effect with the lean
    /// kernels (CPU); adapter dropout masks are replayed exactly in the recomputation.
    pub fn set_activation_checkpointing(&mut self, on: bool) {
        self.checkpointing = on;
    }

    /// Whether layer-wise activation checkpointing is on.
    pub fn activation_checkpointing(&self) -> bool {
        self.checkpointing
    }

    /// Runs a token prefix that every row shares (the prompt of a group of rollouts) once in
    /// cache-free forwards, with or without gradient (default on): the rows' own tokens attend to
    /// its keys and values. Results equal the plain pass up to float rounding; `false` gives the
    /// plain pass (a reference). Not combined with activation checkpointing.
    pub fn set_prefix_sharing(&mut self, on: bool) {
        self.prefix_sharing = on;
    }

    /// Whether cache-free forwards share a common prefix.
    pub fn prefix_sharing(&self) -> bool {
        self.prefix_sharing
    }

    /// Chooses the kernels of gradient forwards on CPU: the memory-lean ones with custom backward
    /// passes (default), or plain candle autograd over composed ops (`false`; a reference, and
    /// what other devices always use). Activation checkpointing needs the lean kernels.
    pub fn set_lean_kernels(&mut self, on: bool) {
        self.lean_kernels = on;
    }

    /// Whether gradient forwards use the memory-lean kernels (on CPU).
    pub fn lean_kernels(&self) -> bool {
        self.lean_kernels
    }

    /// Makes the adapter dropout masks of gradient forwards (lean kernels) reproducible: the
    /// k-th forward after this call draws its masks from `(seed, k)`. `None` (the default) draws
    /// fresh entropy for every forward.
    pub fn set_dropout_seed(&mut self, seed: Option<u64>) {
        self.dropout_seed = seed;
        self.dropout_calls = Arc::new(AtomicU64::new(0));
    }

    /// How many seeded dropout draws (training forwards) happened since `set_dropout_seed`.
    pub fn dropout_position(&self) -> u64 {
        self.dropout_calls.load(Ordering::Relaxed)
    }

    /// Continues the seeded dropout stream at draw `position` (resuming a checkpoint).
    pub fn set_dropout_position(&self, position: u64) {
        self.dropout_calls.store(position, Ordering::Relaxed);
    }

    fn ctx(&self, o: ForwardOpts) -> Ctx {
        let seed = match (o.train, self.dropout_seed) {
            (false, _) => 0,
            (true, None) => rand::random(),
            (true, Some(s)) => {
                lean::mix_seed(s, self.dropout_calls.fetch_add(1, Ordering::Relaxed))
            }
        };
        Ctx::new(o, self.lean_kernels && self.device.is_cpu(), seed)
    }

    /// A fresh KV cache sized for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.blocks.len(), capacity)
    }

    /// Runs the decoder and returns logits.
    ///
    /// `input_ids` is `[B, T]` (u32). `attention_mask` is `[B, T]` for the new tokens (1 = token,
    /// 0 = left padding; `None` = all ones); with a cache the mask of earlier tokens is kept there.
    /// Position ids are derived from the mask, so left-padded rows start at position 0.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        logits: LogitsMode,
        o: ForwardOpts,
    ) -> Result<Tensor> {
        let c = self.ctx(o);
        let h = self.hidden_states_ctx(input_ids, attention_mask, cache, &c)?;
        let h = match logits {
            LogitsMode::All => h,
            LogitsMode::Last => {
                let t = h.dim(1)?;
                h.narrow(1, t - 1, 1)?
            }
        };
        self.lm_head_ctx(&h, &c)
    }

    /// Applies the output projection to final hidden states `[.., H]`.
    pub fn lm_head(&self, h: &Tensor, o: &ForwardOpts) -> Result<Tensor> {
        self.lm_head_ctx(h, &self.ctx(*o))
    }

    fn lm_head_ctx(&self, h: &Tensor, c: &Ctx) -> Result<Tensor> {
        match &self.lm_head {
            Some(l) => l.forward(h, c),
            None => match &self.embed_packed {
                Some(p) if !c.o.grad && rows_of(h) <= PACKED_MAX_ROWS => p.matmul_t(h),
                _ => matmul_t_ctx(h, &c.param(&self.embed), c),
            },
        }
    }

    /// The output projection's weight `[V, H]` as pass `c` uses it.
    fn head_weight(&self, c: &Ctx) -> Tensor {
        match &self.lm_head {
            Some(l) => c.param(&l.weight),
            None => c.param(&self.embed),
        }
    }

    /// Runs the decoder up to the final norm: `[B, T, hidden]`.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        o: ForwardOpts,
    ) -> Result<Tensor> {
        self.hidden_states_ctx(input_ids, attention_mask, cache, &self.ctx(o))
    }

    fn hidden_states_ctx(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        c: &Ctx,
    ) -> Result<Tensor> {
        let o = c.o;
        let (b, t) = input_ids.dims2().map_err(|_| {
            ModelError::Input(format!(
                "input_ids must be [B, T], got {:?}",
                input_ids.dims()
            ))
        })?;
        if t == 0 || b == 0 {
            return Err(ModelError::Input("empty input_ids".into()));
        }
        if o.grad && cache.is_some() {
            return Err(ModelError::Input(
                "the KV cache is inference-only; run gradient forwards without a cache".into(),
            ));
        }
        let checkpoint = c.lean && self.checkpointing && cache.is_none();
        if cache.is_none() && attention_mask.is_none() && !checkpoint {
            if let Some(s) = self.shared_prefix_len(input_ids)? {
                return self.hidden_states_shared(input_ids, s, c);
            }
        }
        let new_mask = match attention_mask {
            Some(m) => {
                if m.dims() != [b, t] {
                    return Err(ModelError::Input(format!(
                        "attention_mask has shape {:?}, expected [{b}, {t}]",
                        m.dims()
                    )));
                }
                mask_rows(m)?
            }
            None => vec![vec![1u8; t]; b],
        };
        let (mut full_mask, mut next_pos) = match cache.as_deref() {
            Some(c) if !c.is_empty() => {
                if c.batch_size() != b {
                    return Err(ModelError::Input(format!(
                        "batch of {b} rows does not match the cache's {} rows",
                        c.batch_size()
                    )));
                }
                (c.mask.clone(), c.next_pos.clone())
            }
            _ => (vec![Vec::new(); b], vec![0u32; b]),
        };
        let (bias, rope) = self.layout(&mut full_mask, &mut next_pos, &new_mask)?;
        let mut x = self.embed_ids(input_ids, c)?;
        let eps = self.config.rms_norm_eps;
        for (i, blk) in self.blocks.iter().enumerate() {
            if checkpoint {
                let (blk2, rope2, bias2, c2) = (blk.clone(), rope.clone(), bias.clone(), *c);
                x = lean::checkpoint(&x, blk.parameters(), move |x, track| {
                    let c = Ctx { track, ..c2 };
                    blk2.forward(i, x, &rope2, &bias2, KvUse::Own, &c, eps)
                })?;
                continue;
            }
            let kv = match cache.as_deref_mut() {
                Some(cache) => KvUse::Cache(&mut cache.layers[i], cache.capacity),
                None => KvUse::Own,
            };
            x = blk.forward(i, &x, &rope, &bias, kv, c, eps)?;
        }
        if let Some(c) = cache {
            c.mask = full_mask;
            c.next_pos = next_pos;
        }
        self.final_norm(&x, c)
    }

    /// The attention bias `[B, 1, T, L]` and rotary tables of `new_mask`'s tokens after the
    /// `full_mask` positions already seen (per row); extends `full_mask` and `next_pos`.
    fn layout(
        &self,
        full_mask: &mut [Vec<u8>],
        next_pos: &mut [u32],
        new_mask: &[Vec<u8>],
    ) -> Result<(Tensor, Rope)> {
        let b = new_mask.len();
        let t = new_mask.first().map_or(0, Vec::len);
        let past = full_mask.first().map_or(0, Vec::len);
        let mut positions = vec![Vec::with_capacity(t); b];
        for r in 0..b {
            for &m in &new_mask[r] {
                positions[r].push(next_pos[r]);
                if m != 0 {
                    next_pos[r] += 1;
                }
            }
            full_mask[r].extend_from_slice(&new_mask[r]);
        }
        let l = past + t;
        let neg = match self.dtype {
            DType::F16 => -6.0e4,
            _ => -1.0e9,
        };
        let mut bias = Vec::with_capacity(b * t * l);
        for row in full_mask.iter() {
            for i in 0..t {
                let q = past + i;
                for (j, &m) in row.iter().enumerate() {
                    bias.push(if j <= q && m != 0 { 0.0f32 } else { neg });
                }
            }
        }
        let bias = Tensor::from_vec(bias, (b, 1, t, l), &self.device)?.to_dtype(self.dtype)?;
        let rope = Rope::new(&self.inv_freq, &positions, self.dtype, &self.device)?;
        Ok((bias, rope))
    }

    /// Token embeddings of `ids` `[B, T]` → `[B, T, hidden]`.
    fn embed_ids(&self, ids: &Tensor, c: &Ctx) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(c.param(&self.embed)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.config.hidden_size))?)
    }

    /// The final RMS norm.
    fn final_norm(&self, x: &Tensor, c: &Ctx) -> Result<Tensor> {
        let norm = c.param(&self.norm);
        if c.lean {
            lean::rms_norm(x, &norm, self.config.rms_norm_eps)
        } else {
            rms_norm(x, &norm, self.config.rms_norm_eps, c.o.grad)
        }
    }

    /// How many leading tokens of `ids` `[B, T]` a cache-free forward without attention mask runs
    /// once for all rows (see [`Self::set_prefix_sharing`]): the prefix every row shares when it
    /// has at least 16 tokens, at most `T - 1` (each row keeps one token of its own).
    pub fn shared_prefix_len(&self, ids: &Tensor) -> Result<Option<usize>> {
        let (b, t) = ids.dims2()?;
        if !self.prefix_sharing || b < 2 || t <= MIN_SHARED_PREFIX {
            return Ok(None);
        }
        let rows = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let s = (0..t - 1)
            .take_while(|&j| rows.iter().all(|r| r[j] == rows[0][j]))
            .count();
        Ok((s >= MIN_SHARED_PREFIX).then_some(s))
    }

    /// [`Self::hidden_states_ctx`] of rows whose first `s` tokens are the same: the prefix runs
    /// once (batch 1), each row's remaining tokens attend to its keys and values, and the
    /// prefix's hidden states are broadcast to every row. Equal to the plain pass up to float
    /// rounding, gradients included (they flow back through the shared keys and values).
    fn hidden_states_shared(&self, input_ids: &Tensor, s: usize, c: &Ctx) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let (mut prefix_mask, mut prefix_pos) = (vec![Vec::new()], vec![0u32]);
        let (prefix_bias, prefix_rope) =
            self.layout(&mut prefix_mask, &mut prefix_pos, &[vec![1u8; s]])?;
        let (mut rest_mask, mut rest_pos) = (vec![vec![1u8; s]; b], vec![s as u32; b]);
        let (rest_bias, rest_rope) =
            self.layout(&mut rest_mask, &mut rest_pos, &vec![vec![1u8; t - s]; b])?;
        let mut xp = self.embed_ids(&input_ids.i((0..1, 0..s))?.contiguous()?, c)?;
        let mut xr = self.embed_ids(&input_ids.i((.., s..))?.contiguous()?, c)?;
        // The rows' own tokens draw dropout masks independent of the prefix's.
        let cr = Ctx {
            seed: lean::mix_seed(c.seed, SHARED_REST_SLOT),
            ..*c
        };
        let eps = self.config.rms_norm_eps;
        for (i, blk) in self.blocks.iter().enumerate() {
            let mut shared = None;
            xp = blk.forward(
                i,
                &xp,
                &prefix_rope,
                &prefix_bias,
                KvUse::Record(&mut shared),
                c,
                eps,
            )?;
            let shared = shared.ok_or_else(|| {
                ModelError::Input(format!("layer {i} recorded no shared keys and values"))
            })?;
            xr = blk.forward(
                i,
                &xr,
                &rest_rope,
                &rest_bias,
                KvUse::After(&shared),
                &cr,
                eps,
            )?;
        }
        let hp = self.final_norm(&xp, c)?;
        let hr = self.final_norm(&xr, c)?;
        let hp = hp.broadcast_as((b, s, self.config.hidden_size))?;
        Ok(Tensor::cat(&[&hp, &hr], 1)?)
    }

    /// Log-probabilities of each next token of `input_ids` (`[B, T]` → `[B, T-1]`), computed from
    /// logits divided by `temperature`; with `o.grad` the result is differentiable w.r.t. every
    /// trainable parameter. `with_entropy` adds the (detached) entropy of each distribution.
    pub fn token_logprobs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        temperature: f64,
        with_entropy: bool,
        o: ForwardOpts,
    ) -> Result<TokenLogprobs> {
        self.scored_logprobs(
            input_ids,
            attention_mask,
            None,
            temperature,
            with_entropy,
            o,
        )
    }

    /// [`Self::token_logprobs`] for only the tokens where `score_mask` `[B, T]` is non-zero
    /// (e.g. the completion of a prompt + completion row); the other positions are 0. On CPU the
    /// output projection and its log-softmax then run on those positions alone, which is most of
    /// the saving when prompts are long and completions short.
    pub fn scored_logprobs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        score_mask: Option<&Tensor>,
        temperature: f64,
        with_entropy: bool,
        o: ForwardOpts,
    ) -> Result<TokenLogprobs> {
        let (b, t) = input_ids.dims2()?;
        if let Some(m) = score_mask {
            if m.dims() != [b, t] {
                return Err(ModelError::Input(format!(
                    "score_mask has shape {:?}, expected [{b}, {t}]",
                    m.dims()
                )));
            }
        }
        if t < 2 {
            return Err(ModelError::Input(
                "token_logprobs needs at least 2 tokens per row".into(),
            ));
        }
        if temperature <= 0.0 {
            return Err(ModelError::Input(format!(
                "temperature must be > 0, got {temperature}"
            )));
        }
        let c = self.ctx(o);
        let h = self.hidden_states_ctx(input_ids, attention_mask, None, &c)?;
        let targets = input_ids.i((.., 1..))?.contiguous()?;
        if self.device.is_cpu() && (c.lean || !o.grad) {
            // Chunked logsumexp + gather: the [B, T, V] logits never exist at once.
            let hs = self.config.hidden_size;
            let hc = h
                .narrow(1, 0, t - 1)?
                .contiguous()?
                .reshape((b * (t - 1), hs))?;
            let w = self.head_weight(&c);
            let tg = targets.flatten_all()?;
            // Positions (in the flattened [B*(T-1)] order) whose next token is scored.
            let keep = match score_mask {
                Some(m) => {
                    let flags = m.i((.., 1..))?.to_dtype(DType::F32)?.flatten_all()?;
                    let keep: Vec<u32> = flags
                        .to_vec1::<f32>()?
                        .iter()
                        .enumerate()
                        .filter(|(_, &f)| f != 0.0)
                        .map(|(i, _)| i as u32)
                        .collect();
                    Some(Tensor::new(keep.as_slice(), &self.device)?)
                }
                None => None,
            };
            let (hc, tg) = match &keep {
                Some(idx) => (hc.index_select(idx, 0)?, tg.index_select(idx, 0)?),
                None => (hc, tg),
            };
            let (lp, ent) = if hc.dim(0)? == 0 {
                (Tensor::zeros(0, self.dtype, &self.device)?, None)
            } else {
                lean::head_logprobs(&hc, &w, &tg, temperature, with_entropy)?
            };
            // Scatter the scored values back into [B, T-1] (zeros elsewhere; differentiable).
            let spread = |x: Tensor| -> Result<Tensor> {
                let full = match &keep {
                    Some(idx) => {
                        Tensor::zeros(b * (t - 1), x.dtype(), x.device())?.index_add(idx, &x, 0)?
                    }
                    None => x,
                };
                Ok(full.reshape((b, t - 1))?)
            };
            let entropy = match ent {
                Some(e) => Some(spread(e)?),
                None if with_entropy => Some(Tensor::zeros((b, t - 1), self.dtype, &self.device)?),
                None => None,
            };
            return Ok(TokenLogprobs {
                logprobs: spread(lp)?,
                entropy,
            });
        }
        // Process a few rows at a time so that inference never materialises [B, T, V] at once.
        let chunk = if o.grad { b } else { 1 };
        let mut lps = Vec::new();
        let mut ents = Vec::new();
        for start in (0..b).step_by(chunk) {
            let n = chunk.min(b - start);
            let hc = h.narrow(0, start, n)?.narrow(1, 0, t - 1)?;
            let mut logits = self.lm_head_ctx(&hc, &c)?;
            if temperature != 1.0 {
                logits = (logits / temperature)?;
            }
            let logp = log_softmax_last(&logits)?;
            let tg = targets.narrow(0, start, n)?.unsqueeze(2)?;
            lps.push(logp.gather(&tg, 2)?.squeeze(2)?);
            if with_entropy {
                let lp = logp.detach();
                ents.push((lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?);
            }
        }
        let mut logprobs = Tensor::cat(&lps, 0)?;
        let mut entropy = if with_entropy {
            Some(Tensor::cat(&ents, 0)?)
        } else {
            None
        };
        if let Some(m) = score_mask {
            let m = m.i((.., 1..))?.to_dtype(logprobs.dtype())?;
            logprobs = (logprobs * &m)?;
            entropy = entropy.map(|e| e * &m).transpose()?;
        }
        Ok(TokenLogprobs { logprobs, entropy })
    }

    // ----- parameters, adapters -----

    /// Every base parameter under its HF name (tied models have no `lm_head.weight`).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (i, blk) in self.blocks.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), blk.ln1.clone()));
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                blk.ln2.clone(),
            ));
            for name in PROJECTIONS {
                let l = blk.projection(name).expect("known projection");
                let path = projection_path(name);
                out.push((format!("{p}.{path}.weight"), l.weight.clone()));
                if let Some(bias) = &l.bias {
                    out.push((format!("{p}.{path}.bias"), bias.clone()));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if let Some(l) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), l.weight.clone()));
        }
        out
    }

    /// Attaches block-quantised copies of base weights (HF names, e.g. from a GGUF file) used for
    /// fast inference decoding; shapes are checked. Returns how many were attached.
    pub fn attach_packed_weights(
        &mut self,
        packed: HashMap<String, PackedWeight>,
    ) -> Result<usize> {
        let mut n = 0;
        let mut packed = packed;
        let mut take =
            |name: &str, rows: usize, cols: usize| -> Result<Option<Arc<PackedWeight>>> {
                match packed.remove(name) {
                    Some(p) if p.rows() == rows && p.cols() == cols => {
                        n += 1;
                        Ok(Some(Arc::new(p)))
                    }
                    Some(p) => Err(ModelError::Weights(format!(
                        "packed `{name}` is [{}, {}], expected [{rows}, {cols}]",
                        p.rows(),
                        p.cols()
                    ))),
                    None => Ok(None),
                }
            };
        let (v, hs) = (self.config.vocab_size, self.config.hidden_size);
        self.embed_packed = take("model.embed_tokens.weight", v, hs)?;
        if let Some(l) = self.lm_head.as_mut() {
            l.packed = take("lm_head.weight", v, hs)?;
        }
        for (i, blk) in self.blocks.iter_mut().enumerate() {
            for name in PROJECTIONS {
                let l = blk.projection_mut(name).expect("known projection");
                let key = format!("model.layers.{i}.{}.weight", projection_path(name));
                l.packed = take(&key, l.out_features(), l.in_features())?;
            }
        }
        Ok(n)
    }

    /// Drops the packed copies (every product then uses the dense weights).
    pub fn clear_packed_weights(&mut self) {
        self.embed_packed = None;
        for (_, _, l) in self.projections_mut() {
            l.packed = None;
        }
        if let Some(l) = self.lm_head.as_mut() {
            l.packed = None;
        }
    }

    /// Whether packed weights are attached.
    pub fn has_packed_weights(&self) -> bool {
        self.embed_packed.is_some() || self.projections().any(|(_, _, l)| l.packed.is_some())
    }

    /// Makes every base parameter trainable (full fine-tuning) and returns the variables by name.
    /// Packed inference copies are dropped, since the dense weights will change.
    pub fn make_base_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        self.clear_packed_weights();
        let mut out = Vec::new();
        let mut var = |name: String, t: &mut Tensor| -> Result<()> {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            out.push((name, v));
            Ok(())
        };
        var("model.embed_tokens.weight".into(), &mut self.embed)?;
        for (i, blk) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            var(format!("{p}.input_layernorm.weight"), &mut blk.ln1)?;
            var(format!("{p}.post_attention_layernorm.weight"), &mut blk.ln2)?;
            for name in PROJECTIONS {
                let path = projection_path(name);
                let l = blk.projection_mut(name).expect("known projection");
                var(format!("{p}.{path}.weight"), &mut l.weight)?;
                if let Some(b) = l.bias.as_mut() {
                    var(format!("{p}.{path}.bias"), b)?;
                }
            }
        }
        var("model.norm.weight".into(), &mut self.norm)?;
        if let Some(l) = self.lm_head.as_mut() {
            var("lm_head.weight".into(), &mut l.weight)?;
        }
        Ok(out)
    }

    /// Visits every projection as (layer index, projection name, module).
    pub(crate) fn projections_mut(
        &mut self,
    ) -> impl Iterator<Item = (usize, &'static str, &mut Linear)> {
        self.blocks.iter_mut().enumerate().flat_map(|(i, blk)| {
            let Block { attn, mlp, .. } = blk;
            [
                ("q_proj", &mut attn.q),
                ("k_proj", &mut attn.k),
                ("v_proj", &mut attn.v),
                ("o_proj", &mut attn.o),
                ("gate_proj", &mut mlp.gate),
                ("up_proj", &mut mlp.up),
                ("down_proj", &mut mlp.down),
            ]
            .into_iter()
            .map(move |(n, l)| (i, n, l))
        })
    }

    /// Visits every projection read-only.
    pub(crate) fn projections(&self) -> impl Iterator<Item = (usize, &'static str, &Linear)> {
        self.blocks.iter().enumerate().flat_map(|(i, blk)| {
            PROJECTIONS
                .into_iter()
                .map(move |n| (i, n, blk.projection(n).expect("known projection")))
        })
    }
}
