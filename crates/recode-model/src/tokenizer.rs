//! Tokenizer: `tokenizer.json` through the `tokenizers` crate, or a GPT-2 byte-level BPE built from
//! GGUF metadata (vocab, merges, special tokens) so a GGUF file is self-sufficient. Also exposes the
//! chat template text and the bos/eos tokens.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::{json, Value};

use crate::config::gguf_value_text;
use crate::error::{read_json, ModelError, Result};

/// A tokenizer plus the special tokens and chat template that come with the model.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Beginning-of-sequence token, if the model defines one.
    pub bos: Option<(String, u32)>,
    /// End-of-sequence token(s): generation stops on any of them.
    pub eos: Vec<(String, u32)>,
    /// The chat template (Jinja source), if the model ships one.
    pub chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

/// A [`ModelError::Tokenize`] from the `tokenizers` crate's error.
fn tok_err(source: tokenizers::Error) -> ModelError {
    ModelError::Tokenize { source }
}

/// A [`ModelError::GgufMetadata`] for `key` (a metadata value of the wrong type).
fn meta_err(key: &'static str) -> impl Fn(candle_core::Error) -> ModelError {
    move |e| ModelError::gguf_metadata(key, e)
}

/// The `tokenizer.ggml.pre` names recode implements (llama.cpp's names for these pre-tokenizers).
/// Any other name, or a missing key, is refused: a wrong pre-tokenizer silently changes the
/// token ids the model sees.
pub const SUPPORTED_GGUF_PRE: [&str; 9] = [
    "gpt-2",
    "smollm",
    "starcoder",
    "refact",
    "qwen2",
    "deepseek-r1-qwen",
    "llama-bpe",
    "llama3",
    "smaug-bpe",
];

/// Qwen2's split regex (from its `tokenizer.json`): letters with one leading non-letter, single
/// digits, punctuation runs with trailing newlines, whitespace.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Llama 3's split regex: as Qwen2's, but digits in runs of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one `tokenizer.ggml.pre` name tokenizes, as `tokenizers` JSON parts.
struct PreTokenization {
    /// Unicode normalisation applied first (`null` for none).
    normalizer: Value,
    /// The pre-tokenizer (splitting and byte-level mapping).
    pre_tokenizer: Value,
    /// Whether a pre-token found whole in the vocabulary is emitted without BPE merges.
    ignore_merges: bool,
}

/// The tokenization of a `tokenizer.ggml.pre` name (see [`SUPPORTED_GGUF_PRE`]).
fn pre_tokenization(pre: Option<&str>) -> Result<PreTokenization> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| {
        json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
        byte_level(false)]})
    };
    let plain = |pre_tokenizer: Value| PreTokenization {
        normalizer: Value::Null,
        pre_tokenizer,
        ignore_merges: false,
    };
    let refuse = |value: &str| {
        ModelError::unsupported("tokenizer.ggml.pre", value, SUPPORTED_GGUF_PRE.join(", "))
    };
    let pre = pre.ok_or_else(|| refuse("<missing>"))?;
    Ok(match pre {
        "gpt-2" => plain(byte_level(true)),
        "smollm" | "starcoder" | "refact" => plain(json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]})),
        // Qwen2's tokenizer.json composes characters (NFC) before splitting.
        "qwen2" => PreTokenization {
            normalizer: json!({"type": "NFC"}),
            ..plain(split(QWEN2_SPLIT))
        },
        "deepseek-r1-qwen" => plain(split(QWEN2_SPLIT)),
        // Llama 3 (tokenizer.json and llama.cpp alike) emits whole-word vocabulary hits as is.
        "llama-bpe" | "llama3" => PreTokenization {
            ignore_merges: true,
            ..plain(split(LLAMA3_SPLIT))
        },
        "smaug-bpe" => plain(split(LLAMA3_SPLIT)),
        other => return Err(refuse(other)),
    })
}

/// The string array at metadata `key` (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
fn gguf_strings(md: &HashMap<String, gguf_file::Value>, key: &'static str) -> Result<Vec<String>> {
    md.get(key)
        .ok_or_else(|| ModelError::GgufMissingKey { key: key.into() })?
        .to_vec()
        .map_err(meta_err(key))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(meta_err(key)))
        .collect()
}

