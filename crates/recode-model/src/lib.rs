//! `recode-model`: the causal language model runtime of recode.
//!
//! A Llama / Qwen2 decoder written on candle (our own code, so gradients flow through every
//! trainable parameter), loaded from Hugging Face safetensors or GGUF, with a tokenizer built from
//! `tokenizer.json` or from GGUF metadata, LoRA/DoRA adapters in PEFT's layout, per-token
//! log-probabilities for RL, and batched generation with a KV cache.

pub mod adapter;
pub mod config;
mod decode;
pub mod error;
mod forward;
mod fused;
mod lean;
pub mod model;
pub mod packed;
pub mod weights;

pub use adapter::{Adapter, AdapterConfig, AdapterKind};
pub use config::{Arch, ModelConfig, RopeScaling};
pub use error::{ModelError, Result};
pub use forward::{ForwardOpts, LogitsMode};
pub use model::{CausalLM, KvCache, TokenLogprobs};
pub mod generate;
pub mod loader;
pub mod tokenizer;

pub use generate::{
    generate, left_pad, Completion, FinishReason, GenerationStats, SamplingParams, StreamEvent,
};
pub use loader::{load_model, LoadedModel};
pub use tokenizer::Tokenizer;

/// The candle version the crate is built on (so callers use matching `Device`/`DType`/`Tensor`).
pub use candle_core;
