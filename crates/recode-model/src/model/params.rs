//! The model's parameters by HF name: listing, making them trainable, packed inference copies,
//! and iteration over the projection modules.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Tensor, Var};

use super::block::Block;
use super::linear::Linear;
use super::{projection_path, CausalLM, PROJECTIONS};
use crate::error::{ModelError, Result};
use crate::packed::PackedWeight;

impl CausalLM {
    /// Every base parameter under its HF name (tied models have no `lm_head.weight`); a released
    /// dense weight is dequantised from its packed blocks.
    pub fn named_parameters(&self) -> Result<Vec<(String, Tensor)>> {
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
                out.push((format!("{p}.{path}.weight"), l.dense()?));
                if let Some(bias) = &l.bias {
                    out.push((format!("{p}.{path}.bias"), bias.clone()));
                }
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if let Some(l) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), l.dense()?));
        }
        Ok(out)
    }

    /// How many base parameter tensors [`Self::named_parameters`] lists (without dequantising).
    pub fn parameter_count(&self) -> usize {
        let per_layer: usize = self
            .blocks
            .first()
            .map(|blk| {
                PROJECTIONS
                    .into_iter()
                    .map(|n| 1 + usize::from(blk.projection(n).is_some_and(|l| l.bias.is_some())))
                    .sum()
            })
            .unwrap_or(0);
        1 + self.blocks.len() * (2 + per_layer) + 1 + usize::from(self.lm_head.is_some())
    }

    /// Drops the dense copy of every frozen projection that also has its packed GGUF blocks
    /// (QLoRA-style: the base stays quantised, ~4.5x smaller for Q4_1, and large products and
    /// gradients dequantise one weight at a time). The values are unchanged: the dense weights
    /// were dequantised from the same blocks. Returns the bytes freed.
    pub fn release_dense_base(&mut self) -> usize {
        let mut freed: usize = self
            .projections_mut()
            .map(|(_, _, l)| l.release_dense())
            .sum();
        if let Some(l) = self.lm_head.as_mut() {
            freed += l.release_dense();
        }
        freed
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
                    Some(p) => Err(ModelError::TensorShape {
                        name: name.to_string(),
                        actual: vec![p.rows(), p.cols()],
                        expected: vec![rows, cols],
                        file: None,
                    }),
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

    /// Drops the packed copies (every product then uses the dense weights, which are
    /// dequantised back where they had been released).
    pub fn clear_packed_weights(&mut self) -> Result<()> {
        self.embed_packed = None;
        for (_, _, l) in self.projections_mut() {
            l.materialise_dense()?;
            l.packed = None;
        }
        if let Some(l) = self.lm_head.as_mut() {
            l.materialise_dense()?;
            l.packed = None;
        }
        Ok(())
    }

    /// Whether packed weights are attached.
    pub fn has_packed_weights(&self) -> bool {
        self.embed_packed.is_some() || self.projections().any(|(_, _, l)| l.packed.is_some())
    }

    /// Makes every base parameter trainable (full fine-tuning) and returns the variables by name.
    /// Packed inference copies are dropped, since the dense weights will change.
    pub fn make_base_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        self.clear_packed_weights()?;
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
                let w = l.weight.as_mut().expect("dense after clear_packed_weights");
                var(format!("{p}.{path}.weight"), w)?;
                if let Some(b) = l.bias.as_mut() {
                    var(format!("{p}.{path}.bias"), b)?;
                }
            }
        }
        var("model.norm.weight".into(), &mut self.norm)?;
        if let Some(l) = self.lm_head.as_mut() {
            let w = l.weight.as_mut().expect("dense after clear_packed_weights");
            var("lm_head.weight".into(), w)?;
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
