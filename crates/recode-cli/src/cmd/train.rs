//! `recode train` (GRPO/DAPO), `recode sft`, `recode merge`.
//!
//! Both trainers share the configuration (presets, `--config`, `--set`,
//! `--print-config`), model loading, data preparation, validation split, progress
//! display and run-directory layout (`config.toml`, `metrics.jsonl`, `checkpoint-N/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use recode_model::candle_core::{DType, Device};
use recode_model::LoadedModel;
use recode_rl::checkpoint::latest_checkpoint;
use recode_rl::lm::{adapter_config, load_lm, DecodeProgress, LmPolicy, LmSampler};
use recode_rl::sft::{SftExample, SftTrainer};
use recode_rl::task::{chat_template_of, prompt_items, sft_pair, RecodeRewarder};
use recode_rl::trainer::validate;
use recode_rl::{Algo, KlReference, PromptItem, RlError, TrainConfig, Trainer, ValidationMetrics};

/// Flags shared by `recode train` and `recode sft`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// TOML file whose keys override the preset (TRL GRPOConfig / PEFT key names).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Override one key after the file, e.g. `--set beta=0.01 --set use_dora=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Base model: a GGUF file, a local HF directory, a full fine-tuning checkpoint (e.g. of
    /// `recode sft --set use_peft=false`), or a hub id (default: $RECODE_SMOLLM2_GGUF).
    #[arg(long)]
    pub model: Option<String>,
    /// Training data: ReCode JSONL/Parquet path or HF dataset id (clean it with `recode data clean`).
    #[arg(long)]
    pub data: Option<String>,
    /// Held-out data for validation; default: `--val-fraction` of `--data`, split by dependency.
    #[arg(long)]
    pub val_data: Option<String>,
    /// Fraction of `--data` held out for validation when `--val-data` is absent (0 = none).
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Validate on at most this many held-out prompts (greedy decoding is the slow part on CPU).
    #[arg(long, default_value_t = 32)]
    pub val_limit: usize,
    /// Run directory for config.toml, metrics.jsonl and checkpoints.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Resume from a checkpoint directory or a run directory (its latest checkpoint). The
    /// resolved configuration must equal the checkpoint's config.toml, except save_steps,
    /// eval_steps, logging_steps, eval_on_start, gradient_checkpointing and max_steps (the last
    /// only while the learning rates of the steps taken stay the same: constant schedule, same
    /// warm-up); otherwise the resume is refused, naming every differing key, before anything
    /// is written.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// With --resume: resume even though keys that change the training differ from the
    /// checkpoint's configuration (the new values apply from the next step).
    #[arg(long, requires = "resume")]
    pub force: bool,
    /// Start from an existing PEFT adapter (e.g. `recode sft` output) instead of a fresh one.
    /// The KL term then anchors to this starting policy (`kl_reference = "init"`, as verl);
    /// `--set kl_reference='"base"'` anchors to the base model instead (TRL with PEFT).
    #[arg(long, value_name = "DIR")]
    pub init_adapter: Option<PathBuf>,
    /// No progress bar (logs only).
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `recode train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Preset to start from: `grpo` (ReCode paper GRPO) or `dapo`.
    #[arg(long, default_value = "grpo", value_parser = ["grpo", "dapo"])]
    pub algo: String,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Arguments of `recode sft`.
#[derive(clap::Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// Arguments of `recode merge`.
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Base model weights.
    #[arg(long)]
    pub model: Option<String>,
    /// Adapter directory to fold in.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Output safetensors path.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// A checkpoint directory, or the latest complete checkpoint inside a run directory.
fn resolve_resume(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if dir.join(recode_rl::checkpoint::STATE_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    latest_checkpoint(dir)
        .with_context(|| format!("--resume {}: no complete checkpoint found", dir.display()))
}

/// Refuses (before anything is written) to resume from `ckpt` when keys that change the
/// training differ from its configuration, unless `force`; logs the changes it lets through.
fn check_resume_config(ckpt: &Path, cfg: &TrainConfig, force: bool) -> anyhow::Result<()> {
    let changes = if force {
        let (old, _) = recode_rl::resume::checkpoint_config(ckpt)?;
        recode_rl::resume::config_changes(&old, cfg)
    } else {
        match recode_rl::resume::check_resume(ckpt, cfg) {
            Ok(changes) => changes,
            Err(e @ RlError::ResumeConfigChanged { .. }) => bail!(
                "{e}\n(resume with the checkpoint's settings: --config {}, or override with --force)",
                ckpt.join("config.toml").display()
            ),
            Err(e) => return Err(e.into()),
        }
    };
    for c in changes {
        eprintln!("resuming with a changed key: {c}");
    }
    Ok(())
}

/// Everything both trainers prepare before their loop.
struct Prepared {
    cfg: TrainConfig,
    loaded: LoadedModel,
    spec: String,
    output: PathBuf,
    train_rows: Vec<recode_data::Row>,
    val_rows: Vec<recode_data::Row>,
    source: String,
    resume: Option<PathBuf>,
}

fn prepare(algo: Algo, a: &RunArgs) -> anyhow::Result<Option<Prepared>> {
    let cfg = recode_rl::resolve(algo, a.config.as_deref(), &a.set)?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(None);
    }
    let resume = a.resume.as_deref().map(resolve_resume).transpose()?;
    if let Some(ckpt) = &resume {
        check_resume_config(ckpt, &cfg, a.force)?;
    }
    let (Some(data), Some(output)) = (&a.data, &a.output) else {
        bail!("needs --data and --output (or --print-config)");
    };
    let spec = crate::cmd::generate::model_spec(&a.model)?;
    let opts = recode_data::LoadOptions::default();
    let ds = recode_data::load(data, opts).with_context(|| format!("loading --data {data}"))?;
    let (train_rows, val_rows) = match &a.val_data {
        Some(v) => {
            let vd =
                recode_data::load(v, opts).with_context(|| format!("loading --val-data {v}"))?;
            (ds.rows, vd.rows)
        }
        None if a.val_fraction > 0.0 => {
            let ex: Vec<_> = ds.rows.iter().map(|r| r.example.clone()).collect();
            let sp = recode_data::split::split(&ex, a.val_fraction, cfg.seed)?;
            let pick = |idx: &[usize]| idx.iter().map(|&i| ds.rows[i].clone()).collect::<Vec<_>>();
            (pick(&sp.train), pick(&sp.val))
        }
        None => (ds.rows, Vec::new()),
    };
    let val_rows = val_rows.into_iter().take(a.val_limit).collect();
    let t = std::time::Instant::now();
    let loaded = load_lm(&spec, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading model {spec}"))?;
    tracing::info!(model = %spec, secs = t.elapsed().as_secs_f64(), "model loaded");
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    recode_data::atomic::write_atomic(&output.join("config.toml"), cfg.to_toml().as_bytes())
        .with_context(|| format!("writing {}/config.toml", output.display()))?;
    Ok(Some(Prepared {
        cfg,
        loaded,
        spec,
        output: output.clone(),
        train_rows,
        val_rows,
        source: data.clone(),
        resume,
    }))
}

/// The policy the config asks for: adapters (fresh or `--init-adapter`) or every weight.
fn build_policy(p: &Prepared, init_adapter: Option<&PathBuf>) -> anyhow::Result<LmPolicy> {
    let model = p.loaded.model.clone();
    let mut policy = if let Some(dir) = init_adapter {
        if !p.cfg.use_peft {
            bail!("--init-adapter needs use_peft = true");
        }
        // Without the KL term no reference pass runs: skip the frozen copy of the adapter.
        let reference = if p.cfg.beta > 0.0 {
            p.cfg.kl_reference
        } else {
            KlReference::Base
        };
        LmPolicy::with_adapter_dir(model, dir, &p.spec, reference)?
    } else if p.cfg.use_peft {
        LmPolicy::with_new_adapters(model, adapter_config(&p.cfg), p.cfg.seed, &p.spec)?
    } else {
        // Full fine-tuning: a separately loaded frozen copy is the KL reference.
        let reference = if p.cfg.beta > 0.0 {
            Some(load_lm(&p.spec, DType::F32, &Device::Cpu)?.model)
        } else {
            None
        };
        LmPolicy::full(model, reference, &p.spec)?
    };
    policy.set_temperature(p.cfg.temperature);
    policy.set_training_options(p.cfg.gradient_checkpointing, p.cfg.seed);
    Ok(policy)
}

fn progress(total: usize, done: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

fn val_summary(v: &ValidationMetrics) -> String {
    let es = v
        .reward_components
        .get("es_star")
        .copied()
        .unwrap_or(f64::NAN);
    let em = v.indicators.get("exact_match").copied().unwrap_or(f64::NAN);
    let fmt = v.indicators.get("format_ok").copied().unwrap_or(f64::NAN);
    format!("val es*={es:.3} em={em:.3} format={fmt:.3}")
}

/// A bar over the held-out prompts while greedy validation decodes them (hidden like the step
/// bar: with `--quiet`, or when stderr is not a terminal).
fn validation_progress(
    sampler: &mut LmSampler,
    prompts: usize,
    quiet: bool,
) -> indicatif::ProgressBar {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(prompts as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} validating step 0: {pos}/{len} prompts, {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("prefill");
    let shown = bar.clone();
    sampler.set_progress(Some(Box::new(move |d: &DecodeProgress| {
        shown.set_position(d.rows_done as u64);
        shown.set_message(format!("{} tokens", d.tokens));
    })));
    bar
}

/// Greedy validation of the untrained starting point, written to `validation_start.json`.
fn validate_start(
    p: &Prepared,
    policy: &LmPolicy,
    sampler: &mut LmSampler,
    rewarder: &RecodeRewarder,
    val: &[PromptItem],
    quiet: bool,
) -> anyhow::Result<()> {
    if val.is_empty() || p.resume.is_some() || !p.cfg.eval_on_start {
        return Ok(());
    }
    let bar = validation_progress(sampler, val.len(), quiet);
    let v = validate(policy, sampler, rewarder, val, p.cfg.max_completion_length);
    sampler.set_progress(None);
    bar.finish_and_clear();
    let v = v?;
    eprintln!("step 0: {}", val_summary(&v));
    let path = p.output.join("validation_start.json");
    recode_data::atomic::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    v.write_samples(&p.output, 0)?;
    Ok(())
}

/// The held-out prompts, sampler and rewarder (training components plus format and ES*) of
/// greedy validation, with the starting point already validated (shared by `train` and `sft`).
fn validation_setup(
    p: &Prepared,
    policy: &LmPolicy,
    quiet: bool,
) -> anyhow::Result<(Vec<PromptItem>, LmSampler, RecodeRewarder)> {
    let tok = &p.loaded.tokenizer;
    let template = chat_template_of(tok)?;
    let val = prompt_items(
        &p.val_rows,
        &p.source,
        &template,
        tok,
        p.cfg.max_prompt_length,
    )?;
    let mut sampler = LmSampler::new(tok.clone());
    let rewarder = RecodeRewarder::for_validation(&p.cfg)?;
    validate_start(p, policy, &mut sampler, &rewarder, &val, quiet)?;
    Ok((val, sampler, rewarder))
}

/// Runs `recode train`.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let algo: Algo = args.algo.parse()?;
    let Some(p) = prepare(algo, &args.run)? else {
        return Ok(());
    };
    let policy = build_policy(&p, args.run.init_adapter.as_ref())?;
    let tok = &p.loaded.tokenizer;
    let template = chat_template_of(tok)?;
    let prompts = prompt_items(
        &p.train_rows,
        &p.source,
        &template,
        tok,
        p.cfg.max_prompt_length,
    )?;
    let (val, sampler, rewarder) = validation_setup(&p, &policy, args.run.quiet)?;
    eprintln!(
        "training {} on {} prompts ({} held out) → {}",
        algo_name(algo),
        prompts.len(),
        val.len(),
        p.output.display()
    );
    let train_rewarder = RecodeRewarder::from_config(&p.cfg)?;
    let mut trainer = Trainer::new(p.cfg.clone(), policy, sampler, train_rewarder, prompts)?
        .with_output(&p.output)?
        .with_validation(val)
        .with_validation_rewarder(rewarder);
    if let Some(ckpt) = &p.resume {
        trainer = trainer.resume(ckpt)?;
    }
    let bar = progress(p.cfg.max_steps, trainer.step_count(), args.run.quiet);
    trainer.train_with(|m| {
        let mut msg = format!(
            "reward {:.3} kept {:.2} kl {:.4} {:.1} tok/s",
            m.rollout.reward_mean,
            m.rollout.filter.kept_fraction(),
            m.kl,
            m.timing.tokens_per_s
        );
        if let Some(v) = &m.validation {
            msg.push_str(&format!(" | {}", val_summary(v)));
            bar.println(format!("step {}: {}", m.step, val_summary(v)));
        }
        bar.set_message(msg);
        bar.set_position(m.step);
    })?;
    bar.finish();
    eprintln!(
        "done: {} steps; metrics in {}/metrics.jsonl",
        trainer.step_count(),
        p.output.display()
    );
    Ok(())
}

fn algo_name(a: Algo) -> &'static str {
    match a {
        Algo::Grpo => "GRPO",
        Algo::Dapo => "DAPO",
        Algo::Sft => "SFT",
    }
}

/// Tokenised SFT pairs; the completion ends with the end-of-turn token so the model learns to stop.
fn sft_examples(p: &Prepared) -> anyhow::Result<Vec<SftExample>> {
    let tok = &p.loaded.tokenizer;
    let template = chat_template_of(tok)?;
    let eos = tok.eos.first().map(|e| e.1);
    p.train_rows
        .iter()
        .map(|row| {
            let at = || format!("{}:{}", p.source, row.line);
            let (prompt, completion) = sft_pair(&row.example, &template).with_context(at)?;
            let mut prompt = tok.encode(&prompt).with_context(at)?;
            if prompt.len() > p.cfg.max_prompt_length {
                prompt.drain(..prompt.len() - p.cfg.max_prompt_length);
            }
            let mut completion = tok.encode(&completion).with_context(at)?;
            completion.truncate(p.cfg.max_completion_length.saturating_sub(1));
            completion.extend(eos);
            Ok(SftExample { prompt, completion })
        })
        .collect()
}

/// Runs `recode sft`.
pub fn run_sft(args: SftArgs) -> anyhow::Result<()> {
    let Some(p) = prepare(Algo::Sft, &args.run)? else {
        return Ok(());
    };
    let mut policy = build_policy(&p, args.run.init_adapter.as_ref())?;
    policy.set_temperature(1.0);
    let data = sft_examples(&p)?;
    let (val, mut sampler, rewarder) = validation_setup(&p, &policy, args.run.quiet)?;
    eprintln!(
        "SFT on {} examples ({} held out) → {}",
        data.len(),
        val.len(),
        p.output.display()
    );
    let max_new = p.cfg.max_completion_length;
    let validator: recode_rl::sft::Validator<LmPolicy> =
        Box::new(move |pol| validate(pol, &mut sampler, &rewarder, &val, max_new));
    let mut trainer = SftTrainer::new(p.cfg.clone(), policy, data)?
        .with_output(&p.output)?
        .with_validator(validator);
    if let Some(ckpt) = &p.resume {
        trainer = trainer.resume(ckpt)?;
    }
    let bar = progress(p.cfg.max_steps, trainer.step_count(), args.run.quiet);
    trainer.train(|m| {
        if let Some(v) = &m.validation {
            bar.println(format!("step {}: {}", m.step, val_summary(v)));
        }
        bar.set_message(format!("loss {:.4} lr {:.2e}", m.loss, m.lr));
        bar.set_position(m.step);
    })?;
    bar.finish();
    eprintln!(
        "done: {} steps; adapter in the last {}/checkpoint-N",
        trainer.step_count(),
        p.output.display()
    );
    Ok(())
}

/// Runs `recode merge`: folds an adapter into the base weights and writes safetensors
/// with Hugging Face tensor names.
pub fn run_merge(args: MergeArgs) -> anyhow::Result<()> {
    let (Some(adapter), Some(output)) = (&args.adapter, &args.output) else {
        bail!("recode merge needs --adapter DIR and --output FILE.safetensors");
    };
    let spec = crate::cmd::generate::model_spec(&args.model)?;
    let mut m = load_lm(&spec, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading model {spec}"))?;
    m.model
        .load_adapters(adapter)
        .with_context(|| format!("loading adapter {}", adapter.display()))?;
    m.model.merge_adapters()?;
    let tensors: std::collections::HashMap<String, _> =
        m.model.named_parameters().into_iter().collect();
    let tmp = output.with_extension("safetensors.tmp");
    recode_rl::checkpoint::save_tensors(&tmp, &tensors)?;
    std::fs::rename(&tmp, output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    eprintln!("wrote {} tensors to {}", tensors.len(), output.display());
    Ok(())
}

/// Arguments of `recode bench train`.
#[derive(clap::Args, Debug)]
pub struct BenchTrainArgs {
    /// Model (default: $RECODE_SMOLLM2_GGUF); the peer loads the same GGUF.
    #[arg(long)]
    pub model: Option<String>,
    /// ReCode JSONL whose first row is the prompt both trainers use (default: $RECODE_DATA, else
    /// ../shared/data/recode/api_update.jsonl, else the hub dataset zjunlp/ReCode-Train-Data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// GRPO steps per trainer; the first is a warm-up and is not averaged.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Completions per step (one prompt × G).
    #[arg(long, default_value_t = 8)]
    pub num_generations: usize,
    /// New tokens per completion.
    #[arg(long, default_value_t = 128)]
    pub max_completion_length: usize,
    /// LoRA rank on q,k,v,o (alpha = 2r).
    #[arg(long, default_value_t = 16)]
    pub lora_r: usize,
    /// Python with torch + transformers + TRL + PEFT for the peer (default: the venv of
    /// scripts/setup-bench.sh).
    #[arg(long)]
    pub peer_python: Option<PathBuf>,
    /// Peer and report options.
    #[command(flatten)]
    pub output: crate::cmd::bench::BenchOutput,
}

/// The peer side of `recode bench train` (TRL GRPOTrainer + PEFT).
const TRAIN_PEER_PY: &str = include_str!("../../../../python/bench/train_peer.py");

/// Peak RSS of the largest waited-for child process, bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc == 0 {
        usage.ru_maxrss as u64 * 1024
    } else {
        0
    }
}

/// Mean of `xs` after the first (warm-up) entry, or of all when there is only one.
fn mean_after_warmup(xs: &[f64]) -> f64 {
    let tail = if xs.len() > 1 { &xs[1..] } else { xs };
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// `recode bench train`: seconds per GRPO step (split into generate / score / learn) and peak
/// RSS of `recode train` vs TRL's GRPOTrainer with PEFT, same model, prompt, G, lengths and
/// LoRA, run one after the other from this command.
pub fn bench_train(args: BenchTrainArgs) -> anyhow::Result<()> {
    let spec = crate::cmd::generate::model_spec(&args.model)?;
    let peer_python = if args.output.no_peer {
        None
    } else {
        Some(crate::cmd::bench::bench_python(
            args.peer_python.as_deref(),
        )?)
    };
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    let data = match &args.data {
        Some(p) => p.clone(),
        None => recode_data::datasets::RECODE_TRAIN.default_file(std::path::Path::new("."))?,
    };
    let text =
        std::fs::read_to_string(&data).with_context(|| format!("reading {}", data.display()))?;
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{}: no rows", data.display()))?;
    let dir = tempfile::tempdir()?;
    let row = dir.path().join("row.jsonl");
    std::fs::write(&row, format!("{first}\n"))?;
    let exe = std::env::current_exe().context("locating the recode binary")?;
    let status = std::process::Command::new(&exe)
        .args(["data", "export", "--format", "trl-jsonl"])
        .arg(&row)
        .arg(dir.path().join("row.trl.jsonl"))
        .status()?;
    anyhow::ensure!(status.success(), "recode data export failed");

    let g = args.num_generations;
    let run_dir = dir.path().join("recode-run");
    let sets = [
        format!("max_steps={}", args.steps),
        format!("num_generations={g}"),
        format!("per_device_train_batch_size={g}"),
        "gradient_accumulation_steps=1".into(),
        format!("max_completion_length={}", args.max_completion_length),
        "use_dora=false".into(),
        format!("lora_r={}", args.lora_r),
        format!("lora_alpha={}", 2 * args.lora_r),
        "lora_dropout=0.0".into(),
        r#"lora_target_modules=["q_proj","k_proj","v_proj","o_proj"]"#.into(),
        "temperature=1.0".into(),
        "learning_rate=5e-5".into(),
        "beta=0.001".into(),
        format!("save_steps={}", args.steps + 1000),
        "eval_steps=0".into(),
    ];
    eprintln!(
        "recode train: {} steps, 1 prompt x {g} x {} tokens",
        args.steps, args.max_completion_length
    );
    let mut cmd = std::process::Command::new(&exe);
    cmd.args([
        "train",
        "--algo",
        "grpo",
        "--quiet",
        "--val-fraction",
        "0",
        "--model",
        &spec,
    ])
    .arg("--data")
    .arg(&row)
    .arg("--output")
    .arg(&run_dir);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    let t = std::time::Instant::now();
    let status = cmd.status().context("starting recode train")?;
    let recode_wall = t.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "recode train failed ({status})");
    let recode_rss = children_peak_rss();
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?;
    let steps: Vec<recode_rl::StepMetrics> = metrics
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing recode's metrics.jsonl")?;
    let col =
        |f: &dyn Fn(&recode_rl::StepMetrics) -> f64| -> Vec<f64> { steps.iter().map(f).collect() };
    let step_s = col(&|m| m.timing.generate_s + m.timing.score_s + m.timing.learn_s);
    let recode = serde_json::json!({
        "step_s": mean_after_warmup(&step_s),
        "generate_s": mean_after_warmup(&col(&|m| m.timing.generate_s)),
        "score_s": mean_after_warmup(&col(&|m| m.timing.score_s)),
        "learn_s": mean_after_warmup(&col(&|m| m.timing.learn_s)),
        "completion_len_mean": mean_after_warmup(&col(&|m| m.rollout.completion_len_mean)),
        "steps": step_s,
        "wall_s": recode_wall,
        "peak_rss_bytes": recode_rss,
    });
    eprintln!("recode: {recode}");
    let mut report = serde_json::json!({"model": spec, "recode": recode});
    if let Some(python) = peer_python {
        let peer = crate::cmd::bench::run_peer_script(
            &python,
            "train_peer.py",
            TRAIN_PEER_PY,
            &[
                "--model".into(),
                spec.clone(),
                "--data".into(),
                dir.path().join("row.trl.jsonl").display().to_string(),
                "--steps".into(),
                args.steps.to_string(),
                "--num-generations".into(),
                g.to_string(),
                "--max-completion-length".into(),
                args.max_completion_length.to_string(),
                "--lora-r".into(),
                args.lora_r.to_string(),
                "--lora-alpha".into(),
                (2 * args.lora_r).to_string(),
                "--threads".into(),
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .to_string(),
            ],
        )?;
        let peer_steps: Vec<f64> = peer["steps"]
            .as_array()
            .map(|v| v.iter().filter_map(|s| s["step_s"].as_f64()).collect())
            .unwrap_or_default();
        let peer_gen: Vec<f64> = peer["steps"]
            .as_array()
            .map(|v| v.iter().filter_map(|s| s["generate_s"].as_f64()).collect())
            .unwrap_or_default();
        let (ours, theirs) = (
            report["recode"]["step_s"].as_f64().unwrap_or(f64::NAN),
            mean_after_warmup(&peer_steps),
        );
        let peer_rss = peer["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN);
        eprintln!("\n               s/step  generate_s  peak RSS GB");
        eprintln!(
            "recode        {ours:>7.1}  {:>10.1}  {:>10.2}",
            report["recode"]["generate_s"].as_f64().unwrap_or(0.0),
            recode_rss as f64 / 1e9
        );
        eprintln!(
            "TRL + PEFT    {theirs:>7.1}  {:>10.1}  {:>10.2}",
            mean_after_warmup(&peer_gen),
            peer_rss / 1e9
        );
        eprintln!(
            "speed-up {:.2}x, memory {:.0}% of TRL's",
            theirs / ours,
            100.0 * recode_rss as f64 / peer_rss
        );
        report["trl"] = peer;
        report["trl"]["step_s_mean"] = serde_json::json!(theirs);
        report["trl"]["generate_s_mean"] = serde_json::json!(mean_after_warmup(&peer_gen));
        report["speedup_over_trl"] = serde_json::json!(theirs / ours);
        report["memory_fraction_of_trl"] = serde_json::json!(recode_rss as f64 / peer_rss);
    }
    crate::cmd::bench::emit_report("train", report, &args.output)
}
