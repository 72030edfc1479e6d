//! The [`Policy`] and [`RolloutSource`] seams implemented for `recode-model`'s causal LM.
//!
//! Two ways to train: adapters (LoRA/DoRA; the KL reference is the frozen base with adapters
//! switched off, or, after `--init-adapter` with `kl_reference = "init"`, a frozen copy of the
//! starting adapter over the same shared base weights) or every weight (the reference is a
//! separately loaded frozen copy, only when β > 0).

use std::cell::RefCell;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use recode_model::{
    generate, load_model, AdapterConfig, AdapterKind, CausalLM, FinishReason, ForwardOpts,
    LoadedModel, StreamEvent, Tokenizer,
};

use crate::config::{KlReference, TrainConfig};
use crate::policy::{
    Completion, Policy, PolicyOutput, PromptItem, RolloutSource, SamplingParams, TokenBatch,
};
use crate::RlError;

/// Where the frozen reference distribution comes from.
enum Reference {
    /// The same model with adapters disabled.
    AdaptersOff,
    /// A frozen copy of the initial weights (full fine-tuning), run with adapters off.
    Frozen(Box<CausalLM>),
    /// The base with a frozen copy of the starting adapter (`--init-adapter`), run with it on.
    InitAdapter(Box<CausalLM>),
    /// No reference (full fine-tuning with β = 0).
    Absent,
}

/// A causal LM being trained, with its reference.
pub struct LmPolicy {
    model: CausalLM,
    reference: Reference,
    vars: Vec<(String, Var)>,
    adapter: Option<AdapterConfig>,
    base_source: String,
    temperature: f64,
}

/// The adapter settings of a training config (PEFT key names → recode-model's config).
pub fn adapter_config(cfg: &TrainConfig) -> AdapterConfig {
    AdapterConfig {
        kind: if cfg.use_dora {
            AdapterKind::Dora
        } else {
            AdapterKind::Lora
        },
        r: cfg.lora_r,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout as f32,
        target_modules: cfg.lora_target_modules.clone(),
        use_rslora: false,
    }
}

fn model_err(e: recode_model::ModelError) -> RlError {
    RlError::from(e)
}