/// The `tokenizer.json` specification of a byte-level BPE tokenizer: vocabulary `tokens` (id =
/// index) with GGUF token `types`, `merges`, the pre-tokenization, and the `specials` (bos, eos)
/// that are matched as whole tokens like control and user-defined ones.
fn bpe_spec(
    tokens: &[String],
    merges: Vec<String>,
    types: &[i32],
    specials: [Option<u32>; 2],
    tokenization: &PreTokenization,
) -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
        // 3 = control, 4 = user-defined: matched as whole tokens before BPE.
        let special =
            matches!(types.get(i), Some(3) | Some(4)) || specials.contains(&Some(i as u32));
        if special {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}),
            );
        }
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": tokenization.normalizer,
        "pre_tokenizer": tokenization.pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": tokenization.ignore_merges, "vocab": vocab,
            "merges": merges},
    })
}

impl Tokenizer {
    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`, model `gpt2` = byte-level BPE).
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let get = |k: &str| {
            md.get(k)
                .ok_or_else(|| ModelError::GgufMissingKey { key: k.to_string() })
        };
        let model = get("tokenizer.ggml.model")?
            .to_string()
            .map_err(meta_err("tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(ModelError::unsupported(
                "tokenizer.ggml.model",
                model.as_str(),
                "gpt2 (byte-level BPE)",
            ));
        }
        let tokens = gguf_strings(md, "tokenizer.ggml.tokens")?;
        let merges = gguf_strings(md, "tokenizer.ggml.merges")?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(meta_err("tokenizer.ggml.token_type"))?
                .iter()
                .map(|x| x.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        let pre = match md.get("tokenizer.ggml.pre") {
            None => None,
            Some(v) => Some(v.to_string().map_err(|_| {
                ModelError::unsupported("tokenizer.ggml.pre", gguf_value_text(v), "a string")
            })?),
        };
        let tokenization = pre_tokenization(pre.map(String::as_str))?;
        let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let bos_id = id("tokenizer.ggml.bos_token_id");
        let eos_id = id("tokenizer.ggml.eos_token_id");
        let spec = bpe_spec(&tokens, merges, &types, [bos_id, eos_id], &tokenization);
        let inner: tokenizers::Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|source| ModelError::TokenizerBuild { file: None, source })?;
        let name = |i: u32| tokens.get(i as usize).map(|t| (t.clone(), i));
        let mut eos: Vec<(String, u32)> = eos_id.and_then(name).into_iter().collect();
        // ChatML models end turns with <|im_end|>; stop on it too.
        if let Some(p) = tokens.iter().position(|t| t == "<|im_end|>") {
            if !eos.iter().any(|(_, i)| *i == p as u32) {
                eos.push(("<|im_end|>".into(), p as u32));
            }
        }
        Ok(Self {
            inner,
            bos: bos_id.and_then(name),
            eos,
            chat_template: md
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .cloned(),
        })
    }

    /// Loads `tokenizer.json` (+ `tokenizer_config.json` for bos/eos/chat template) from a model dir.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let tpath = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&tpath).map_err(|source| {
            ModelError::TokenizerBuild {
                file: Some(tpath.clone()),
                source,
            }
        })?;
        let cpath = dir.join("tokenizer_config.json");
        let cfg = if cpath.exists() {
            read_json(&cpath)?
        } else {
            Value::Null
        };
        let tok_name = |k: &str| -> Option<String> {
            match cfg.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let with_id = |s: String| inner.token_to_id(&s).map(|i| (s, i));
        let mut eos: Vec<(String, u32)> = tok_name("eos_token")
            .and_then(with_id)
            .into_iter()
            .collect();
        let gpath = dir.join("generation_config.json");
        if gpath.exists() {
            let g = read_json(&gpath)?;
            let ids: Vec<u64> = match g.get("eos_token_id") {
                Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
                _ => Vec::new(),
            };
            for i in ids {
                if let Some(t) = inner.id_to_token(i as u32) {
                    if !eos.iter().any(|(_, e)| *e == i as u32) {
                        eos.push((t, i as u32));
                    }
                }
            }
        }
        let chat_template = match cfg.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => {
                let jpath = dir.join("chat_template.jinja");
                std::fs::read_to_string(jpath).ok()
            }
        };
        Ok(Self {
            bos: tok_name("bos_token").and_then(with_id),
            eos,
            chat_template,
            inner,
        })
    }

    /// Encodes text; special tokens written in the text (e.g. `<|im_start|>`) become single ids.
    /// No bos is added (chat templates write it themselves).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text, keeping special tokens when `skip_special` is false.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// The text of one token id (raw vocabulary form).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Ids of the end-of-sequence tokens.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos.iter().map(|(_, i)| *i).collect()
    }

    /// A token id usable for left padding (eos, else 0); masked out, so its value never matters.
    pub fn pad_id(&self) -> u32 {
        self.eos.first().map_or(0, |(_, i)| *i)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
