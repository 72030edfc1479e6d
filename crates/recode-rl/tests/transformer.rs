//! The trainers on a real transformer: a tiny random Llama / Qwen2 `CausalLM` from
//! `recode-model` behind `LmPolicy` + `LmSampler` (KV-cache generation, adapters merged for
//! decoding), with a word-level tokenizer built here. GRPO (LoRA) and DAPO (every weight)
//! raise a synthetic reward; the KL term is exactly 0 with fresh adapters; resume continues
//! exactly; SFT masks the prompt and its adapter directory restarts RL (`--init-adapter`).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recode_model::{Arch, CausalLM, ForwardOpts, LogitsMode, ModelConfig, RopeScaling, Tokenizer};
use recode_rl::checkpoint::latest_checkpoint;
use recode_rl::lm::{adapter_config, LmPolicy, LmSampler};
use recode_rl::sft::{nll_gradients, SftExample, SftTrainer};
use recode_rl::tiny::TargetTokenReward;
use recode_rl::trainer::{build_batch, ValidationSample};
use recode_rl::{
    Algo, Completion, KlReference, Policy, PromptItem, RolloutSource, SamplingParams, StepMetrics,
    TrainConfig, Trainer,
};

/// Vocabulary: 0 = `<eos>`, 1 = `<unk>`, 2.. = `t2`, `t3`, …
const VOCAB: usize = 16;
const EOS: u32 = 0;
/// The token the synthetic reward pays for (fraction of completion tokens equal to it).
const TARGET: u32 = 5;

type LmTrainer = Trainer<LmPolicy, LmSampler, TargetTokenReward>;

fn tiny_config(arch: Arch) -> ModelConfig {
    ModelConfig {
        arch,
        vocab_size: VOCAB,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rope_theta: 10_000.0,
        rope_scaling: RopeScaling::None,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        attention_bias: arch == Arch::Qwen2,
        max_position_embeddings: 128,
    }
}

/// N(0, std²) values from a seeded stream (candle's CPU `randn` cannot be seeded).
fn normal(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// A tiny random model of `arch`; the same `seed` always gives the same weights.
fn tiny_model(arch: Arch, seed: u64) -> CausalLM {
    let c = tiny_config(arch);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, shape: &[usize], std: f64, rng: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        let v = if std == 0.0 {
            vec![1f32; n]
        } else {
            normal(rng, n, std)
        };
        t.insert(name, Tensor::from_vec(v, shape, &dev).unwrap());
    };
    let (hs, im) = (c.hidden_size, c.intermediate_size);
    let (qd, kd) = (
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
    );
    put(
        "model.embed_tokens.weight".into(),
        &[VOCAB, hs],
        0.2,
        &mut rng,
    );
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        put(format!("{p}.input_layernorm.weight"), &[hs], 0.0, &mut rng);
        put(
            format!("{p}.post_attention_layernorm.weight"),
            &[hs],
            0.0,
            &mut rng,
        );
        for (name, out, inp) in [
            ("self_attn.q_proj", qd, hs),
            ("self_attn.k_proj", kd, hs),
            ("self_attn.v_proj", kd, hs),
            ("self_attn.o_proj", hs, qd),
            ("mlp.gate_proj", im, hs),
            ("mlp.up_proj", im, hs),
            ("mlp.down_proj", hs, im),
        ] {
            put(format!("{p}.{name}.weight"), &[out, inp], 0.15, &mut rng);
            if c.attention_bias
                && ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(&name)
            {
                put(format!("{p}.{name}.bias"), &[out], 0.05, &mut rng);
            }
        }
    }
    put("model.norm.weight".into(), &[hs], 0.0, &mut rng);
    CausalLM::from_tensors(c, t, DType::F32, &dev).unwrap()
}

