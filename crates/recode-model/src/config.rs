//! Model hyper-parameters, read from a Hugging Face `config.json` or from GGUF metadata.

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::Value;

use crate::error::{read_json, ModelError, Result};

/// The decoder families the crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Arch {
    /// Llama, Llama 3, SmolLM2, DeepSeek-Coder (no attention bias).
    Llama,
    /// Qwen2 / Qwen2.5(-Coder): bias on q, k and v projections.
    Qwen2,
}

/// How RoPE frequencies are rescaled for long contexts (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (DeepSeek-Coder's `linear` scaling).
    Linear {
        /// The division factor.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// Overall factor.
        factor: f64,
        /// Low-frequency factor.
        low_freq_factor: f64,
        /// High-frequency factor.
        high_freq_factor: f64,
        /// Context length the base model was trained with.
        original_max_position_embeddings: f64,
    },
}

/// Hyper-parameters of a decoder-only transformer of the Llama or Qwen2 family.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// Architecture family.
    pub arch: Arch,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than the query heads).
    pub num_key_value_heads: usize,
    /// Dimension of one attention head.
    pub head_dim: usize,
    /// RoPE base θ.
    pub rope_theta: f64,
    /// RoPE rescaling.
    pub rope_scaling: RopeScaling,
    /// Epsilon of the RMS norms.
    pub rms_norm_eps: f64,
    /// Whether the output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q, k and v projections have a bias (Qwen2).
    pub attention_bias: bool,
    /// Maximum context length the model was trained with.
    pub max_position_embeddings: usize,
}

fn get_usize(v: &Value, key: &str, path: &Path) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| {
            ModelError::Config(format!(
                "{}: missing or non-integer field `{key}`",
                path.display()
            ))
        })
}

impl ModelConfig {
    /// Reads a Hugging Face `config.json` (model_type `llama`, `qwen2`, `mistral`-free Llama variants).
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let v = read_json(path)?;
        Self::from_hf_value(&v, path)
    }

    /// Builds the config from an already parsed `config.json` value; `path` is used in messages.
    pub fn from_hf_value(v: &Value, path: &Path) -> Result<Self> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = match model_type {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(ModelError::Config(format!(
                    "{}: unsupported model_type `{other}` (supported: llama, qwen2)",
                    path.display()
                )))
            }
        };
        let hidden_size = get_usize(v, "hidden_size", path)?;
        let num_attention_heads = get_usize(v, "num_attention_heads", path)?;
        let num_key_value_heads =
            get_usize(v, "num_key_value_heads", path).unwrap_or(num_attention_heads);
        let head_dim = v
            .get("head_dim")
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let rope_scaling = match v.get("rope_scaling") {
            None | Some(Value::Null) => RopeScaling::None,
            Some(rs) => parse_rope_scaling(rs, path)?,
        };
        let sliding = v
            .get("use_sliding_window")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if sliding {
            return Err(ModelError::Config(format!(
                "{}: use_sliding_window=true is not supported",
                path.display()
            )));
        }
        let cfg = Self {
            arch,
            vocab_size: get_usize(v, "vocab_size", path)?,
            hidden_size,
            intermediate_size: get_usize(v, "intermediate_size", path)?,
            num_hidden_layers: get_usize(v, "num_hidden_layers", path)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta: v
                .get("rope_theta")
                .and_then(Value::as_f64)
                .unwrap_or(10000.0),
            rope_scaling,
            rms_norm_eps: v
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            attention_bias: match arch {
                Arch::Qwen2 => true,
                Arch::Llama => v
                    .get("attention_bias")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            max_position_embeddings: get_usize(v, "max_position_embeddings", path).unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the config from GGUF metadata (`general.architecture` = `llama` or `qwen2`).
    /// `has_output` tells whether the file has a separate `output.weight` (untied embeddings).
    pub fn from_gguf(content: &gguf_file::Content, has_output: bool) -> Result<Self> {
        let md = &content.metadata;
        let arch_name = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| ModelError::Config("GGUF: missing general.architecture".into()))?;
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(ModelError::Config(format!(
                    "GGUF: unsupported architecture `{other}` (supported: llama, qwen2)"
                )))
            }
        };
        let int = |key: &str| -> Result<usize> {
            let full = format!("{arch_name}.{key}");
            let v = md
                .get(&full)
                .ok_or_else(|| ModelError::Config(format!("GGUF: missing metadata `{full}`")))?;
            v.to_u32()
                .map(|x| x as usize)
                .or_else(|_| v.to_u64().map(|x| x as usize))
                .map_err(|e| ModelError::Config(format!("GGUF: metadata `{full}`: {e}")))
        };
        let float = |key: &str, default: f64| -> f64 {
            md.get(&format!("{arch_name}.{key}"))
                .and_then(|v| v.to_f32().map(f64::from).ok().or_else(|| v.to_f64().ok()))
                .unwrap_or(default)
        };
        let hidden_size = int("embedding_length")?;
        let num_attention_heads = int("attention.head_count")?;
        let vocab_size = match md.get("tokenizer.ggml.tokens") {
            Some(v) => v
                .to_vec()
                .map(|t| t.len())
                .map_err(|e| ModelError::Config(format!("GGUF: tokenizer.ggml.tokens: {e}")))?,
            None => int("vocab_size")?,
        };
        let cfg = Self {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: int("feed_forward_length")?,
            num_hidden_layers: int("block_count")?,
            num_attention_heads,
            num_key_value_heads: int("attention.head_count_kv").unwrap_or(num_attention_heads),
            head_dim: int("attention.key_length").unwrap_or(hidden_size / num_attention_heads),
            rope_theta: float("rope.freq_base", 10000.0),
            rope_scaling: RopeScaling::None,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-6),
            tie_word_embeddings: !has_output,
            attention_bias: arch == Arch::Qwen2,
            max_position_embeddings: int("context_length").unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the divisibility constraints the attention code relies on.
    pub fn validate(&self) -> Result<()> {
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(ModelError::Config(format!(
                "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim == 0 {
            return Err(ModelError::Config(format!(
                "head_dim ({}) must be even",
                self.head_dim
            )));
        }
        Ok(())
    }

    /// RoPE inverse frequencies (length `head_dim / 2`), with the configured rescaling applied.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim as f64;
        let base: Vec<f64> = (0..self.head_dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d))
            .collect();
        match &self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => base
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let low_wavelen = old / low_freq_factor;
                    let high_wavelen = old / high_freq_factor;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect(),
        }
    }
}

fn parse_rope_scaling(rs: &Value, path: &Path) -> Result<RopeScaling> {
    let kind = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |k: &str| -> Result<f64> {
        rs.get(k).and_then(Value::as_f64).ok_or_else(|| {
            ModelError::Config(format!(
                "{}: rope_scaling.{k} missing or not a number",
                path.display()
            ))
        })
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: f("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: f("factor")?,
            low_freq_factor: f("low_freq_factor")?,
            high_freq_factor: f("high_freq_factor")?,
            original_max_position_embeddings: f("original_max_position_embeddings")?,
        }),
        other => Err(ModelError::Config(format!(
            "{}: unsupported rope_scaling type `{other}` (supported: linear, llama3)",
            path.display()
        ))),
    }
}
