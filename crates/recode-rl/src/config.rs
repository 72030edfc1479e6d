//! Training configuration: one serde struct, two presets, three layers.
//!
//! Key names follow TRL's `GRPOConfig` / `TrainingArguments` and its `ModelConfig`
//! (which carries PEFT's `LoraConfig` knobs as `lora_r`, `lora_alpha`, …) wherever
//! such a key exists, so TRL users carry their habits over. Keys TRL lacks take
//! verl's names (`max_num_gen_batches`, `overlong_buffer_len`,
//! `overlong_penalty_factor`, `loss_type` values `token-mean` | `seq-mean-token-sum`
//! | `seq-mean-token-mean`).
//!
//! Layering: [`Algo`] preset → `--config FILE.toml` → `--set key=value`, see
//! [`resolve`]. Unknown keys are errors naming the key; TOML syntax errors name the
//! file and line.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::{ConfigLayer, RlError};

/// Which RL algorithm's preset to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// GRPO as in the ReCode paper (k3 KL vs frozen base, DoRA adapters).
    Grpo,
    /// DAPO (asymmetric clip, dual clip, token-mean, dynamic sampling, no KL).
    Dapo,
    /// Supervised fine-tuning baseline (`recode sft`): cross-entropy on the target answer;
    /// uses the optimizer, adapter, batch and checkpoint keys only.
    Sft,
}

impl std::str::FromStr for Algo {
    type Err = RlError;
    fn from_str(s: &str) -> Result<Self, RlError> {
        match s {
            "grpo" => Ok(Algo::Grpo),
            "dapo" => Ok(Algo::Dapo),
            "sft" => Ok(Algo::Sft),
            other => Err(RlError::UnknownAlgo {
                value: other.to_string(),
            }),
        }
    }
}

/// How per-token losses are reduced to one scalar (verl's `loss_agg_mode` names).
///
/// All three normalise by counts over the whole optimizer mini-batch, so the
/// gradient does not depend on how the mini-batch is split into micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossType {
    /// Sum over all completion tokens / number of completion tokens (DAPO; TRL `dapo`).
    #[serde(rename = "token-mean", alias = "dapo")]
    TokenMean,
    /// Per sequence token-sum, then mean over sequences (Dr. GRPO-like, no length norm).
    #[serde(rename = "seq-mean-token-sum")]
    SeqMeanTokenSum,
    /// Per sequence token-mean, then mean over sequences (original GRPO; TRL `grpo`).
    #[serde(rename = "seq-mean-token-mean", alias = "grpo")]
    SeqMeanTokenMean,
}

/// KL estimator of KL(π_θ ‖ π_ref) per token (Schulman's k1/k2/k3).
///
/// With Δ = log π_ref − log π_θ: k1 = −Δ, k2 = Δ²/2, k3 = exp(Δ) − Δ − 1
/// (verl: `kl`, `mse`, `low_var_kl`; TRL always uses k3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// Plain log-ratio; unbiased, high variance, can be negative.
    K1,
    /// Half squared log-ratio; biased, low variance.
    K2,
    /// exp(Δ) − Δ − 1; unbiased and non-negative (GRPO paper).
    K3,
}

/// Which policy the KL term keeps the trained one close to.
///
/// With fresh adapters (or none) both are the same distribution. They differ after
/// `--init-adapter`: verl and InstructGPT-style RLHF anchor RL to the policy it starts
/// from (the SFT model); TRL with PEFT anchors to the base model (adapters disabled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlReference {
    /// The starting policy, e.g. base + the `--init-adapter` adapter, kept frozen (verl).
    #[default]
    Init,
    /// The base model with adapters switched off (TRL + PEFT).
    Base,
}

/// Learning-rate schedule after warm-up (HF `lr_scheduler_type` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedulerType {
    /// Constant learning rate; warm-up still applies (HF `constant_with_warmup`).
    #[serde(alias = "constant_with_warmup")]
    Constant,
    /// Linear warm-up then half-cosine decay to 0 at `max_steps`.
    Cosine,
    /// Linear warm-up then linear decay to 0 at `max_steps`.
    Linear,
}

/// How rewards are scaled into advantages (TRL `scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleRewards {
    /// A = (r − group mean) / (group std + 1e-6) — GRPO.
    Group,
    /// A = (r − group mean) / (std over the whole batch + 1e-6).
    Batch,
    /// A = r − group mean (Dr. GRPO).
    None,
}

