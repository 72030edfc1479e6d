//! LoRA and DoRA adapters on the projection modules, with merge/unmerge, enable/disable (through
//! [`ForwardOpts::use_adapters`](crate::ForwardOpts::use_adapters)) and save/load in PEFT's
//! layout (`adapter_model.safetensors` + `adapter_config.json`), so adapters trained here load in
//! PEFT and vice versa.

use std::path::Path;

use candle_core::{Tensor, Var, D};

use crate::error::{ModelError, Result};
use crate::forward::{is_cpu_f32_inference, matmul_t_ctx, rows_of, Ctx, PACKED_MAX_ROWS};
use crate::lean::read;

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

    /// Checks rank, dropout and target modules.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |field, value: String, expected: String| ModelError::AdapterSetting {
            field,
            value,
            expected,
        };
        if self.r == 0 {
            return Err(bad("r", "0".into(), "> 0".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(bad(
                "dropout",
                self.dropout.to_string(),
                "a value in [0, 1)".into(),
            ));
        }
        for m in &self.target_modules {
            if !PROJECTIONS.contains(&m.as_str()) {
                return Err(bad(
                    "target_modules",
                    format!("`{m}`"),
                    format!("names among {}", PROJECTIONS.join(", ")),
                ));
            }
        }
        if self.target_modules.is_empty() {
            return Err(bad(
                "target_modules",
                "[]".into(),
                "at least one module".into(),
            ));
        }
        Ok(())
    }

    /// The config in PEFT's `adapter_config.json` form, for a base model named `base_model`.
    pub(crate) fn to_peft_json(&self, base_model: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "use_dora": self.kind == AdapterKind::Dora,
            "use_rslora": self.use_rslora,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
        })
    }

    /// Reads PEFT's `adapter_config.json` value `v` (read from `path`, named in errors): a LoRA
    /// adapter, with or without DoRA.
    pub(crate) fn from_peft_json(v: &serde_json::Value, path: &Path) -> Result<Self> {
        if let Some(t) = v.get("peft_type").and_then(|t| t.as_str()) {
            if t != "LORA" {
                return Err(ModelError::unsupported(
                    format!("{}: peft_type", path.display()),
                    t,
                    "LORA (with or without DoRA)",
                ));
            }
        }
        let r = v
            .get("r")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| ModelError::json_field(path, "r", "an integer"))?
            as usize;
        let alpha = v
            .get("lora_alpha")
            .and_then(|x| x.as_f64())
            .ok_or_else(|| ModelError::json_field(path, "lora_alpha", "a number"))?;
        let target_modules: Vec<String> = match v.get("target_modules") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => {
                return Err(ModelError::json_field(
                    path,
                    "target_modules",
                    "a list of names",
                ))
            }
        };
        Ok(Self {
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
        })
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
    /// [`CausalLM::for_generation`](crate::CausalLM::for_generation)); `None` recomputes it in every forward.
    pub(crate) frozen_scale: Option<Tensor>,
}

impl Adapter {
    /// Adds the adapter's contribution to `y = x W^T` (bias excluded); `w` gives the base
    /// weight, asked for only by DoRA (its weight norm, or the base product under dropout).
    pub(crate) fn apply(
        &self,
        x: &Tensor,
        w: &dyn Fn() -> Result<Tensor>,
        y: &Tensor,
        c: &Ctx,
    ) -> Result<Tensor> {
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
                let norm = self.weight_norm(&w()?, &a, &b)?;
                let norm = if self.detach_norm {
                    norm.detach()
                } else {
                    norm
                };
                (c.param(m.as_tensor()) / norm)?
            }
        };
        let base = if dropped {
            matmul_t_ctx(&xd, &w()?, c)?
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
    pub(crate) fn merged_weight(&self, w: &Tensor) -> Result<Tensor> {
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
    pub(crate) fn row_scale(&self, w: &Tensor) -> Result<Option<Tensor>> {
        let Some(m) = &self.magnitude else {
            return Ok(None);
        };
        let (a, b) = (self.a.as_tensor().detach(), self.b.as_tensor().detach());
        let norm = self.weight_norm(&w.detach(), &a, &b)?;
        Ok(Some((m.as_tensor().detach() / norm)?))
    }
}
