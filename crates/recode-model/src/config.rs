//! Model hyper-parameters, read from a Hugging Face `config.json` or from GGUF metadata.

use std::collections::HashMap;
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
    /// One divisor per rotary frequency (`inv_freq[i] / factors[i]`): llama.cpp's
    /// `rope_freqs.weight` tensor, the form Llama 3.1-style scaling takes in GGUF files, with any
    /// linear factor of the metadata folded in.
    FreqFactors {
        /// `head_dim / 2` positive divisors.
        factors: Vec<f64>,
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
        .ok_or_else(|| ModelError::json_field(path, key, "an integer"))
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
                return Err(ModelError::unsupported(
                    format!("{}: model_type", path.display()),
                    other,
                    "llama, qwen2",
                ))
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
            return Err(ModelError::unsupported(
                format!("{}: use_sliding_window", path.display()),
                "true",
                "false",
            ));
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
            .ok_or_else(|| ModelError::GgufMissingKey {
                key: "general.architecture".into(),
            })?;
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(ModelError::unsupported(
                    "general.architecture",
                    other,
                    "llama, qwen2",
                ))
            }
        };
        let int = |key: &str| -> Result<usize> {
            let full = format!("{arch_name}.{key}");
            let v = md
                .get(&full)
                .ok_or_else(|| ModelError::GgufMissingKey { key: full.clone() })?;
            v.to_u32()
                .map(|x| x as usize)
                .or_else(|_| v.to_u64().map(|x| x as usize))
                .map_err(|e| ModelError::gguf_metadata(&full, e))
        };
        let float = |key: &str, default: f64| -> f64 {
            md.get(&format!("{arch_name}.{key}"))
                .and_then(gguf_number)
                .unwrap_or(default)
        };
        let hidden_size = int("embedding_length")?;
        let num_attention_heads = int("attention.head_count")?;
        let vocab_size = match md.get("tokenizer.ggml.tokens") {
            Some(v) => v
                .to_vec()
                .map(|t| t.len())
                .map_err(|e| ModelError::gguf_metadata("tokenizer.ggml.tokens", e))?,
            None => int("vocab_size")?,
        };
        let head_dim = int("attention.key_length").unwrap_or(hidden_size / num_attention_heads);
        let (rope_theta, rope_scaling) = gguf_rope(md, &arch_name, head_dim)?;
        let cfg = Self {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: int("feed_forward_length")?,
            num_hidden_layers: int("block_count")?,
            num_attention_heads,
            num_key_value_heads: int("attention.head_count_kv").unwrap_or(num_attention_heads),
            head_dim,
            rope_theta,
            rope_scaling,
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
            return Err(ModelError::HeadCounts {
                heads: self.num_attention_heads,
                kv_heads: self.num_key_value_heads,
            });
        }
        if !self.head_dim.is_multiple_of(2) || self.head_dim == 0 {
            return Err(ModelError::HeadDim {
                head_dim: self.head_dim,
            });
        }
        if let RopeScaling::FreqFactors { factors } = &self.rope_scaling {
            if factors.len() != self.head_dim / 2 {
                return Err(ModelError::RopeFactors {
                    factors: factors.len(),
                    head_dim: self.head_dim,
                });
            }
        }
        Ok(())
    }

    /// Applies llama.cpp's `rope_freqs.weight` tensor: ggml's rope divides each rotation angle
    /// by its frequency's factor, i.e. `inv_freq[i] / factors[i]`, and then applies the linear
    /// scale of the metadata, which is folded into the factors here.
    pub fn with_rope_freqs(mut self, factors: &[f32]) -> Result<Self> {
        let half = self.head_dim / 2;
        let bad = |reason: String| ModelError::GgufTensor {
            name: GGUF_ROPE_FREQS.into(),
            reason,
        };
        if factors.len() != half {
            return Err(bad(format!(
                "{} values, expected head_dim / 2 = {half}",
                factors.len()
            )));
        }
        if let Some(x) = factors.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(bad(format!("factor {x} is not a positive number")));
        }
        let linear = match &self.rope_scaling {
            RopeScaling::None => 1.0,
            RopeScaling::Linear { factor } => *factor,
            other => return Err(bad(format!("cannot be combined with {other:?}"))),
        };
        self.rope_scaling = RopeScaling::FreqFactors {
            factors: factors.iter().map(|&x| f64::from(x) * linear).collect(),
        };
        Ok(self)
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
            RopeScaling::FreqFactors { factors } => {
                base.iter().zip(factors).map(|(f, d)| f / d).collect()
            }
        }
    }
}

/// GGUF name of llama.cpp's per-frequency RoPE divisors (see [`ModelConfig::with_rope_freqs`]).
pub const GGUF_ROPE_FREQS: &str = "rope_freqs.weight";

/// The `<arch>.rope.*` metadata keys understood; any other key under `<arch>.rope.` is refused.
const GGUF_ROPE_KEYS: [&str; 8] = [
    "freq_base",
    "dimension_count",
    "scale_linear",
    "scaling.type",
    "scaling.factor",
    "scaling.original_context_length",
    "scaling.finetuned",
    "scaling.attn_factor",
];

