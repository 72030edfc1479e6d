//! LoRA and DoRA adapters on the projection modules, with merge/unmerge, enable/disable (through
//! [`ForwardOpts::use_adapters`](crate::ForwardOpts::use_adapters)) and save/load in PEFT's
//! layout (`adapter_model.safetensors` + `adapter_config.json`), so adapters trained here load in
//! PEFT and vice versa.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var, D};
use rand::{Rng, SeedableRng};

use crate::error::{read_json, ModelError, Result};
use crate::lean::read;
use crate::model::{
    is_cpu_f32_inference, matmul_t_ctx, projection_path, rows_of, CausalLM, Ctx, PACKED_MAX_ROWS,
    PROJECTIONS,
};

/// LoRA (low-rank update) or DoRA (weight-decomposed: magnitude vector times normalised direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdapterKind {
    /// `W + (α/r)·B·A`.
    Lora,
    /// `m ⊙ (W + (α/r)·B·A) / ‖W + (α/r)·B·A‖_row`.
    Dora,
}

/// Hyper-parameters of the adapters added to a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterConfig {
    /// LoRA or DoRA.
    pub kind: AdapterKind,
    /// Rank r.
    pub r: usize,
    /// Scaling numerator α (scale = α/r, or α/√r with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapter input during training.
    pub dropout: f32,
    /// Projections to adapt: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub target_modules: Vec<String>,
    /// Rank-stabilised scaling α/√r.
    pub use_rslora: bool,
}

impl AdapterConfig {
    /// The scale applied to `B·A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(ModelError::Adapter("rank r must be > 0".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Adapter(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        for m in &self.target_modules {
            if !PROJECTIONS.contains(&m.as_str()) {
                return Err(ModelError::Adapter(format!(
                    "unknown target module `{m}` (known: {})",
                    PROJECTIONS.join(", ")
                )));
            }
        }
        if self.target_modules.is_empty() {
            return Err(ModelError::Adapter("no target modules".into()));
        }
        Ok(())
    }
}

/// The trainable tensors of one adapted projection.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// `[r, in]`, Kaiming-uniform initialised.
    pub a: Var,
    /// `[out, r]`, zero initialised (so a fresh adapter is the identity).
    pub b: Var,
    /// DoRA magnitude `[out]` (row norms of the initial weight); `None` for LoRA.
    pub magnitude: Option<Var>,
    /// Scale applied to `B·A`.
    pub scale: f64,
    /// Input dropout in training.
    pub dropout: f32,
    /// Treat the DoRA weight norm as a constant in backward (PEFT's behaviour, DoRA paper §4.3).
    pub detach_norm: bool,
    /// DoRA's row scale `m / ‖W + scale·B·A‖` computed once for inference (see
    /// [`CausalLM::for_generation`]); `None` recomputes it in every forward.
    pub(crate) frozen_scale: Option<Tensor>,
}

impl Adapter {
    /// Adds the adapter's contribution to `y = x W^T` (bias excluded).
    pub(crate) fn apply(&self, x: &Tensor, w: &Tensor, y: &Tensor, c: &Ctx) -> Result<Tensor> {
        let a = c.param(self.a.as_tensor());
        let b = c.param(self.b.as_tensor());
        let dropped = c.o.train && self.dropout > 0.0;
        let frozen = self.frozen_scale.as_ref().filter(|_| !c.o.grad);
        if (self.magnitude.is_none() || frozen.is_some())
            && !dropped
            && is_cpu_f32_inference(x, c)
            && rows_of(x) <= PACKED_MAX_ROWS
        {
            return self.add_lora_rows(x, &a, &b, y, frozen);
        }
        let xd = if !dropped {
            x.clone()
        } else if c.lean {
            // Replayable mask (activation checkpointing recomputes this layer).
            let m =
                crate::lean::dropout_mask(c.seed, x.dims(), self.dropout, x.dtype(), x.device())?;
            (x * m)?
        } else {
            candle_nn::ops::dropout(x, self.dropout)?
        };
        let lora = (matmul_t_ctx(&matmul_t_ctx(&xd, &a, c)?, &b, c)? * self.scale)?;
        let Some(m) = &self.magnitude else {
            return Ok((y + lora)?);
        };
        let s = match frozen {
            Some(s) => s.clone(),
            None => {
                let norm = self.weight_norm(w, &a, &b)?;
                let norm = if self.detach_norm {
                    norm.detach()
                } else {
                    norm
                };
                (c.param(m.as_tensor()) / norm)?
            }
        };
        let base = if dropped {
            matmul_t_ctx(&xd, w, c)?
        } else {
            y.clone()
        };
        let out = (y + base.broadcast_mul(&(&s - 1.0)?)?)?;
        Ok((out + lora.broadcast_mul(&s)?)?)
    }

