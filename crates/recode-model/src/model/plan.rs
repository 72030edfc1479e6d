//! The model side of the raw-buffer decode step ([`crate::fused`]): a [`DecodePlan`] built from
//! the model's weights (kept in the KV cache for the generation it serves) and one decode step
//! of every layer run with it.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::attention::{attend_cached, values, HeadDims, Rope};
use super::kv::KvCache;
use super::linear::Linear;
use super::CausalLM;
use crate::error::Result;
use crate::forward::Ctx;
use crate::fused::{DecodePlan, PlanLayer, PlanLora, PlanProj};

impl Linear {
    /// This projection as a raw decode step applies it, or `None` when the step cannot: no
    /// packed copy of the base weight, an adapter merged into the weight (the packed copy is the
    /// base), or a DoRA adapter (its row scale stays on the tensor path).
    fn plan(&self, use_adapters: bool) -> Result<Option<PlanProj>> {
        let Some(packed) = &self.packed else {
            return Ok(None);
        };
        let merged = self.unmerged.is_some();
        if merged && use_adapters {
            return Ok(None);
        }
        let lora = match self.adapter.as_ref().filter(|_| use_adapters && !merged) {
            None => None,
            Some(ad) if ad.magnitude.is_some() => return Ok(None),
            Some(ad) => Some(PlanLora {
                a: values(ad.a.as_tensor())?,
                b: values(ad.b.as_tensor())?,
                rank: ad.a.dims()[0],
                scale: ad.scale as f32,
            }),
        };
        let bias = self.bias.as_ref().map(values).transpose()?;
        Ok(Some(PlanProj {
            packed: packed.clone(),
            bias,
            lora,
        }))
    }
}

impl CausalLM {
    /// The raw decode plan of this model with or without its adapters, or `None` when some
    /// layer cannot run raw (not CPU f32, a projection without packed weights, DoRA, merged
    /// adapters).
    fn decode_plan(&self, use_adapters: bool) -> Result<Option<DecodePlan>> {
        if !self.device.is_cpu() || self.dtype != DType::F32 {
            return Ok(None);
        }
        let mut layers = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let (a, m) = (&blk.attn, &blk.mlp);
            let projections = [&a.q, &a.k, &a.v, &a.o, &m.gate, &m.up, &m.down];
            let mut plans = Vec::with_capacity(projections.len());
            for p in projections {
                match p.plan(use_adapters)? {
                    Some(plan) => plans.push(plan),
                    None => return Ok(None),
                }
            }
            let [q, k, v, o, gate, up, down]: [PlanProj; 7] =
                plans.try_into().expect("seven projections");
            layers.push(PlanLayer {
                ln1: values(&blk.ln1)?,
                ln2: values(&blk.ln2)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let c = &self.config;
        Ok(Some(DecodePlan {
            layers,
            norm: values(&self.norm)?,
            eps: c.rms_norm_eps as f32,
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
        }))
    }

    /// The cache's plan for this pass, built on the cache's first raw step (`None`: this model
    /// or pass cannot decode raw; the tensor path runs instead).
    pub(super) fn cached_plan(
        &self,
        cache: &mut KvCache,
        c: &Ctx,
    ) -> Result<Option<Arc<DecodePlan>>> {
        if c.o.grad {
            return Ok(None);
        }
        let use_adapters = c.o.use_adapters;
        if let Some((with, plan)) = &cache.plan {
            if *with == use_adapters {
                return Ok(plan.clone());
            }
        }
        let plan = self.decode_plan(use_adapters)?.map(Arc::new);
        cache.plan = Some((use_adapters, plan.clone()));
        Ok(plan)
    }

    /// One decode step (`ids` `[B, 1]`) of every layer on raw buffers, appending to `cache`;
    /// `bias` `[B, 1, 1, L]` and `rope` are the step's mask and rotary tables. Returns the final
    /// hidden states `[B, 1, hidden]`.
    pub(super) fn decode_planned(
        &self,
        plan: &DecodePlan,
        ids: &Tensor,
        cache: &mut KvCache,
        bias: &Tensor,
        rope: &Rope,
        c: &Ctx,
    ) -> Result<Tensor> {
        let b = ids.dim(0)?;
        let mut x = values(&self.embed_ids(ids, c)?)?;
        let (cos, sin) = (values(rope.cos())?, values(rope.sin())?);
        let bias = values(bias)?;
        let dims = HeadDims {
            heads: plan.heads,
            kv_heads: plan.kv_heads,
            head_dim: plan.head_dim,
        };
        let capacity = cache.capacity;
        let layers = &mut cache.layers;
        // The step runs on a thread of the pool: its ~5 parallel products per layer are then
        // split among the pool's threads by work stealing, instead of each one parking this
        // thread on a futex and waking it again (about 150 such hand-offs per token).
        rayon::scope(|_| -> Result<()> {
            for (i, slot) in layers.iter_mut().enumerate() {
                plan.layer(i, &mut x, &cos, &sin, &mut |q, k, v| {
                    attend_cached(slot, capacity, q, k, v, &bias, dims)
                })?;
            }
            Ok(())
        })?;
        let h = plan.final_norm(&x);
        Ok(Tensor::from_vec(h, (b, 1, plan.hidden), &Device::Cpu)?)
    }
}