/// A numeric metadata value as f64 (any integer or float type).
fn gguf_number(v: &gguf_file::Value) -> Option<f64> {
    use gguf_file::Value as V;
    Some(match *v {
        V::U8(x) => x.into(),
        V::I8(x) => x.into(),
        V::U16(x) => x.into(),
        V::I16(x) => x.into(),
        V::U32(x) => x.into(),
        V::I32(x) => x.into(),
        V::U64(x) => x as f64,
        V::I64(x) => x as f64,
        V::F32(x) => x.into(),
        V::F64(x) => x,
        _ => return None,
    })
}

/// A metadata value as text for error messages: strings as written, numbers, booleans, arrays
/// by their length.
pub(crate) fn gguf_value_text(v: &gguf_file::Value) -> String {
    match v {
        gguf_file::Value::String(s) => s.clone(),
        gguf_file::Value::Bool(b) => b.to_string(),
        gguf_file::Value::Array(a) => format!("<array of {} values>", a.len()),
        gguf_file::Value::F32(x) => x.to_string(),
        other => gguf_number(other).map_or_else(String::new, |x| x.to_string()),
    }
}

/// RoPE base and scaling from `<arch>.rope.*` GGUF metadata, with llama.cpp's semantics:
/// `rope.scaling.type` defaults to `linear`, whose factor is `rope.scaling.factor` (else the older
/// `rope.scale_linear`; absent or 0 means 1), and `none` ignores any factor. Other scaling types
/// (YaRN, LongRoPE, ...), an attention factor other than 1, a rotary dimension other than the
/// head dimension and unknown `rope.*` keys are refused. `scaling.original_context_length` and
/// `scaling.finetuned` only matter to YaRN and are informational otherwise.
fn gguf_rope(
    md: &HashMap<String, gguf_file::Value>,
    arch: &str,
    head_dim: usize,
) -> Result<(f64, RopeScaling)> {
    let prefix = format!("{arch}.rope.");
    let mut present: Vec<(&String, &gguf_file::Value)> =
        md.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
    present.sort_by_key(|(k, _)| *k);
    for (key, v) in &present {
        if !GGUF_ROPE_KEYS.contains(&&key[prefix.len()..]) {
            let known: Vec<String> = GGUF_ROPE_KEYS
                .iter()
                .map(|k| format!("{prefix}{k}"))
                .collect();
            return Err(ModelError::unsupported(
                key.as_str(),
                gguf_value_text(v),
                format!("the keys {}", known.join(", ")),
            ));
        }
    }
    let entry = |k: &str| {
        let key = format!("{prefix}{k}");
        md.get(&key).map(|v| (key, v))
    };
    // (key, value, value as written) of a numeric key.
    let num = |k: &str| -> Result<Option<(String, f64, String)>> {
        match entry(k) {
            None => Ok(None),
            Some((key, v)) => match gguf_number(v) {
                Some(x) => Ok(Some((key, x, gguf_value_text(v)))),
                None => Err(ModelError::unsupported(key, gguf_value_text(v), "a number")),
            },
        }
    };
    let theta = num("freq_base")?.map_or(10000.0, |(_, x, _)| x);
    if let Some((key, n, text)) = num("dimension_count")? {
        if n != head_dim as f64 {
            return Err(ModelError::unsupported(
                key,
                text,
                format!("{head_dim}, the head dimension (partial rotary embeddings are not implemented)"),
            ));
        }
    }
    if let Some((key, a, text)) = num("scaling.attn_factor")? {
        if a != 1.0 {
            return Err(ModelError::unsupported(
                key,
                text,
                "1 (scaled rotary magnitudes are not implemented)",
            ));
        }
    }
    let kind = match entry("scaling.type") {
        None => "linear".to_string(),
        Some((key, v)) => v
            .to_string()
            .map_err(|_| ModelError::unsupported(key, gguf_value_text(v), "a string"))?
            .clone(),
    };
    let factor = match num("scaling.factor")? {
        Some(f) => Some(f),
        None => num("scale_linear")?,
    };
    let scaling = match (kind.as_str(), factor) {
        ("none", _) | ("linear", None) => RopeScaling::None,
        ("linear", Some((_, f, _))) if f == 0.0 || f == 1.0 => RopeScaling::None,
        ("linear", Some((_, f, _))) if f.is_finite() && f > 0.0 => {
            RopeScaling::Linear { factor: f }
        }
        ("linear", Some((key, _, text))) => {
            return Err(ModelError::unsupported(key, text, "a positive factor"))
        }
        (other, _) => {
            return Err(ModelError::unsupported(
                format!("{prefix}scaling.type"),
                other,
                "none, linear (Llama 3.1-style scaling comes as the rope_freqs.weight tensor)",
            ))
        }
    };
    Ok((theta, scaling))
}

fn parse_rope_scaling(rs: &Value, path: &Path) -> Result<RopeScaling> {
    let kind = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |k: &str| -> Result<f64> {
        rs.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| ModelError::json_field(path, format!("rope_scaling.{k}"), "a number"))
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
        other => Err(ModelError::unsupported(
            format!("{}: rope_scaling.rope_type", path.display()),
            other,
            "default, linear, llama3",
        )),
    }
}