/// A model error about the file or directory `path`.
fn model_at(path: &Path) -> impl Fn(recode_model::ModelError) -> RlError + '_ {
    move |source| RlError::ModelAt {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// File a full fine-tuning checkpoint writes next to its `model.safetensors`: the model whose
/// architecture and tokenizer its weights fit, so the checkpoint loads as a model ([`load_lm`]).
pub const FULL_MODEL_FILE: &str = "full_model.json";

/// Contents of [`FULL_MODEL_FILE`] (the key PEFT's `adapter_config.json` uses for the same).
#[derive(serde::Serialize, serde::Deserialize)]
struct FullModelFile {
    base_model_name_or_path: String,
}

/// The base a full fine-tuning checkpoint directory names, or `None` for any other spec.
fn full_checkpoint_base(spec: &str) -> Result<Option<String>, RlError> {
    let file = Path::new(spec).join(FULL_MODEL_FILE);
    if !file.is_file() {
        return Ok(None);
    }
    let f: FullModelFile = crate::checkpoint::load_json(&file)?;
    Ok(Some(f.base_model_name_or_path))
}

/// Opens `spec` as [`recode_model::load_model`] does (GGUF file, HF directory, hub id), and also
/// a full fine-tuning checkpoint directory: its base model with every weight replaced by the
/// checkpoint's `model.safetensors` (dense weights; the base's packed GGUF copies no longer fit).
pub fn load_lm(spec: &str, dtype: DType, device: &Device) -> Result<LoadedModel, RlError> {
    let Some(base) = full_checkpoint_base(spec)? else {
        return load_model(spec, dtype, device).map_err(model_err);
    };
    let loaded = load_model(&base, dtype, device).map_err(|source| RlError::CheckpointBase {
        checkpoint: spec.into(),
        base: base.clone(),
        source: Box::new(source),
    })?;
    let weights_file = Path::new(spec).join("model.safetensors");
    let weights = crate::checkpoint::load_tensors(&weights_file, device)?;
    let expected = loaded.model.parameter_count();
    if weights.len() != expected {
        return Err(RlError::WeightCount {
            path: weights_file,
            base,
            found: weights.len(),
            expected,
        });
    }
    let model = CausalLM::from_tensors(loaded.model.config().clone(), weights, dtype, device)
        .map_err(model_at(Path::new(spec)))?;
    Ok(LoadedModel {
        model,
        tokenizer: loaded.tokenizer,
        source: spec.to_string(),
    })
}

impl LmPolicy {
    /// Adds fresh adapters (seeded) to `model`; only they are trained.
    pub fn with_new_adapters(
        mut model: CausalLM,
        cfg: AdapterConfig,
        seed: u64,
        base_source: &str,
    ) -> Result<Self, RlError> {
        model.add_adapters(&cfg, seed).map_err(model_err)?;
        Ok(Self::adapters(model, cfg, base_source))
    }

    /// Loads a PEFT adapter directory (e.g. from `recode sft`) into `model` and trains it
    /// further; with [`KlReference::Init`] a second, frozen load of it is the KL reference.
    pub fn with_adapter_dir(
        mut model: CausalLM,
        dir: &Path,
        base_source: &str,
        reference: KlReference,
    ) -> Result<Self, RlError> {
        let load = |m: &mut CausalLM| m.load_adapters(dir).map_err(model_at(dir));
        // The clone shares the (frozen) base tensors; only the adapter is loaded twice.
        let frozen = match reference {
            KlReference::Init => {
                let mut m = model.clone();
                load(&mut m)?;
                Some(Box::new(m))
            }
            KlReference::Base => None,
        };
        let cfg = load(&mut model)?;
        let mut policy = Self::adapters(model, cfg, base_source);
        if let Some(m) = frozen {
            policy.reference = Reference::InitAdapter(m);
        }
        Ok(policy)
    }

    fn adapters(model: CausalLM, cfg: AdapterConfig, base_source: &str) -> Self {
        let vars = model.adapter_vars();
        LmPolicy {
            model,
            reference: Reference::AdaptersOff,
            vars,
            adapter: Some(cfg),
            base_source: base_source.to_string(),
            temperature: 1.0,
        }
    }

    /// Trains every weight of `model`; `reference` is a separately loaded frozen copy
    /// (needed only when the KL term is on).
    pub fn full(
        mut model: CausalLM,
        reference: Option<CausalLM>,
        base_source: &str,
    ) -> Result<Self, RlError> {
        let vars = model.make_base_trainable().map_err(model_err)?;
        Ok(LmPolicy {
            model,
            reference: reference.map_or(Reference::Absent, |r| Reference::Frozen(Box::new(r))),
            vars,
            adapter: None,
            base_source: base_source.to_string(),
            temperature: 1.0,
        })
    }

    /// Log-probabilities are computed from logits divided by this (the rollout temperature,
    /// as TRL does); 1.0 for SFT.
    pub fn set_temperature(&mut self, t: f64) {
        self.temperature = if t > 0.0 { t } else { 1.0 };
    }

    /// Memory/reproducibility knobs of the network's training forwards: layer-wise activation
    /// checkpointing, and a dropout seed so adapter-dropout masks repeat from run to run.
    pub fn set_training_options(&mut self, activation_checkpointing: bool, dropout_seed: u64) {
        self.model
            .set_activation_checkpointing(activation_checkpointing);
        self.model.set_dropout_seed(Some(dropout_seed));
    }

    /// The network (for generation outside the trainer).
    pub fn model(&self) -> &CausalLM {
        &self.model
    }

    /// The adapter settings when training adapters.
    pub fn adapter(&self) -> Option<&AdapterConfig> {
        self.adapter.as_ref()
    }

    fn logprobs(
        model: &CausalLM,
        batch: &TokenBatch,
        t: f64,
        entropy: bool,
        o: ForwardOpts,
    ) -> candle_core::Result<PolicyOutput> {
        let out = model
            .scored_logprobs(
                &batch.input_ids,
                None,
                Some(&batch.completion_mask),
                t,
                entropy,
                o,
            )
            .map_err(candle_core::Error::wrap)?;
        // recode-model returns [B, T-1] next-token values; the seam wants [B, T] with an
        // (always masked) column for position 0.
        let pad = |x: &Tensor| -> candle_core::Result<Tensor> {
            let b = x.dim(0)?;
            Tensor::cat(&[&Tensor::zeros((b, 1), x.dtype(), x.device())?, x], 1)
        };
        Ok(PolicyOutput {
            logprobs: pad(&out.logprobs)?,
            entropy: out.entropy.as_ref().map(pad).transpose()?,
        })
    }
}

impl Policy for LmPolicy {
    fn token_logprobs(
        &self,
        batch: &TokenBatch,
        with_entropy: bool,
    ) -> candle_core::Result<PolicyOutput> {
        Self::logprobs(
            &self.model,
            batch,
            self.temperature,
            with_entropy,
            ForwardOpts::TRAIN,
        )
    }

    fn reference_logprobs(&self, batch: &TokenBatch) -> candle_core::Result<Tensor> {
        let t = self.temperature;
        let out = match &self.reference {
            Reference::AdaptersOff => {
                Self::logprobs(&self.model, batch, t, false, ForwardOpts::REFERENCE)?
            }
            Reference::Frozen(m) => Self::logprobs(m, batch, t, false, ForwardOpts::REFERENCE)?,
            Reference::InitAdapter(m) => {
                Self::logprobs(m, batch, t, false, ForwardOpts::INFERENCE)?
            }
            Reference::Absent => {
                return Err(candle_core::Error::Msg(
                    "no reference model loaded (full fine-tuning with beta = 0)".into(),
                ))
            }
        };
        Ok(out.logprobs)
    }

    fn rollout_logprobs(&self, batch: &TokenBatch) -> candle_core::Result<Tensor> {
        Ok(Self::logprobs(
            &self.model,
            batch,
            self.temperature,
            false,
            ForwardOpts::INFERENCE,
        )?
        .logprobs)
    }

    fn dropout_position(&self) -> u64 {
        self.model.dropout_position()
    }

    fn set_dropout_position(&self, position: u64) {
        self.model.set_dropout_position(position);
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.vars.clone()
    }

    fn device(&self) -> &Device {
        self.model.device()
    }

    fn export(&self, dir: &Path) -> Result<(), RlError> {
        // Full fine-tuning: the trainer's `model.safetensors` already holds every weight
        // under its Hugging Face name; FULL_MODEL_FILE names the base that supplies the
        // architecture and tokenizer (the root one when training started from a checkpoint).
        // Adapters: PEFT's layout.
        let Some(cfg) = &self.adapter else {
            let base = full_checkpoint_base(&self.base_source)?
                .unwrap_or_else(|| self.base_source.clone());
            // An absolute path, so the checkpoint loads from any working directory.
            let base = std::fs::canonicalize(&base).map_or(base, |p| p.display().to_string());
            let file = FullModelFile {
                base_model_name_or_path: base,
            };
            return crate::checkpoint::save_json(&dir.join(FULL_MODEL_FILE), &file);
        };
        self.model
            .save_adapters(dir, cfg, &self.base_source)
            .map_err(model_at(dir))
    }
}

/// How far a sampler's decoding has come (what a [`ProgressHook`] sees).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeProgress {
    /// Completions finished (end of turn or token limit).
    pub rows_done: usize,
    /// Completions asked for (prompts × completions per prompt).
    pub rows_total: usize,
    /// Tokens decoded so far.
    pub tokens: usize,
    /// True while greedy validation decodes (false for training rollouts).
    pub validation: bool,
}