    /// The adapter on a few rows (decode steps, CPU f32, no graph) with
    /// [`crate::decode::lora_rows`]; DoRA multiplies each output by its frozen `row_scale`.
    fn add_lora_rows(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        y: &Tensor,
        row_scale: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut out = y.flatten_all()?.to_vec1::<f32>()?;
        let rank = a.dim(0)?;
        read::<f32, _>(x, |xs| {
            read::<f32, _>(a, |as_| {
                read::<f32, _>(b, |bs| {
                    crate::decode::lora_rows(xs, as_, bs, rank, self.scale as f32, &mut out)
                })
            })
        })???;
        if let Some(s) = row_scale {
            read::<f32, _>(s, |ss| {
                for row in out.chunks_exact_mut(ss.len()) {
                    row.iter_mut().zip(ss).for_each(|(o, s)| *o *= s);
                }
            })?;
        }
        Ok(Tensor::from_vec(out, y.shape(), y.device())?)
    }

    /// Row norms `‖W + scale·B·A‖` over the input dimension: `[out]`.
    fn weight_norm(&self, w: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let full = (w + (b.matmul(a)? * self.scale)?)?;
        Ok(full.sqr()?.sum(D::Minus1)?.sqrt()?)
    }

    /// The adapted weight `W'` (what merging writes into the projection).
    fn merged_weight(&self, w: &Tensor) -> Result<Tensor> {
        let a = self.a.as_tensor().detach();
        let b = self.b.as_tensor().detach();
        let full = (w + (b.matmul(&a)? * self.scale)?)?;
        match self.row_scale(w)? {
            None => Ok(full),
            Some(s) => Ok(full.broadcast_mul(&s.unsqueeze(1)?)?),
        }
    }

