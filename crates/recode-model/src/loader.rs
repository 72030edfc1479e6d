//! One entry point to open a model from a GGUF file, a local HF directory or a hub id.

use std::path::Path;

use candle_core::{DType, Device};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::model::CausalLM;
use crate::tokenizer::Tokenizer;
use crate::weights::{hub_download, load_gguf, load_safetensors, safetensors_files};

/// A loaded model with its tokenizer.
pub struct LoadedModel {
    /// The network.
    pub model: CausalLM,
    /// Its tokenizer, special tokens and chat template.
    pub tokenizer: Tokenizer,
    /// What was loaded (path or hub id), for adapter configs and logs.
    pub source: String,
}

/// Opens `spec`: a `.gguf` file, a directory with `config.json` + safetensors + `tokenizer.json`,
/// or otherwise a Hugging Face hub id (downloaded into the HF cache).
pub fn load_model(spec: &str, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let path = Path::new(spec);
    if path.is_file() {
        let g = load_gguf(path, dtype, device)?;
        let tokenizer = Tokenizer::from_gguf(&g.content)?;
        let mut model = CausalLM::from_tensors(g.config, g.tensors, dtype, device)?;
        let n = model.attach_packed_weights(g.packed)?;
        let freed = model.release_dense_base();
        tracing::debug!(
            packed = n,
            dense_bytes_released = freed,
            "packed GGUF weights attached; the projections keep only them"
        );
        return Ok(LoadedModel {
            model,
            tokenizer,
            source: spec.to_string(),
        });
    }
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if spec.contains('/') && !spec.starts_with('.') && !spec.starts_with('/') {
        hub_download(spec, None)?
    } else {
        return Err(ModelError::ModelNotFound {
            spec: spec.to_string(),
        });
    };
    let config = ModelConfig::from_hf_json(&dir.join("config.json"))?;
    let tensors = load_safetensors(&safetensors_files(&dir)?, dtype, device)?;
    let model = CausalLM::from_tensors(config, tensors, dtype, device)?;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        source: spec.to_string(),
    })
}