/// A word-level tokenizer over the tiny vocabulary (`tokenizer.json` written and loaded).
fn tiny_tokenizer() -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<eos>".into(), 0.into());
    vocab.insert("<unk>".into(), 1.into());
    for i in 2..VOCAB {
        vocab.insert(format!("t{i}"), i.into());
    }
    let spec = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 0, "content": "<eos>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), spec.to_string()).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"eos_token": "<eos>"}"#,
    )
    .unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), VOCAB);
    assert_eq!(tok.eos_ids(), [EOS]);
    assert_eq!(tok.encode("t2 t5 t9").unwrap(), [2, 5, 9]);
    tok
}

/// Eight random prompts of 2–4 ordinary tokens (generated from a seed, not copied).
fn prompts() -> Vec<PromptItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    (0..8)
        .map(|_| {
            let len = rng.random_range(2..=4);
            PromptItem {
                tokens: (0..len)
                    .map(|_| rng.random_range(2..VOCAB as u32))
                    .collect(),
                target: String::new(),
                old_code: String::new(),
            }
        })
        .collect()
}

/// Small-batch settings shared by every run here (everything else is the preset's).
fn config(algo: Algo, seed: u64) -> TrainConfig {
    let mut c = TrainConfig::preset(algo);
    c.num_generations = 8;
    c.per_device_train_batch_size = 8;
    c.gradient_accumulation_steps = 2;
    c.max_completion_length = 6;
    c.max_prompt_length = 16;
    c.lora_r = 4;
    c.lora_alpha = 8.0;
    // Adapter dropout off unless a test turns it on (its masks are then seeded by `policy`).
    c.lora_dropout = 0.0;
    c.warmup_ratio = 0.0;
    c.save_steps = 0;
    c.eval_steps = 0;
    c.logging_steps = 0;
    c.seed = seed;
    c
}

/// The policy `cfg` asks for on a fresh tiny model, as `recode train` builds it.
fn policy(cfg: &TrainConfig, arch: Arch) -> LmPolicy {
    let model = tiny_model(arch, 7);
    let mut p = if cfg.use_peft {
        LmPolicy::with_new_adapters(model, adapter_config(cfg), cfg.seed, "tiny").unwrap()
    } else {
        let reference = (cfg.beta > 0.0).then(|| tiny_model(arch, 7));
        LmPolicy::full(model, reference, "tiny").unwrap()
    };
    p.set_temperature(cfg.temperature);
    // As `recode train` does: seeded dropout masks, so runs (and resumes) repeat exactly.
    p.set_training_options(false, cfg.seed);
    p
}

fn trainer(cfg: TrainConfig, arch: Arch) -> LmTrainer {
    let p = policy(&cfg, arch);
    Trainer::new(
        cfg,
        p,
        LmSampler::new(tiny_tokenizer()),
        TargetTokenReward { target: TARGET },
        prompts(),
    )
    .unwrap()
}

fn mean_reward(ms: &[StepMetrics]) -> f64 {
    ms.iter().map(|m| m.rollout.reward_mean).sum::<f64>() / ms.len() as f64
}

/// Trains `steps` steps for a few seeds; the mean reward of the last 5 steps must clearly
/// exceed that of the first 5.
fn assert_learns(label: &str, arch: Arch, steps: usize, edit: impl Fn(&mut TrainConfig)) {
    for seed in [11, 22, 33] {
        let mut cfg = config(
            if label.starts_with("DAPO") {
                Algo::Dapo
            } else {
                Algo::Grpo
            },
            seed,
        );
        cfg.max_steps = steps;
        edit(&mut cfg);
        let t0 = std::time::Instant::now();
        let ms = trainer(cfg, arch).train().unwrap();
        let (first, last) = (mean_reward(&ms[..5]), mean_reward(&ms[ms.len() - 5..]));
        eprintln!(
            "{label} seed {seed}: reward {first:.3} (steps 1-5) → {last:.3} (last 5), {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        assert!(
            last > first + 0.25,
            "{label} seed {seed}: reward {first:.3} → {last:.3} did not rise enough"
        );
        assert!(ms
            .iter()
            .all(|m| m.loss.is_finite() && m.grad_norm.is_finite() && m.kl.is_finite()));
    }
}