    /// DoRA's row scale `m / ‖W + scale·B·A‖` `[out]` for base weight `w`, detached from the
    /// graph; `None` for LoRA.
    fn row_scale(&self, w: &Tensor) -> Result<Option<Tensor>> {
        let Some(m) = &self.magnitude else {
            return Ok(None);
        };
        let (a, b) = (self.a.as_tensor().detach(), self.b.as_tensor().detach());
        let norm = self.weight_norm(&w.detach(), &a, &b)?;
        Ok(Some((m.as_tensor().detach() / norm)?))
    }
}

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
        for (_, name, lin) in self.projections_mut() {
            if !cfg.target_modules.iter().any(|t| t == name) {
                lin.adapter = None;
                continue;
            }
            if lin.unmerged.is_some() {
                return Err(ModelError::Adapter(
                    "unmerge the current adapters before adding new ones".into(),
                ));
            }
            let (out, inp) = (lin.out_features(), lin.in_features());
            let dev = lin.weight.device().clone();
            let dt = lin.weight.dtype();
            let bound = 1.0 / (inp as f64).sqrt();
            let av: Vec<f64> = (0..cfg.r * inp)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let a = Tensor::from_vec(av, (cfg.r, inp), &dev)?.to_dtype(dt)?;
            let b = Tensor::zeros((out, cfg.r), dt, &dev)?;
            let magnitude = match cfg.kind {
                AdapterKind::Lora => None,
                AdapterKind::Dora => {
                    let w = lin.weight.detach();
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
        let dora = |lin: &crate::model::Linear| {
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
            if let Some(ad) = lin.adapter.as_mut() {
                ad.frozen_scale = ad.row_scale(&lin.weight)?;
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
                let base = lin.weight.detach();
                lin.weight = ad.merged_weight(&base)?;
                lin.unmerged = Some(base);
            }
        }
        Ok(())
    }

    /// Restores the base weights saved by [`CausalLM::merge_adapters`].
    pub fn unmerge_adapters(&mut self) -> Result<()> {
        for (_, _, lin) in self.projections_mut() {
            if let Some(base) = lin.unmerged.take() {
                lin.weight = base;
            }
        }
        Ok(())
    }

    /// Writes `adapter_model.safetensors` (f32, PEFT key names) and `adapter_config.json` to `dir`.
    pub fn save_adapters(&self, dir: &Path, cfg: &AdapterConfig, base_model: &str) -> Result<()> {
        let vars = self.adapter_vars();
        if vars.is_empty() {
            return Err(ModelError::Adapter(
                "the model has no adapters to save".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let mut map = HashMap::new();
        for (k, v) in vars {
            map.insert(k, v.as_tensor().detach().to_dtype(DType::F32)?);
        }
        let path = dir.join("adapter_model.safetensors");
        candle_core::safetensors::save(&map, &path)
            .map_err(|e| ModelError::Adapter(format!("{}: {e}", path.display())))?;
        let json = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": cfg.r,
            "lora_alpha": cfg.alpha,
            "lora_dropout": cfg.dropout,
            "target_modules": cfg.target_modules,
            "use_dora": cfg.kind == AdapterKind::Dora,
            "use_rslora": cfg.use_rslora,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
        });
        let cpath = dir.join("adapter_config.json");
        let text = serde_json::to_string_pretty(&json).map_err(|source| ModelError::Json {
            path: cpath.clone(),
            source,
        })?;
        std::fs::write(&cpath, text).map_err(|e| ModelError::io(&cpath, e))?;
        Ok(())
    }

    /// Loads a PEFT LoRA/DoRA adapter directory, replacing the current adapters; returns its config.
    pub fn load_adapters(&mut self, dir: &Path) -> Result<AdapterConfig> {
        let cpath = dir.join("adapter_config.json");
        let v = read_json(&cpath)?;
        let field = |k: &str| {
            v.get(k).ok_or_else(|| {
                ModelError::Adapter(format!("{}: missing field `{k}`", cpath.display()))
            })
        };
        if let Some(t) = v.get("peft_type").and_then(|t| t.as_str()) {
            if t != "LORA" {
                return Err(ModelError::Adapter(format!(
                    "{}: peft_type `{t}` is not supported (only LORA, with or without DoRA)",
                    cpath.display()
                )));
            }
        }
        let r = field("r")?.as_u64().ok_or_else(|| {
            ModelError::Adapter(format!("{}: `r` is not an integer", cpath.display()))
        })? as usize;
        let alpha = field("lora_alpha")?.as_f64().ok_or_else(|| {
            ModelError::Adapter(format!("{}: `lora_alpha` is not a number", cpath.display()))
        })?;
        let target_modules: Vec<String> = match field("target_modules")? {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            other => {
                return Err(ModelError::Adapter(format!(
                    "{}: `target_modules` must be a list of names, got {other}",
                    cpath.display()
                )))
            }
        };
        let cfg = AdapterConfig {
            kind: if v.get("use_dora").and_then(|x| x.as_bool()).unwrap_or(false) {
                AdapterKind::Dora
            } else {
                AdapterKind::Lora
            },
            r,
            alpha,
            dropout: v
                .get("lora_dropout")
                .and_then(|x| x.as_f64())
                .unwrap_or(0.0) as f32,
            target_modules,
            use_rslora: v
                .get("use_rslora")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        };
        self.add_adapters(&cfg, 0)?;
        let wpath = dir.join("adapter_model.safetensors");
        let device = self.device().clone();
        let dtype = self.dtype();
        let mut tensors = candle_core::safetensors::load(&wpath, &device)
            .map_err(|e| ModelError::Adapter(format!("{}: {e}", wpath.display())))?;
        for (name, var) in self.adapter_vars() {
            let t = tensors.remove(&name).ok_or_else(|| {
                ModelError::Adapter(format!("{}: missing tensor `{name}`", wpath.display()))
            })?;
            if t.dims() != var.dims() {
                return Err(ModelError::Adapter(format!(
                    "{}: tensor `{name}` has shape {:?}, expected {:?}",
                    wpath.display(),
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(dtype)?)?;
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(ModelError::Adapter(format!(
                "{}: unexpected tensor `{extra}` (not a q/k/v/o/gate/up/down LoRA tensor of this model)",
                wpath.display()
            )));
        }
        Ok(cfg)
    }
}