/// Called as decoding advances (e.g. to draw a progress bar over slow greedy validation).
pub type ProgressHook = Box<dyn FnMut(&DecodeProgress) + Send>;

/// Samples rollouts with `recode-model`'s batched generator (KV cache, shared prefill).
pub struct LmSampler {
    tokenizer: Tokenizer,
    /// Sequences decoded together in one generation call (prompts × completions per prompt;
    /// bounds the KV cache memory). Greedy validation (one completion per prompt) thus decodes
    /// many prompts at once, where batching pays most.
    pub max_rows_per_call: usize,
    /// Sees decoding progress when set ([`LmSampler::set_progress`]).
    progress: RefCell<Option<ProgressHook>>,
    /// Whether greedy validation is decoding ([`RolloutSource::set_validating`]).
    validating: bool,
}

impl LmSampler {
    /// A sampler decoding with `tokenizer`.
    pub fn new(tokenizer: Tokenizer) -> Self {
        LmSampler {
            tokenizer,
            max_rows_per_call: 64,
            progress: RefCell::new(None),
            validating: false,
        }
    }

    /// Reports decoding progress to `hook` (`None`: no reports) from the next generation on.
    /// The completions are the same with or without a hook.
    pub fn set_progress(&mut self, hook: Option<ProgressHook>) {
        self.progress = RefCell::new(hook);
    }