#[test]
fn grpo_lora_raises_synthetic_reward_on_tiny_llama() {
    assert_learns("GRPO LoRA llama", Arch::Llama, 30, |c| {
        c.use_dora = false;
        c.learning_rate = 3e-2;
    });
}

#[test]
fn dapo_full_parameter_raises_synthetic_reward_on_tiny_qwen2() {
    assert_learns("DAPO full qwen2", Arch::Qwen2, 30, |c| {
        assert!(!c.use_peft && c.dynamic_sampling);
        c.learning_rate = 1e-2;
        c.overlong_buffer_len = 2;
        c.overlong_penalty_factor = 0.1;
    });
}

#[test]
fn kl_is_exactly_zero_at_step_one_with_fresh_adapters() {
    for use_dora in [false, true] {
        let mut cfg = config(Algo::Grpo, 5);
        cfg.use_dora = use_dora;
        cfg.beta = 0.04;
        cfg.lora_dropout = 0.05; // the preset's dropout: B = 0 makes it irrelevant at step 1
        cfg.learning_rate = 3e-2;
        cfg.max_steps = 3;
        let mut t = trainer(cfg, Arch::Llama);
        let m1 = t.train_step().unwrap();
        assert!(
            m1.kl.abs() < 1e-6,
            "dora={use_dora}: KL {} at step 1",
            m1.kl
        );
        assert_eq!(m1.kl, 0.0, "dora={use_dora}: KL not exactly zero");
        // The term is live: once B moved, the policy drifts from the adapters-off reference.
        t.train_step().unwrap();
        let m3 = t.train_step().unwrap();
        assert!(
            m3.kl > 0.0,
            "dora={use_dora}: KL {} after two updates",
            m3.kl
        );
    }
}

/// Metrics without wall-clock fields.
fn comparable(mut m: StepMetrics) -> StepMetrics {
    m.timing = Default::default();
    m
}