/// Which standard deviation the advantage uses.
///
/// TRL (`tensor.std()`) and verl (`torch.std`) both use the sample (Bessel-corrected,
/// n−1) std, and so did the ReCode paper's code base; `population` divides by n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdKind {
    /// Divide by n − 1 (torch default; paper/TRL/verl).
    Sample,
    /// Divide by n.
    Population,
}

/// The resolved training configuration; see the module doc for naming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Preset this config started from (informational, printed with the config).
    pub algo: Algo,
    /// Completions sampled per prompt (G).
    pub num_generations: usize,
    /// Prompts longer than this many tokens are left-truncated.
    pub max_prompt_length: usize,
    /// Generation stops after this many new tokens.
    pub max_completion_length: usize,
    /// KL coefficient β (0 disables the KL term and the reference pass).
    pub beta: f64,
    /// KL estimator used when `beta > 0`.
    pub kl_estimator: KlEstimator,
    /// What the KL term measures the distance from: `init` (the starting policy, also
    /// after `--init-adapter`) or `base` (adapters off).
    #[serde(default)]
    pub kl_reference: KlReference,
    /// Lower clip ε_low: ratio clipped below at 1 − epsilon.
    pub epsilon: f64,
    /// Upper clip ε_high: ratio clipped above at 1 + epsilon_high (DAPO clip-higher).
    pub epsilon_high: f64,
    /// Dual-clip bound c (> 1): for negative advantages the per-token loss is capped at
    /// c·|A|. TRL calls it `delta` (two-sided clipping), verl `clip_ratio_c`. Absent = off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "clip_ratio_c"
    )]
    pub delta: Option<f64>,
    /// Loss aggregation mode.
    pub loss_type: LossType,
    /// Advantage scaling.
    pub scale_rewards: ScaleRewards,
    /// Sample or population standard deviation in the advantage.
    pub advantage_std: StdKind,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Schedule after warm-up.
    pub lr_scheduler_type: LrSchedulerType,
    /// Fraction of `max_steps` spent in linear warm-up.
    pub warmup_ratio: f64,
    /// Number of optimizer steps.
    pub max_steps: usize,
    /// Completions per micro-batch (one forward/backward).
    pub per_device_train_batch_size: usize,
    /// Micro-batches accumulated per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// μ: optimizer steps taken on each generation batch.
    pub num_iterations: usize,
    /// Sampling temperature for rollouts.
    pub temperature: f64,
    /// Nucleus sampling threshold (1.0 = off).
    pub top_p: f64,
    /// Top-k sampling (0 = off).
    pub top_k: usize,
    /// Global gradient-norm clip (0 = off).
    pub max_grad_norm: f64,
    /// Recompute each decoder layer in the backward pass instead of storing its activations
    /// (HF `gradient_checkpointing`): ~4x less activation memory for ~25% more compute.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// Decoupled (AdamW) weight decay.
    pub weight_decay: f64,
    /// Adam β1.
    pub adam_beta1: f64,
    /// Adam β2.
    pub adam_beta2: f64,
    /// Adam ε.
    pub adam_epsilon: f64,
    /// Seed of every random choice (data order, sampling).
    pub seed: u64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub save_steps: usize,
    /// Log metrics every this many steps.
    pub logging_steps: usize,
    /// Validate every this many steps and after the last (0 = never).
    pub eval_steps: usize,
    /// Validate the starting point before the first step (TRL `eval_on_start`); off saves one
    /// validation when the start was already measured, e.g. the final validation of the
    /// `recode sft` run an `--init-adapter` comes from.
    #[serde(default = "default_true")]
    pub eval_on_start: bool,
    /// Train adapters (LoRA/DoRA) instead of all weights (TRL `ModelConfig.use_peft`).
    pub use_peft: bool,
    /// Adapter rank r.
    pub lora_r: usize,
    /// Adapter scale numerator α (scale = α / r).
    pub lora_alpha: f64,
    /// Dropout on the adapter input.
    pub lora_dropout: f64,
    /// Weight-decomposed adapters (DoRA).
    pub use_dora: bool,
    /// Linear layers that receive adapters.
    pub lora_target_modules: Vec<String>,
    /// DAPO dynamic sampling: drop groups whose rewards all agree and refill.
    pub dynamic_sampling: bool,
    /// Generation batches tried per step to fill the batch with informative groups.
    pub max_num_gen_batches: usize,
    /// DAPO overlong shaping: soft penalty zone length before `max_completion_length` (0 = off).
    pub overlong_buffer_len: usize,
    /// Penalty at full overlength (reward −factor at `max_completion_length`).
    pub overlong_penalty_factor: f64,
    /// Exclude truncated completions from the loss (TRL `mask_truncated_completions`).
    pub mask_truncated_completions: bool,
    /// Reward components summed into the training reward (TRL `reward_funcs`):
    /// any of `format`, `es_star`, `em_star`, `es`, `em`, and `edit_es_star` (not in the paper:
    /// ES* of the edit against the reference edit, so copying the old code is not rewarded).
    pub reward_funcs: Vec<String>,
    /// Weight per reward component (TRL `reward_weights`); empty = all 1.
    pub reward_weights: Vec<f64>,
    /// Reward library mode: `paper` (published quirks) or `fixed`.
    pub reward_mode: String,
}