    /// The tokenizer (to decode or render prompts).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Generates `n` completions per prompt from `model`; the sampling seed is drawn from `rng`.
    pub fn sample(
        &self,
        model: &CausalLM,
        prompts: &[PromptItem],
        n: usize,
        params: &SamplingParams,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Completion>, RlError> {
        let mut out = Vec::with_capacity(prompts.len() * n);
        let prompts_per_call = (self.max_rows_per_call / n.max(1)).max(1);
        let mut progress = DecodeProgress {
            rows_total: prompts.len() * n,
            validation: self.validating,
            ..Default::default()
        };
        let stops = self.tokenizer.eos_ids();
        for chunk in prompts.chunks(prompts_per_call) {
            let mp = recode_model::SamplingParams {
                temperature: params.temperature,
                top_p: params.top_p,
                top_k: params.top_k,
                max_new_tokens: params.max_new_tokens,
                seed: rng.next_u64(),
                n,
                ..Default::default()
            };
            let ids: Vec<Vec<u32>> = chunk.iter().map(|p| p.tokens.clone()).collect();
            let mut hook = self.progress.borrow_mut();
            let mut tracker = hook.as_mut().map(|h| ChunkProgress {
                progress: &mut progress,
                rows: vec![(0, false); chunk.len() * n],
                n,
                max_new_tokens: params.max_new_tokens,
                stops: &stops,
                hook: h,
            });
            let tracked = tracker.is_some();
            let mut on_token = |e: &StreamEvent| {
                if let Some(t) = tracker.as_mut() {
                    t.on_token(e);
                }
            };
            let (comps, _) = generate(
                model,
                &self.tokenizer,
                &ids,
                &mp,
                ForwardOpts::INFERENCE,
                tracked.then_some(&mut on_token as &mut dyn FnMut(&StreamEvent)),
            )
            .map_err(model_err)?;
            if let Some(t) = tracker {
                t.finish();
            }
            let mut comps = comps;
            comps.sort_by_key(|c| (c.prompt_index, c.sample_index));
            out.extend(comps.into_iter().map(|c| Completion {
                truncated: c.finish_reason == FinishReason::Length,
                tokens: c.token_ids,
                text: c.text,
            }));
        }
        Ok(out)
    }
}

/// Counts the finished completions of one generation call from its token stream: a row is
/// done at an end-of-turn token or at the token limit; [`ChunkProgress::finish`] counts the
/// rest when the call returns.
struct ChunkProgress<'a> {
    progress: &'a mut DecodeProgress,
    /// Tokens per row of this call, and whether the row is counted as done.
    rows: Vec<(usize, bool)>,
    /// Rows of this call per prompt.
    n: usize,
    max_new_tokens: usize,
    stops: &'a [u32],
    hook: &'a mut ProgressHook,
}

impl ChunkProgress<'_> {
    fn on_token(&mut self, e: &StreamEvent) {
        self.progress.tokens += 1;
        if let Some(row) = self.rows.get_mut(e.prompt_index * self.n + e.sample_index) {
            row.0 += 1;
            if !row.1 && (self.stops.contains(&e.token_id) || row.0 >= self.max_new_tokens) {
                row.1 = true;
                self.progress.rows_done += 1;
            }
        }
        (self.hook)(self.progress);
    }

    /// Every row of the call is done once it returns.
    fn finish(self) {
        self.progress.rows_done += self.rows.iter().filter(|r| !r.1).count();
        (self.hook)(self.progress);
    }
}

impl RolloutSource<LmPolicy> for LmSampler {
    fn generate(
        &mut self,
        policy: &LmPolicy,
        prompts: &[PromptItem],
        n: usize,
        params: &SamplingParams,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Completion>, RlError> {
        // Over packed (quantised) base weights, adapters decode fastest unmerged: the base
        // product streams the packed blocks, the rank-r correction is small, and `generate`
        // computes DoRA's row scales once per call.
        if !policy.model.has_adapters() || policy.model.has_packed_weights() {
            return self.sample(&policy.model, prompts, n, params, rng);
        }
        // Otherwise decoding with adapters folded in skips the per-token adapter matmuls; the
        // merged copy shares every untouched tensor with the policy.
        let mut merged = policy.model.clone();
        merged.merge_adapters().map_err(model_err)?;
        self.sample(&merged, prompts, n, params, rng)
    }

    fn set_validating(&mut self, validating: bool) {
        self.validating = validating;
    }
}