fn vars_of(p: &LmPolicy) -> Vec<(String, Vec<f32>)> {
    p.trainable_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

/// Runs `cfg` uninterrupted with a checkpoint every step, then resumes a fresh trainer from
/// `checkpoint-<at>`: the remaining steps' metrics and the final weights must be identical.
fn assert_resume_exact(cfg: TrainConfig, arch: Arch, at: u64) {
    let dir_a = tempfile::tempdir().unwrap();
    let mut full_t = trainer(cfg.clone(), arch)
        .with_output(dir_a.path())
        .unwrap();
    let full = full_t.train().unwrap();
    assert_eq!(full.len(), cfg.max_steps);
    let ckpt = dir_a.path().join(format!("checkpoint-{at}"));
    assert!(ckpt.join("trainer_state.json").is_file());

    let dir_b = tempfile::tempdir().unwrap();
    let mut resumed = trainer(cfg.clone(), arch)
        .with_output(dir_b.path())
        .unwrap()
        .resume(&ckpt)
        .unwrap();
    assert_eq!(resumed.step_count(), at);
    let rest = resumed.train().unwrap();
    assert_eq!(rest.len(), cfg.max_steps - at as usize);
    for (a, b) in full[at as usize..].iter().zip(rest) {
        assert_eq!(comparable(a.clone()), comparable(b), "step {}", a.step);
    }
    assert_eq!(vars_of(full_t.policy()), vars_of(resumed.policy()));
    let last = latest_checkpoint(dir_b.path()).unwrap();
    assert!(last.ends_with(format!("checkpoint-{}", cfg.max_steps)));
}

#[test]
fn resume_is_exact_grpo_dora_with_kl_mid_rollout_batch() {
    let mut cfg = config(Algo::Grpo, 3);
    assert!(cfg.use_peft && cfg.use_dora && cfg.beta > 0.0);
    cfg.learning_rate = 3e-2;
    cfg.num_iterations = 2; // checkpoint-3 lies half-way through a rollout batch
    cfg.max_steps = 6;
    cfg.save_steps = 1;
    cfg.warmup_ratio = 0.2;
    assert_resume_exact(cfg, Arch::Qwen2, 3);
}

#[test]
fn resume_is_exact_with_adapter_dropout() {
    let mut cfg = config(Algo::Grpo, 5);
    cfg.use_dora = false;
    cfg.lora_dropout = 0.3;
    cfg.learning_rate = 3e-2;
    cfg.max_steps = 5;
    cfg.save_steps = 1;
    // The dropout masks matter: another mask seed gives another run.
    let run = |seed: u64| {
        let mut t = trainer(cfg.clone(), Arch::Llama);
        t.policy_mut().set_training_options(false, seed);
        t.train()
            .unwrap()
            .into_iter()
            .map(comparable)
            .collect::<Vec<_>>()
    };
    assert_ne!(
        run(1),
        run(2),
        "dropout had no effect; the test would prove nothing"
    );
    assert_resume_exact(cfg, Arch::Llama, 2);
}

#[test]
fn resume_is_exact_dapo_full_parameter_dynamic_sampling() {
    let mut cfg = config(Algo::Dapo, 4);
    assert!(!cfg.use_peft && cfg.dynamic_sampling);
    cfg.learning_rate = 1e-2;
    cfg.max_steps = 5;
    cfg.save_steps = 1;
    cfg.overlong_buffer_len = 2;
    assert_resume_exact(cfg, Arch::Llama, 2);
}

/// Mean completion-token cross-entropy computed independently: one unpadded forward per
/// example, log-softmax over the logits by hand, completion targets only.
fn reference_nll(model: &CausalLM, data: &[SftExample]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for ex in data {
        let ids: Vec<u32> = ex.prompt.iter().chain(&ex.completion).copied().collect();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = model
            .forward(&t, None, None, LogitsMode::All, ForwardOpts::INFERENCE)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        for pos in ex.prompt.len()..ids.len() {
            let row = &logits[pos - 1];
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            sum += lse - row[ids[pos] as usize];
            n += 1;
        }
    }
    sum / n as f64
}

fn sft_data() -> Vec<SftExample> {
    vec![
        SftExample {
            prompt: vec![2, 3, 4],
            completion: vec![7, 8, 9, EOS],
        },
        SftExample {
            prompt: vec![6, 11],
            completion: vec![10, 12, EOS],
        },
    ]
}

fn logprobs(p: &LmPolicy, data: &[SftExample]) -> Vec<Vec<f32>> {
    let comps: Vec<Completion> = data
        .iter()
        .map(|e| Completion {
            tokens: e.completion.clone(),
            text: String::new(),
            truncated: false,
        })
        .collect();
    let seqs: Vec<(&[u32], &Completion)> = data
        .iter()
        .map(|e| e.prompt.as_slice())
        .zip(&comps)
        .collect();
    let batch = build_batch(&seqs, false, &Device::Cpu).unwrap();
    p.rollout_logprobs(&batch).unwrap().to_vec2().unwrap()
}

#[test]
fn sft_masks_prompt_learns_and_its_adapter_restarts_rl() {
    let mut cfg = config(Algo::Sft, 9);
    assert!(cfg.use_peft);
    cfg.num_generations = 2; // unused by SFT, but must divide the batch
    cfg.per_device_train_batch_size = 1; // two micro-batches of one example each
    cfg.gradient_accumulation_steps = 2;
    cfg.learning_rate = 2e-2;
    cfg.max_steps = 15;
    let data = sft_data();
    let mut p = policy(&cfg, Arch::Qwen2);
    p.set_temperature(1.0);

    // Completion-only loss on a padded batch equals the independent per-example CE.
    let expect = reference_nll(p.model(), &data);
    let comps: Vec<Completion> = data
        .iter()
        .map(|e| Completion {
            tokens: e.completion.clone(),
            text: String::new(),
            truncated: false,
        })
        .collect();
    let seqs: Vec<(&[u32], &Completion)> = data
        .iter()
        .map(|e| e.prompt.as_slice())
        .zip(&comps)
        .collect();
    let batch = build_batch(&seqs, false, &Device::Cpu).unwrap();
    for mb in [1, 2] {
        let (loss, tokens, _) = nll_gradients(&p, &batch, mb).unwrap();
        assert_eq!(tokens, 7);
        assert!(
            (loss - expect).abs() < 1e-5,
            "mb={mb}: masked loss {loss} vs independent CE {expect}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let mut sft = SftTrainer::new(cfg.clone(), p, data.clone())
        .unwrap()
        .with_output(dir.path())
        .unwrap();
    let mut losses = Vec::new();
    sft.train(|m| losses.push(m.loss)).unwrap();
    assert!(
        (losses[0] - expect).abs() < 1e-5,
        "{} vs {expect}",
        losses[0]
    );
    eprintln!(
        "SFT loss {:.4} → {:.4}",
        losses[0],
        losses[losses.len() - 1]
    );
    assert!(
        losses[losses.len() - 1] < 0.5 * losses[0],
        "SFT loss did not fall: {losses:?}"
    );
    assert!(losses.iter().all(|l| l.is_finite()));

    // `--init-adapter`: the checkpoint's PEFT directory on a fresh base reproduces the policy.
    let ckpt = latest_checkpoint(dir.path()).unwrap();
    assert!(ckpt.ends_with(format!("checkpoint-{}", cfg.max_steps)));
    assert!(ckpt.join("adapter_model.safetensors").is_file());
    assert!(ckpt.join("adapter_config.json").is_file());
    let from_sft = |reference| {
        let mut p =
            LmPolicy::with_adapter_dir(tiny_model(Arch::Qwen2, 7), &ckpt, "tiny", reference)
                .unwrap();
        p.set_temperature(1.0);
        p
    };
    let init = from_sft(KlReference::Base);
    assert_eq!(logprobs(&init, &data), logprobs(sft.policy(), &data));
    assert_eq!(vars_of(&init), vars_of(sft.policy()));

    // RL continues from it. With `kl_reference = "base"` the reference has adapters off, so
    // the SFT adapter's own distance makes KL > 0 at step 1; with `"init"` the reference is
    // the SFT policy itself: KL is exactly 0 until the first update, then positive.
    let mut rl_cfg = config(Algo::Grpo, 9);
    rl_cfg.max_steps = 2;
    rl_cfg.learning_rate = 1e-2;
    for reference in [KlReference::Base, KlReference::Init] {
        let mut init = from_sft(reference);
        init.set_temperature(rl_cfg.temperature);
        let mut rl = Trainer::new(
            rl_cfg.clone(),
            init,
            LmSampler::new(tiny_tokenizer()),
            TargetTokenReward { target: TARGET },
            prompts(),
        )
        .unwrap();
        let ms = rl.train().unwrap();
        let kl: Vec<f64> = ms.iter().map(|m| m.kl).collect();
        match reference {
            KlReference::Base => assert!(kl[0] > 1e-6, "{reference:?}: {kl:?}"),
            KlReference::Init => assert!(kl[0] == 0.0 && kl[1] > 0.0, "{reference:?}: {kl:?}"),
        }
        assert!(ms.iter().all(|m| m.loss.is_finite()));
        assert_ne!(vars_of(rl.policy()), vars_of(sft.policy()));
    }
}

#[test]
fn validation_writes_each_prompts_completion_and_scores() {
    let mut cfg = config(Algo::Grpo, 5);
    cfg.use_dora = false;
    cfg.max_steps = 2;
    cfg.eval_steps = 2;
    let dir = tempfile::tempdir().unwrap();
    let mut t = trainer(cfg, Arch::Llama)
        .with_output(dir.path())
        .unwrap()
        .with_validation(prompts());
    let ms = t.train().unwrap();
    assert!(ms[0].validation.is_none());
    let v = ms[1].validation.as_ref().expect("validated at step 2");
    assert!(!dir.path().join("validation/step-1.jsonl").exists());
    let text = std::fs::read_to_string(dir.path().join("validation/step-2.jsonl")).unwrap();
    let rows: Vec<ValidationSample> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), prompts().len());
    assert_eq!(rows, v.samples);
    assert!(rows.iter().enumerate().all(|(i, r)| r.index == i));
    // The per-prompt lines average to the figures in metrics.jsonl.
    let n = rows.len() as f64;
    for (name, mean) in &v.reward_components {
        let from_rows = rows.iter().map(|r| r.reward_components[name]).sum::<f64>() / n;
        assert!(
            (from_rows - mean).abs() < 1e-12,
            "{name}: {from_rows} vs {mean}"
        );
    }
    for (name, rate) in &v.indicators {
        let from_rows = rows.iter().map(|r| r.indicators[name]).sum::<f64>() / n;
        assert!(
            (from_rows - rate).abs() < 1e-12,
            "{name}: {from_rows} vs {rate}"
        );
    }
    let len = rows.iter().map(|r| r.completion_tokens).sum::<usize>() as f64 / n;
    assert!((len - v.completion_len_mean).abs() < 1e-12);
    // Validation is deterministic: running it again on the final policy repeats every line.
    let again = t.validate().unwrap();
    assert_eq!(again.samples, rows);
}

#[test]
fn greedy_completions_do_not_depend_on_how_many_rows_decode_together() {
    // Validation decodes many prompts per generation call; each prompt's greedy completion
    // must be what it would be decoded alone (rows finish and leave the batch at different
    // steps, prompts have different lengths).
    let cfg = config(Algo::Grpo, 11);
    let p = policy(&cfg, Arch::Qwen2);
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 6,
    };
    let decode = |rows: usize| {
        let mut s = LmSampler::new(tiny_tokenizer());
        s.max_rows_per_call = rows;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        s.generate(&p, &prompts(), 1, &params, &mut rng).unwrap()
    };
    let alone = decode(1);
    assert_eq!(alone.len(), prompts().len());
    for rows in [3, 64] {
        let together = decode(rows);
        for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(a.tokens, b.tokens, "prompt {i}, {rows} rows per call");
        }
    }
}