impl TrainConfig {
    /// The preset for `algo` with the paper's values.
    pub fn preset(algo: Algo) -> Self {
        let base = TrainConfig {
            algo,
            num_generations: 8,
            max_prompt_length: 2048,
            max_completion_length: 1024,
            beta: 0.001,
            kl_estimator: KlEstimator::K3,
            kl_reference: KlReference::Init,
            epsilon: 0.2,
            epsilon_high: 0.2,
            delta: None,
            loss_type: LossType::SeqMeanTokenMean,
            scale_rewards: ScaleRewards::Group,
            advantage_std: StdKind::Sample,
            learning_rate: 5e-5,
            lr_scheduler_type: LrSchedulerType::Cosine,
            warmup_ratio: 0.03,
            max_steps: 500,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 2,
            num_iterations: 1,
            temperature: 0.9,
            top_p: 1.0,
            top_k: 0,
            max_grad_norm: 1.0,
            gradient_checkpointing: false,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            seed: 42,
            save_steps: 100,
            logging_steps: 1,
            eval_steps: 50,
            eval_on_start: true,
            use_peft: true,
            lora_r: 64,
            lora_alpha: 64.0,
            lora_dropout: 0.05,
            use_dora: true,
            lora_target_modules: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
            dynamic_sampling: false,
            max_num_gen_batches: 10,
            overlong_buffer_len: 0,
            overlong_penalty_factor: 1.0,
            mask_truncated_completions: false,
            reward_funcs: vec!["format".into(), "es_star".into()],
            reward_weights: vec![],
            reward_mode: "paper".into(),
        };
        match algo {
            Algo::Grpo => base,
            Algo::Sft => TrainConfig {
                beta: 0.0,
                learning_rate: 1e-4,
                max_steps: 300,
                ..base
            },
            Algo::Dapo => TrainConfig {
                beta: 0.0,
                epsilon: 0.2,
                epsilon_high: 0.28,
                delta: Some(10.0),
                loss_type: LossType::TokenMean,
                learning_rate: 1e-6,
                lr_scheduler_type: LrSchedulerType::Constant,
                weight_decay: 0.1,
                temperature: 1.0,
                use_peft: false,
                use_dora: false,
                dynamic_sampling: true,
                max_num_gen_batches: 10,
                overlong_buffer_len: 256,
                overlong_penalty_factor: 1.0,
                ..base
            },
        }
    }

