//! GGUF files written from the tiny reference models in llama.cpp's layout (tensor names, q/k row
//! permutation of convert_hf_to_gguf.py, metadata keys), so tests reach the GGUF loading path.
//! Tests edit the metadata and tensors of a [`GgufSpec`] before writing it.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use recode_model::weights::{load_safetensors, safetensors_files};

/// The metadata and tensors of a GGUF file to write.
pub struct GgufSpec {
    /// Key/value metadata, in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensors under their GGUF names, stored as F32.
    pub tensors: Vec<(String, Tensor)>,
}

impl GgufSpec {
    /// Sets `key` to `value` (replacing any earlier value).
    pub fn set(&mut self, key: &str, value: Value) {
        self.remove(key);
        self.metadata.push((key.to_string(), value));
    }

    /// Removes `key` from the metadata.
    pub fn remove(&mut self, key: &str) {
        self.metadata.retain(|(k, _)| k != key);
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) {
        let qs: Vec<(&str, QTensor)> = self
            .tensors
            .iter()
            .map(|(n, t)| (n.as_str(), QTensor::quantize(t, GgmlDType::F32).unwrap()))
            .collect();
        let md: Vec<(&str, &Value)> = self.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = qs.iter().map(|(n, q)| (*n, q)).collect();
        let mut f = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut f, &md, &ts).unwrap();
    }
}

/// llama.cpp's tensor name for a Hugging Face parameter name.
fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").expect(hf);
    let (layer, rest) = rest.split_once('.').unwrap();
    let (module, suffix) = rest.rsplit_once('.').unwrap();
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => panic!("no GGUF name for {other}"),
    };
    format!("blk.{layer}.{g}.{suffix}")
}

/// convert_hf_to_gguf.py's permutation of Llama q/k rows: within each head, row `h * half + i`
/// of the rotate-half layout moves to `2 * i + h` (interleaved pairs).
fn permute(t: &Tensor, n_head: usize) -> Tensor {
    let rows = t.dim(0).unwrap();
    let rest = t.elem_count() / rows;
    t.reshape((n_head, 2, rows / n_head / 2, rest))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape(t.shape())
        .unwrap()
}

/// The tiny model of `dir` (config.json + safetensors from model_ref.py) as a GGUF spec: F32
/// tensors, hyper-parameters under `<arch>.*`, and a 61-token byte-level vocabulary with no merges
/// and the `gpt-2` pre-tokenizer. No RoPE scaling is written; tests add it.
pub fn tiny_gguf(dir: &Path) -> GgufSpec {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = |k: &str| cfg[k].as_u64().unwrap() as u32;
    let arch = cfg["model_type"].as_str().unwrap().to_string();
    let (heads, kv_heads) = (n("num_attention_heads"), n("num_key_value_heads"));
    let weights =
        load_safetensors(&safetensors_files(dir).unwrap(), DType::F32, &Device::Cpu).unwrap();
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let tensors = names
        .into_iter()
        .map(|hf| {
            let t = &weights[hf];
            let t = match (arch.as_str(), hf.contains("q_proj"), hf.contains("k_proj")) {
                ("llama", true, _) => permute(t, heads as usize),
                ("llama", _, true) => permute(t, kv_heads as usize),
                _ => t.clone(),
            };
            (gguf_name(hf), t)
        })
        .collect();
    let a = |k: &str| format!("{arch}.{k}");
    let vocab: Vec<Value> = (b'!'..)
        .take(n("vocab_size") as usize)
        .map(|c| Value::String((c as char).to_string()))
        .collect();
    let types = vec![Value::I32(1); vocab.len()];
    let metadata = vec![
        ("general.architecture".into(), Value::String(arch.clone())),
        (
            a("context_length"),
            Value::U32(n("max_position_embeddings")),
        ),
        (a("embedding_length"), Value::U32(n("hidden_size"))),
        (a("feed_forward_length"), Value::U32(n("intermediate_size"))),
        (a("block_count"), Value::U32(n("num_hidden_layers"))),
        (a("attention.head_count"), Value::U32(heads)),
        (a("attention.head_count_kv"), Value::U32(kv_heads)),
        (
            a("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32),
        ),
        (
            a("rope.freq_base"),
            Value::F32(cfg["rope_theta"].as_f64().unwrap() as f32),
        ),
        (
            a("rope.dimension_count"),
            Value::U32(n("hidden_size") / heads),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(vocab)),
        ("tokenizer.ggml.merges".into(), Value::Array(Vec::new())),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
    ];
    GgufSpec { metadata, tensors }
}
