//! The model's adapter operations: adding, freezing for generation, removing, merging and
//! unmerging LoRA/DoRA adapters on its projections, and saving/loading them in PEFT's layout.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var, D};
use rand::{Rng, SeedableRng};

use super::linear::Linear;
use super::{projection_path, CausalLM};
use crate::adapter::{Adapter, AdapterConfig, AdapterKind};
use crate::error::{read_json, ModelError, Result};

/// PEFT's key prefix of a projection: `base_model.model.model.layers.{i}.self_attn.q_proj`.
fn peft_prefix(layer: usize, proj: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}",
        projection_path(proj)
    )
}

impl CausalLM {
    /// Adds fresh adapters (A Kaiming-uniform from `seed`, B zero, DoRA magnitude = row norms of W)
    /// to the configured projections of every layer, replacing any existing ones.
    pub fn add_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<()> {
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let scale = cfg.scale();
        let (dev, dt) = (self.device.clone(), self.dtype);
        for (_, name, lin) in self.projections_mut() {
            if !cfg.target_modules.iter().any(|t| t == name) {
                lin.adapter = None;
                continue;
            }
            if lin.unmerged.is_some() {
                return Err(ModelError::AdaptersMerged);
            }
            let (out, inp) = (lin.out_features(), lin.in_features());
            let bound = 1.0 / (inp as f64).sqrt();
            let av: Vec<f64> = (0..cfg.r * inp)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let a = Tensor::from_vec(av, (cfg.r, inp), &dev)?.to_dtype(dt)?;
            let b = Tensor::zeros((out, cfg.r), dt, &dev)?;
            let magnitude = match cfg.kind {
                AdapterKind::Lora => None,
                AdapterKind::Dora => {
                    let w = lin.dense()?.detach();
                    Some(Var::from_tensor(&w.sqr()?.sum(D::Minus1)?.sqrt()?)?)
                }
            };
            lin.adapter = Some(Adapter {
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
                magnitude,
                scale,
                dropout: cfg.dropout,
                detach_norm: true,
                frozen_scale: None,
            });
        }
        Ok(())
    }

    /// A copy of the model for inference while its weights stay fixed (one generation call):
    /// each unmerged DoRA adapter gets its row scale `m / ‖W + scale·B·A‖` computed once, instead
    /// of rebuilding the `[out, in]` matrix in every decode step. The copy shares the weights, so
    /// it is stale once they change; without DoRA adapters it is the model itself.
    pub fn for_generation(&self) -> Result<std::borrow::Cow<'_, CausalLM>> {
        let dora = |lin: &Linear| {
            lin.unmerged.is_none() && lin.adapter.as_ref().is_some_and(|a| a.magnitude.is_some())
        };
        if !self.projections().any(|(_, _, lin)| dora(lin)) {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let mut copy = self.clone();
        for (_, _, lin) in copy.projections_mut() {
            if !dora(lin) {
                continue;
            }
            let w = lin.dense()?;
            if let Some(ad) = lin.adapter.as_mut() {
                ad.frozen_scale = ad.row_scale(&w)?;
            }
        }
        Ok(std::borrow::Cow::Owned(copy))
    }

    /// Removes every adapter (merged weights are restored first).
    pub fn remove_adapters(&mut self) -> Result<()> {
        self.unmerge_adapters()?;
        for (_, _, lin) in self.projections_mut() {
            lin.adapter = None;
        }
        Ok(())
    }

    /// Sets whether DoRA treats its weight norm as a constant in backward (default: true, as PEFT).
    pub fn set_dora_detach_norm(&mut self, detach: bool) {
        for (_, _, lin) in self.projections_mut() {
            if let Some(a) = lin.adapter.as_mut() {
                a.detach_norm = detach;
            }
        }
    }

