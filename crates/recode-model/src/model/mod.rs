//! The decoder: Llama / Qwen2 blocks written with plain candle ops so that gradients flow through
//! every parameter (base weights when made trainable, LoRA/DoRA adapters), plus a KV cache for
//! inference. Inference mode swaps in candle's fused kernels (RoPE, RMS norm, softmax), which have
//! no backward pass. Gradient forwards on CPU use the memory-lean kernels of `lean` (custom
//! backward passes that keep only each op's inputs, no gradients for frozen weights, chunked
//! log-probs, optional layer-wise activation checkpointing); elsewhere, or with
//! [`CausalLM::set_lean_kernels`]`(false)`, differentiable compositions of the same maths.

mod adapters;
mod attention;
mod block;
mod kv;
mod linear;
mod logprobs;
mod params;
mod plan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::forward::{matmul_t_ctx, rows_of, Ctx, PACKED_MAX_ROWS};
use crate::lean;
use crate::packed::PackedWeight;
use crate::weights::NamedTensors;

use attention::{rms_norm, Attention, Rope};
use block::{Block, Mlp};
use kv::{mask_rows, KvUse, RealRows};

pub use crate::adapter::{projection_path, PROJECTIONS};
pub use crate::forward::{ForwardOpts, LogitsMode};
pub use attention::log_softmax_last;
pub use kv::KvCache;
pub use linear::Linear;
pub use logprobs::TokenLogprobs;

/// Shortest common prefix that [`CausalLM::set_prefix_sharing`] runs once (shorter ones are not
/// worth the second pass per layer).
const MIN_SHARED_PREFIX: usize = 16;

/// Dropout slot of the rows' own tokens after a shared prefix.
const SHARED_REST_SLOT: u64 = 0x005E_ED0F_4E57;

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
        tensors: NamedTensors,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut src = TensorSource {
            tensors,
            dtype,
            device,
        };
        let hs = c.hidden_size;
        let embed = src.take("model.embed_tokens.weight", &[c.vocab_size, hs])?;
        let blocks = (0..c.num_hidden_layers)
            .map(|i| src.block(c, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = src.take("model.norm.weight", &[hs])?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                src.take("lm_head.weight", &[c.vocab_size, hs])?,
                None,
            )?)
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
    fn head_weight(&self, c: &Ctx) -> Result<Tensor> {
        Ok(match &self.lm_head {
            Some(l) => c.param(&l.dense()?),
            None => c.param(&self.embed),
        })
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
        let (b, t) = input_ids.dims2().map_err(|_| ModelError::InputShape {
            name: "input_ids",
            actual: input_ids.dims().to_vec(),
            expected: "[B, T]".into(),
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
        let new_mask = new_mask_rows(attention_mask, b, t)?;
        let (mut full_mask, mut next_pos) = cached_layout(cache.as_deref(), b)?;
        let (bias, rope) = self.layout(&mut full_mask, &mut next_pos, &new_mask)?;
        if let Some(kc) = cache.as_deref_mut().filter(|_| t == 1) {
            if let Some(plan) = self.cached_plan(kc, c)? {
                let h = self.decode_planned(&plan, input_ids, kc, &bias, &rope, c)?;
                kc.mask = full_mask;
                kc.next_pos = next_pos;
                return Ok(h);
            }
        }
        let mut x = self.embed_ids(input_ids, c)?;
        // A padded prefill: the row-wise parts of every layer run on the real tokens only.
        let real = if cache.is_some() && t > 1 && !c.o.grad {
            RealRows::of(&new_mask, &self.device)?
        } else {
            None
        };
        if let Some(r) = &real {
            x = r.gather(&x)?;
        }
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
                Some(cache) => KvUse::Cache(&mut cache.layers[i], cache.capacity, real.as_ref()),
                None => KvUse::Own,
            };
            x = blk.forward(i, &x, &rope, &bias, kv, c, eps)?;
        }
        if let Some(r) = &real {
            x = r.scatter(&x)?;
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
            _ => crate::decode::MASK_BIAS,
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
}

/// The mask rows of a call's new tokens (`[B, T]`, 1 = token, 0 = left padding; `None`: all ones).
fn new_mask_rows(attention_mask: Option<&Tensor>, b: usize, t: usize) -> Result<Vec<Vec<u8>>> {
    Ok(match attention_mask {
        Some(m) => {
            if m.dims() != [b, t] {
                return Err(ModelError::InputShape {
                    name: "attention_mask",
                    actual: m.dims().to_vec(),
                    expected: format!("[{b}, {t}]"),
                });
            }
            mask_rows(m)?
        }
        None => vec![vec![1u8; t]; b],
    })
}

/// The mask rows and next RoPE positions of what `cache` holds for a batch of `b` rows (empty
/// rows at position 0 without a cache or with an empty one).
fn cached_layout(cache: Option<&KvCache>, b: usize) -> Result<(Vec<Vec<u8>>, Vec<u32>)> {
    Ok(match cache {
        Some(c) if !c.is_empty() => {
            if c.batch_size() != b {
                return Err(ModelError::CacheRows {
                    rows: b,
                    cache_rows: c.batch_size(),
                });
            }
            (c.mask.clone(), c.next_pos.clone())
        }
        _ => (vec![Vec::new(); b], vec![0u32; b]),
    })
}

/// The HF-named tensors a model is built from, taken one by one with their shapes checked.
struct TensorSource<'a> {
    tensors: NamedTensors,
    dtype: DType,
    device: &'a Device,
}

