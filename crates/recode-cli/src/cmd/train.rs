//! `recode train` (GRPO/DAPO), `recode sft`, `recode merge`.
//!
//! Both trainers share the configuration (presets, `--config`, `--set`,
//! `--print-config`), model loading, data preparation, validation split, progress
//! display and run-directory layout (`config.toml`, `metrics.jsonl`, `checkpoint-N/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use recode_model::LoadedModel;
use recode_rl::checkpoint::latest_checkpoint;
use recode_rl::lm::{adapter_config, DecodeProgress, LmPolicy, LmSampler, ProgressHook};
use recode_rl::sft::{SftExample, SftTrainer};
use recode_rl::task::{chat_template_of, prompt_items, sft_pair, RecodeRewarder};
use recode_rl::trainer::validate;
use recode_rl::{Algo, KlReference, PromptItem, RlError, TrainConfig, Trainer, ValidationMetrics};

use crate::cmd::common::{load_model, model_spec};

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
    let spec = model_spec(&a.model)?;
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
    let loaded = load_model(&spec, None)?;
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
            Some(load_model(&p.spec, None)?.model)
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

/// Shows greedy validation's decoding in the step bar's message during training (rollouts leave
/// the message alone; the next step's figures replace it).
fn show_validation(bar: &indicatif::ProgressBar) -> ProgressHook {
    let bar = bar.clone();
    Box::new(move |d: &DecodeProgress| {
        if d.validation {
            bar.set_message(format!(
                "validating: {}/{} prompts, {} tokens",
                d.rows_done, d.rows_total, d.tokens
            ));
        }
    })
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
    trainer
        .source_mut()
        .set_progress(Some(show_validation(&bar)));
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
    let bar = progress(p.cfg.max_steps, 0, args.run.quiet);
    sampler.set_progress(Some(show_validation(&bar)));
    let validator: recode_rl::sft::Validator<LmPolicy> =
        Box::new(move |pol| validate(pol, &mut sampler, &rewarder, &val, max_new));
    let mut trainer = SftTrainer::new(p.cfg.clone(), policy, data)?
        .with_output(&p.output)?
        .with_validator(validator);
    if let Some(ckpt) = &p.resume {
        trainer = trainer.resume(ckpt)?;
    }
    bar.set_position(trainer.step_count());
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
    let m = load_model(&model_spec(&args.model)?, Some(adapter))?;
    let tensors: std::collections::HashMap<String, _> =
        m.model.named_parameters()?.into_iter().collect();
    let tmp = output.with_extension("safetensors.tmp");
    recode_rl::checkpoint::save_tensors(&tmp, &tensors)?;
    std::fs::rename(&tmp, output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    eprintln!("wrote {} tensors to {}", tensors.len(), output.display());
    Ok(())
}