    /// Checks relations between keys that serde cannot (divisibility, ranges).
    pub fn validate(&self) -> Result<(), RlError> {
        let bad = |key: &'static str, problem: String| Err(RlError::InvalidConfig { key, problem });
        let gen_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps;
        if gen_batch == 0 {
            return bad(
                "per_device_train_batch_size",
                "per_device_train_batch_size and gradient_accumulation_steps must be >= 1".into(),
            );
        }
        // SFT has no groups: the generation keys do not apply to it.
        if self.algo != Algo::Sft && self.num_generations < 2 {
            return bad(
                "num_generations",
                "num_generations must be >= 2 (a group needs a baseline)".into(),
            );
        }
        if self.algo != Algo::Sft && !gen_batch.is_multiple_of(self.num_generations) {
            return bad(
                "num_generations",
                format!(
                "per_device_train_batch_size * gradient_accumulation_steps = {gen_batch} must be a positive multiple of num_generations = {}",
                self.num_generations
            ));
        }
        if self.num_iterations == 0 || self.max_steps == 0 {
            return bad(
                "num_iterations",
                "num_iterations and max_steps must be >= 1".into(),
            );
        }
        if !(0.0..1.0).contains(&self.epsilon) || self.epsilon_high < 0.0 {
            return bad(
                "epsilon",
                "epsilon must be in [0, 1) and epsilon_high >= 0".into(),
            );
        }
        if let Some(c) = self.delta {
            if c <= 1.0 + self.epsilon_high {
                return bad(
                    "delta",
                    format!("delta (dual-clip c) = {c} must exceed 1 + epsilon_high"),
                );
            }
        }
        if self.beta < 0.0 || !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(
                "beta",
                "beta must be >= 0 and warmup_ratio in [0, 1]".into(),
            );
        }
        if self.temperature <= 0.0 || !(0.0..=1.0).contains(&self.top_p) || self.top_p == 0.0 {
            return bad(
                "temperature",
                "temperature must be > 0 and top_p in (0, 1]".into(),
            );
        }
        if self.overlong_buffer_len > self.max_completion_length {
            return bad(
                "overlong_buffer_len",
                "overlong_buffer_len must be <= max_completion_length".into(),
            );
        }
        if self.dynamic_sampling && self.max_num_gen_batches == 0 {
            return bad(
                "max_num_gen_batches",
                "max_num_gen_batches must be >= 1 with dynamic_sampling".into(),
            );
        }
        if !self.reward_weights.is_empty() && self.reward_weights.len() != self.reward_funcs.len() {
            return bad(
                "reward_weights",
                format!(
                    "reward_weights has {} entries but reward_funcs has {}",
                    self.reward_weights.len(),
                    self.reward_funcs.len()
                ),
            );
        }
        for f in &self.reward_funcs {
            f.parse::<crate::component::Component>()?;
        }
        if !["paper", "fixed"].contains(&self.reward_mode.as_str()) {
            return bad(
                "reward_mode",
                format!(
                    "reward_mode must be paper or fixed, got `{}`",
                    self.reward_mode
                ),
            );
        }
        Ok(())
    }

    /// The config as TOML text (what `--print-config` shows and checkpoints store).
    pub fn to_toml(&self) -> String {
        // Serialising a plain struct of scalars/arrays cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# unprintable config: {e}\n"))
    }

    /// Whether a checkpoint is written after optimizer step `step` (every `save_steps`, and the last).
    pub fn checkpoint_due(&self, step: usize) -> bool {
        (self.save_steps > 0 && step.is_multiple_of(self.save_steps)) || step == self.max_steps
    }

    /// Whether greedy validation runs after optimizer step `step` (every `eval_steps`, and the
    /// last, so a run always ends with a figure to compare).
    pub fn validation_due(&self, step: usize) -> bool {
        self.eval_steps > 0 && (step.is_multiple_of(self.eval_steps) || step == self.max_steps)
    }

    /// Completions consumed by one optimizer step.
    pub fn generation_batch_size(&self) -> usize {
        self.per_device_train_batch_size * self.gradient_accumulation_steps
    }
}

/// Serde default of flags that were added on (so older checkpoints' configs still load).
fn default_true() -> bool {
    true
}