    /// The adapters' trainable variables under PEFT names (without the `.default` adapter name).
    pub fn adapter_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, name, lin) in self.projections() {
            if let Some(ad) = &lin.adapter {
                let p = peft_prefix(i, name);
                out.push((format!("{p}.lora_A.weight"), ad.a.clone()));
                out.push((format!("{p}.lora_B.weight"), ad.b.clone()));
                if let Some(m) = &ad.magnitude {
                    out.push((format!("{p}.lora_magnitude_vector"), m.clone()));
                }
            }
        }
        out
    }

    /// Whether the model has at least one adapter.
    pub fn has_adapters(&self) -> bool {
        self.projections().any(|(_, _, l)| l.adapter.is_some())
    }

    /// Whether any adapter is DoRA (has a magnitude vector).
    pub fn has_dora(&self) -> bool {
        self.projections()
            .any(|(_, _, l)| l.adapter.as_ref().is_some_and(|a| a.magnitude.is_some()))
    }

    /// Folds every adapter into its projection weight (faster inference); reversible.
    pub fn merge_adapters(&mut self) -> Result<()> {
        for (_, _, lin) in self.projections_mut() {
            if let (Some(ad), None) = (&lin.adapter, &lin.unmerged) {
                let base = lin.dense()?.detach();
                lin.weight = Some(ad.merged_weight(&base)?);
                lin.unmerged = Some(base);
            }
        }
        Ok(())
    }

    /// Restores the base weights saved by [`CausalLM::merge_adapters`].
    pub fn unmerge_adapters(&mut self) -> Result<()> {
        for (_, _, lin) in self.projections_mut() {
            if let Some(base) = lin.unmerged.take() {
                lin.weight = Some(base);
                // A base that was only packed before the merge goes back to that.
                lin.release_dense();
            }
        }
        Ok(())
    }

    /// Writes `adapter_model.safetensors` (f32, PEFT key names) and `adapter_config.json` to `dir`.
    pub fn save_adapters(&self, dir: &Path, cfg: &AdapterConfig, base_model: &str) -> Result<()> {
        let vars = self.adapter_vars();
        if vars.is_empty() {
            return Err(ModelError::NoAdapters);
        }
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let mut map = HashMap::new();
        for (k, v) in vars {
            map.insert(k, v.as_tensor().detach().to_dtype(DType::F32)?);
        }
        let path = dir.join("adapter_model.safetensors");
        candle_core::safetensors::save(&map, &path).map_err(|source| ModelError::Safetensors {
            path,
            source: Box::new(source),
        })?;
        let cpath = dir.join("adapter_config.json");
        let text =
            serde_json::to_string_pretty(&cfg.to_peft_json(base_model)).map_err(|source| {
                ModelError::Json {
                    path: cpath.clone(),
                    source,
                }
            })?;
        std::fs::write(&cpath, text).map_err(|e| ModelError::io(&cpath, e))?;
        Ok(())
    }

    /// Loads a PEFT LoRA/DoRA adapter directory, replacing the current adapters; returns its config.
    pub fn load_adapters(&mut self, dir: &Path) -> Result<AdapterConfig> {
        let cpath = dir.join("adapter_config.json");
        let cfg = AdapterConfig::from_peft_json(&read_json(&cpath)?, &cpath)?;
        self.add_adapters(&cfg, 0)?;
        let wpath = dir.join("adapter_model.safetensors");
        let device = self.device().clone();
        let dtype = self.dtype();
        let mut tensors = candle_core::safetensors::load(&wpath, &device).map_err(|source| {
            ModelError::Safetensors {
                path: wpath.clone(),
                source: Box::new(source),
            }
        })?;
        for (name, var) in self.adapter_vars() {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| ModelError::MissingTensor {
                    name: name.clone(),
                    file: Some(wpath.clone()),
                })?;
            if t.dims() != var.dims() {
                return Err(ModelError::TensorShape {
                    name,
                    actual: t.dims().to_vec(),
                    expected: var.dims().to_vec(),
                    file: Some(wpath),
                });
            }
            var.set(&t.to_dtype(dtype)?)?;
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(ModelError::UnexpectedTensor {
                name: extra.clone(),
                file: wpath,
                hint: "not a q/k/v/o/gate/up/down LoRA tensor of this model",
            });
        }
        Ok(cfg)
    }
}
