//! Weight loading: HF safetensors (single file or sharded), GGUF (dequantised), HF hub download.
//! Every loader returns tensors under Hugging Face parameter names so one model builder serves all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, ModelConfig, GGUF_ROPE_FREQS};
use crate::error::{read_json, ModelError, Result};
use crate::packed::{unpermute_order, PackedWeight};

/// Tensors keyed by Hugging Face parameter name (`model.layers.0.self_attn.q_proj.weight`, ...).
pub type NamedTensors = HashMap<String, Tensor>;

/// Lists the safetensors files of a model directory: the shards named by
/// `model.safetensors.index.json`, else `model.safetensors`, else every `*.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v = read_json(&index)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::json_field(&index, "weight_map", "an object"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|f| f.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))? {
        let p = entry.map_err(|e| ModelError::io(dir, e))?.path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ModelError::NoWeightFiles {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// Loads every tensor of the given safetensors files, converted to `dtype`.
pub fn load_safetensors(files: &[PathBuf], dtype: DType, device: &Device) -> Result<NamedTensors> {
    let mut out = NamedTensors::new();
    for f in files {
        let ts = candle_core::safetensors::load(f, device).map_err(|source| {
            ModelError::Safetensors {
                path: f.clone(),
                source: Box::new(source),
            }
        })?;
        for (k, t) in ts {
            out.insert(k, t.to_dtype(dtype)?);
        }
    }
    Ok(out)
}

/// Maps a GGUF tensor name (`blk.3.attn_q.weight`) to its Hugging Face name.
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    match name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.split_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Undoes llama.cpp's q/k row permutation (interleaved RoPE layout back to HF's rotate-half layout).
fn unpermute_rows(t: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let head_dim = rows / n_head;
    let rest: usize = dims[1..].iter().product();
    let t = t
        .reshape((n_head, head_dim / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?;
    Ok(t)
}

/// An opened GGUF file: its metadata and its tensors dequantised under HF names.
pub struct GgufModel {
    /// Header and metadata of the file (tokenizer, chat template, hyper-parameters).
    pub content: gguf_file::Content,
    /// Hyper-parameters read from the metadata.
    pub config: ModelConfig,
    /// Dequantised weights under HF names.
    pub tensors: NamedTensors,
    /// Q4_1/Q8_0 matrices kept in their blocks under HF names (fast decoding; see `packed`).
    pub packed: HashMap<String, PackedWeight>,
}

/// Reads a GGUF file's header and metadata only (cheap; used for the tokenizer).
pub fn read_gguf_content(path: &Path) -> Result<gguf_file::Content> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    gguf_file::Content::read(&mut f).map_err(|source| ModelError::GgufFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Loads a GGUF file, dequantising every tensor to `dtype` and renaming it to HF conventions.
pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<GgufModel> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let content = gguf_file::Content::read(&mut f).map_err(|source| ModelError::GgufFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let has_output = content.tensor_infos.contains_key("output.weight");
    let mut config = ModelConfig::from_gguf(&content, has_output)?;
    let mut read = |name: &str| {
        content
            .tensor(&mut f, name, device)
            .map_err(|source| ModelError::GgufTensorRead {
                path: path.to_path_buf(),
                name: name.to_string(),
                source: Box::new(source),
            })
    };
    if content.tensor_infos.contains_key(GGUF_ROPE_FREQS) {
        let factors = read(GGUF_ROPE_FREQS)?
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        config = config.with_rope_freqs(&factors)?;
    }
    let mut tensors = NamedTensors::new();
    let mut packed = HashMap::new();
    let mut names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names.sort();
    for name in names {
        if name == GGUF_ROPE_FREQS {
            continue;
        }
        let Some(hf) = gguf_to_hf_name(&name) else {
            return Err(ModelError::GgufTensor {
                name,
                reason: "not a tensor of the Llama/Qwen2 decoder (refused rather than ignored)"
                    .into(),
            });
        };
        let q = read(&name)?;
        let mut t = q.dequantize(device)?;
        let mut heads = None;
        if config.arch == Arch::Llama {
            if hf.ends_with("q_proj.weight") || hf.ends_with("q_proj.bias") {
                heads = Some(config.num_attention_heads);
            } else if hf.ends_with("k_proj.weight") || hf.ends_with("k_proj.bias") {
                heads = Some(config.num_key_value_heads);
            }
        }
        if let Some(n) = heads {
            t = unpermute_rows(&t, n)?;
        }
        if device.is_cpu() && dtype == DType::F32 && hf.ends_with(".weight") && t.rank() == 2 {
            let order = heads.map(|n| unpermute_order(t.dim(0).unwrap_or(0), n));
            if let Some(p) = PackedWeight::from_qtensor(&q, order.as_deref())? {
                packed.insert(hf.clone(), p);
            }
        }
        tensors.insert(hf, t.to_dtype(dtype)?);
    }
    Ok(GgufModel {
        content,
        config,
        tensors,
        packed,
    })
}

/// Downloads the files needed to run a hub model (config, tokenizer, safetensors shards) into the
/// local Hugging Face cache and returns the snapshot directory. Needs network access to the hub.
pub fn hub_download(repo_id: &str, revision: Option<&str>) -> Result<PathBuf> {
    let err = |message: String| ModelError::Hub {
        repo: repo_id.to_string(),
        message,
    };
    let api = hf_hub::api::sync::Api::new().map_err(|e| err(e.to_string()))?;
    let repo = match revision {
        Some(r) => api.repo(hf_hub::Repo::with_revision(
            repo_id.to_string(),
            hf_hub::RepoType::Model,
            r.to_string(),
        )),
        None => api.model(repo_id.to_string()),
    };
    let config = repo.get("config.json").map_err(|e| err(e.to_string()))?;
    for optional in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        if let Err(e) = repo.get(optional) {
            tracing::warn!(file = optional, error = %e, "optional hub file not downloaded");
        }
    }
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let dir = index.parent().map(Path::to_path_buf).unwrap_or_default();
            for shard in safetensors_files(&dir)? {
                let name = shard
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| err(format!("bad shard name {}", shard.display())))?;
                repo.get(name).map_err(|e| err(e.to_string()))?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors")
                .map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(config.parent().map(Path::to_path_buf).unwrap_or_default())
}