/// Resolves preset → optional TOML file → `key=value` overrides, then validates.
///
/// The file is merged key by key over the preset, so it may set only a few keys.
/// Override values are parsed as TOML values (`beta=0.01`, `use_dora=false`,
/// `lora_target_modules=["q_proj"]`); a bare word that is not valid TOML is taken as
/// a string (`loss_type=token-mean`).
pub fn resolve(
    algo: Algo,
    file: Option<&Path>,
    overrides: &[String],
) -> Result<TrainConfig, RlError> {
    let preset = TrainConfig::preset(algo);
    let mut table = match toml::Value::try_from(&preset) {
        Ok(toml::Value::Table(t)) => t,
        _ => return Err(preset_not_a_table()),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| RlError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let in_file = |source| RlError::ConfigToml {
            layer: ConfigLayer::File(path.to_path_buf()),
            source: Box::new(source),
        };
        let layer: toml::Table = toml::from_str(&text).map_err(in_file)?;
        // Check keys and types of the file alone so errors point at the file.
        check_layer(&layer, &preset)?.map_err(in_file)?;
        if let Some(a) = layer.get("algo").and_then(|v| v.as_str()) {
            if a.parse::<Algo>()? != algo {
                return Err(RlError::AlgoConflict {
                    path: path.to_path_buf(),
                    file_algo: a.to_string(),
                });
            }
        }
        table.extend(layer);
    }
    for item in overrides {
        let (key, raw) = item
            .split_once('=')
            .ok_or_else(|| RlError::SetSyntax { item: item.clone() })?;
        let key = key.trim();
        let value = parse_value(raw.trim());
        let mut layer = toml::Table::new();
        layer.insert(key.to_string(), value);
        check_layer(&layer, &preset)?.map_err(|source| RlError::ConfigToml {
            layer: ConfigLayer::Set(item.clone()),
            source: Box::new(source),
        })?;
        table.extend(layer);
    }
    let cfg: TrainConfig =
        toml::Value::Table(table)
            .try_into()
            .map_err(|source| RlError::ConfigMerge {
                source: Box::new(source),
            })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Parses one `--set` value as TOML, falling back to a string.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

/// Deserialises `layer` over `base` to report unknown keys and type errors by key (the inner
/// result: the layer's fault; the outer one: the preset's).
fn check_layer(
    layer: &toml::Table,
    base: &TrainConfig,
) -> Result<Result<(), toml::de::Error>, RlError> {
    let mut merged = match toml::Value::try_from(base) {
        Ok(toml::Value::Table(t)) => t,
        _ => return Err(preset_not_a_table()),
    };
    merged.extend(layer.clone());
    Ok(toml::Value::Table(merged)
        .try_into::<TrainConfig>()
        .map(|_| ()))
}

/// A preset that does not serialise to a TOML table (a bug, not a user error).
fn preset_not_a_table() -> RlError {
    RlError::InvalidConfig {
        key: "algo",
        problem: "the preset is not a TOML table".into(),
    }
}

/// Flattens a toml error (which may span several lines with a caret) to one line.
pub(crate) fn one_line(e: &toml::de::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| "|^ ".contains(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_papers() {
        let g = TrainConfig::preset(Algo::Grpo);
        g.validate().unwrap();
        assert_eq!(
            (g.num_generations, g.beta, g.kl_estimator),
            (8, 0.001, KlEstimator::K3)
        );
        assert!(g.use_peft && g.use_dora && g.lora_r == 64 && g.lora_alpha == 64.0);
        assert_eq!(
            (
                g.learning_rate,
                g.max_prompt_length,
                g.max_completion_length
            ),
            (5e-5, 2048, 1024)
        );
        assert_eq!(g.reward_funcs, ["format", "es_star"]);
        let d = TrainConfig::preset(Algo::Dapo);
        d.validate().unwrap();
        assert_eq!(
            (d.epsilon, d.epsilon_high, d.delta),
            (0.2, 0.28, Some(10.0))
        );
        assert_eq!(
            (d.loss_type, d.beta, d.temperature, d.learning_rate),
            (LossType::TokenMean, 0.0, 1.0, 1e-6)
        );
        assert!(d.dynamic_sampling && d.max_num_gen_batches == 10 && !d.use_peft);
        assert!(d.overlong_buffer_len > 0);
    }

    #[test]
    fn saves_and_validation_fall_on_their_period_and_the_last_step() {
        let mut c = TrainConfig::preset(Algo::Grpo);
        (c.max_steps, c.save_steps, c.eval_steps) = (16, 10, 10);
        let due = |f: &dyn Fn(usize) -> bool| (1..=16).filter(|&s| f(s)).collect::<Vec<_>>();
        assert_eq!(due(&|s| c.checkpoint_due(s)), [10, 16]);
        assert_eq!(due(&|s| c.validation_due(s)), [10, 16]);
        c.eval_steps = 0;
        assert!(due(&|s| c.validation_due(s)).is_empty());
        (c.save_steps, c.eval_steps) = (0, 8);
        assert_eq!(due(&|s| c.checkpoint_due(s)), [16]);
        assert_eq!(due(&|s| c.validation_due(s)), [8, 16]);
    }

    #[test]
    fn printed_config_round_trips() {
        for algo in [Algo::Grpo, Algo::Dapo] {
            let c = TrainConfig::preset(algo);
            let back: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn file_layer_overrides_preset_and_set_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "beta = 0.05\nlora_r = 16\nclip_ratio_c = 3.0\n").unwrap();
        let c = resolve(
            Algo::Grpo,
            Some(&p),
            &["lora_r=8".into(), "loss_type=token-mean".into()],
        )
        .unwrap();
        assert_eq!((c.beta, c.lora_r, c.delta), (0.05, 8, Some(3.0)));
        assert_eq!(c.loss_type, LossType::TokenMean);
        assert_eq!(c.num_generations, 8); // untouched preset key
        let c = resolve(
            Algo::Dapo,
            None,
            &[
                "lora_target_modules=[\"q_proj\"]".into(),
                "use_peft=true".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.lora_target_modules, ["q_proj"]);
        assert!(c.use_peft);
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_key() {
        let e = resolve(Algo::Grpo, None, &["num_generation=4".into()]).unwrap_err();
        assert!(e.to_string().contains("num_generation"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "beta = 0.1\nlearning_rat = 1.0\n").unwrap();
        let e = resolve(Algo::Grpo, Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("learning_rat") && e.contains("c.toml"), "{e}");
    }

    #[test]
    fn bad_toml_names_file_and_line_and_bad_types_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "beta = 0.1\nlora_r = = 3\n").unwrap();
        let e = resolve(Algo::Grpo, Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("line 2"), "{e}");
        let e = resolve(Algo::Grpo, None, &["lora_r=abc".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lora_r"), "{e}");
        let e = resolve(Algo::Grpo, None, &["noequals".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key=value"), "{e}");
    }

    #[test]
    fn example_config_files_equal_their_presets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for (algo, file) in [(Algo::Grpo, "grpo.toml"), (Algo::Dapo, "dapo.toml")] {
            let c = resolve(algo, Some(&root.join(file)), &[]).unwrap();
            assert_eq!(c, TrainConfig::preset(algo), "{file}");
        }
    }

    #[test]
    fn validation_rejects_inconsistent_batches() {
        let e = resolve(
            Algo::Grpo,
            None,
            &[
                "per_device_train_batch_size=3".into(),
                "gradient_accumulation_steps=1".into(),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("multiple of num_generations"), "{e}");
        assert!(resolve(Algo::Dapo, None, &["delta=1.1".into()]).is_err());
        assert!(resolve(Algo::Grpo, None, &["reward_funcs=[\"bleu\"]".into()]).is_err());
    }

    #[test]
    fn sft_ignores_group_keys() {
        let odd = [
            "per_device_train_batch_size=3".to_string(),
            "gradient_accumulation_steps=1".to_string(),
        ];
        assert!(resolve(Algo::Sft, None, &odd).is_ok());
        let zero = ["per_device_train_batch_size=0".to_string()];
        assert!(resolve(Algo::Sft, None, &zero).is_err());
    }

    #[test]
    fn errors_tell_the_cause_apart_by_variant() {
        let set = |kv: &str| resolve(Algo::Grpo, None, &[kv.to_string()]).unwrap_err();
        assert!(matches!(
            set("num_generation=4"),
            RlError::ConfigToml { layer: ConfigLayer::Set(item), .. } if item == "num_generation=4"
        ));
        assert!(matches!(set("noequals"), RlError::SetSyntax { .. }));
        assert!(matches!(
            set("delta=1.1"),
            RlError::InvalidConfig { key: "delta", .. }
        ));
        assert!(matches!(
            set("reward_funcs=[\"bleu\"]"),
            RlError::UnknownComponent { name } if name == "bleu"
        ));
        let missing = Path::new("/nonexistent/recode.toml");
        assert!(matches!(
            resolve(Algo::Grpo, Some(missing), &[]).unwrap_err(),
            RlError::ConfigRead { path, .. } if path == missing
        ));
        assert!(matches!(
            "ppo".parse::<Algo>().unwrap_err(),
            RlError::UnknownAlgo { value } if value == "ppo"
        ));
    }
}