#[test]
fn progress_hook_counts_every_completion_and_changes_none() {
    // Step-0 validation shows a bar through the sampler's hook: it must end with every row
    // counted, advance monotonically, and leave the completions as they are without it.
    let cfg = config(Algo::Grpo, 12);
    let p = policy(&cfg, Arch::Qwen2);
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 6,
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let decode = |hooked: bool| {
        let mut s = LmSampler::new(tiny_tokenizer());
        s.max_rows_per_call = 3;
        if hooked {
            let seen = seen.clone();
            s.set_progress(Some(Box::new(move |d| seen.lock().unwrap().push(*d))));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        s.generate(&p, &prompts(), 2, &params, &mut rng).unwrap()
    };
    let plain = decode(false);
    assert!(seen.lock().unwrap().is_empty());
    let hooked = decode(true);
    for (a, b) in plain.iter().zip(&hooked) {
        assert_eq!(a.tokens, b.tokens);
    }
    let seen = seen.lock().unwrap();
    let last = seen.last().expect("progress reported");
    assert_eq!(last.rows_total, prompts().len() * 2);
    assert_eq!(last.rows_done, last.rows_total);
    assert!(last.tokens <= plain.iter().map(|c| c.tokens.len() + 1).sum::<usize>());
    assert!(seen
        .windows(2)
        .all(|w| w[0].rows_done <= w[1].rows_done && w[0].tokens <= w[1].tokens));
    assert!(
        seen.iter().all(|d| !d.validation),
        "rollouts are not validation"
    );
}

#[test]
fn validation_decoding_is_reported_as_validation() {
    let cfg = config(Algo::Grpo, 13);
    let mut t = trainer(cfg, Arch::Qwen2).with_validation(prompts());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    t.source_mut()
        .set_progress(Some(Box::new(move |d| hook_seen.lock().unwrap().push(*d))));
    t.validate().unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty() && seen.iter().all(|d| d.validation));
    assert_eq!(seen.last().unwrap().rows_done, prompts().len());
}