impl TensorSource<'_> {
    /// Removes tensor `name`, checks that it has `shape`, and converts it to the model's dtype
    /// and device.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                file: None,
            })?;
        if t.dims() != shape {
            return Err(ModelError::TensorShape {
                name: name.to_string(),
                actual: t.dims().to_vec(),
                expected: shape.to_vec(),
                file: None,
            });
        }
        Ok(t.to_dtype(self.dtype)?.to_device(self.device)?)
    }

    /// The projection `{prefix}.{name}` `[out, inp]`, with its bias `[out]` when `bias`.
    fn linear(
        &mut self,
        prefix: &str,
        name: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Linear> {
        let w = self.take(&format!("{prefix}.{name}.weight"), &[out, inp])?;
        let b = if bias {
            Some(self.take(&format!("{prefix}.{name}.bias"), &[out])?)
        } else {
            None
        };
        Linear::new(w, b)
    }

    /// Decoder layer `i` of a model with hyper-parameters `c`.
    fn block(&mut self, c: &ModelConfig, i: usize) -> Result<Block> {
        let (hs, im) = (c.hidden_size, c.intermediate_size);
        let qd = c.num_attention_heads * c.head_dim;
        let kd = c.num_key_value_heads * c.head_dim;
        let p = format!("model.layers.{i}");
        let ab = c.attention_bias;
        let attn = Attention {
            q: self.linear(&p, "self_attn.q_proj", qd, hs, ab)?,
            k: self.linear(&p, "self_attn.k_proj", kd, hs, ab)?,
            v: self.linear(&p, "self_attn.v_proj", kd, hs, ab)?,
            o: self.linear(&p, "self_attn.o_proj", hs, qd, false)?,
            n_heads: c.num_attention_heads,
            n_kv: c.num_key_value_heads,
            head_dim: c.head_dim,
        };
        let mlp = Mlp {
            gate: self.linear(&p, "mlp.gate_proj", im, hs, false)?,
            up: self.linear(&p, "mlp.up_proj", im, hs, false)?,
            down: self.linear(&p, "mlp.down_proj", hs, im, false)?,
        };
        Ok(Block {
            attn,
            mlp,
            ln1: self.take(&format!("{p}.input_layernorm.weight"), &[hs])?,
            ln2: self.take(&format!("{p}.post_attention_layernorm.weight"), &[hs])?,
        })
    }
}
