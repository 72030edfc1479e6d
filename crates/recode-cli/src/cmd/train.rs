//! `recode train` (GRPO/DAPO), `recode sft`, `recode merge`.
//!
//! The configuration side is complete (presets, `--config`, `--set`,
//! `--print-config`); running training needs the model runtime (`recode-model`),
//! which is not connected to the trainer yet, so those paths fail with a clear
//! message instead of pretending to train.

use std::path::PathBuf;

use anyhow::Context;
use recode_rl::{checkpoint::latest_checkpoint, Algo};

/// Arguments of `recode train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Preset to start from: `grpo` (ReCode paper GRPO) or `dapo`.
    #[arg(long, default_value = "grpo", value_parser = ["grpo", "dapo"])]
    pub algo: String,
    /// TOML file whose keys override the preset (TRL GRPOConfig / PEFT key names).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Override one key after the file, e.g. `--set beta=0.01 --set use_dora=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Base model: local GGUF/safetensors path or HF hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// Training data (ReCode JSONL, see `recode data`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory for checkpoints and metrics.jsonl.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Resume from a checkpoint directory or a run directory (its latest checkpoint).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start RL from an existing adapter (e.g. from `recode sft`).
    #[arg(long, value_name = "DIR")]
    pub init_adapter: Option<PathBuf>,
}

/// Arguments of `recode sft`.
#[derive(clap::Args, Debug)]
pub struct SftArgs {
    /// Base model: local GGUF/safetensors path or HF hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// Training data (ReCode JSONL).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory for the adapter, checkpoints and metrics.
    #[arg(long)]
    pub output: Option<PathBuf>,
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

/// Message for every path that needs the model runtime.
const NOT_CONNECTED: &str =
    "the model runtime (recode-model) is not yet connected to the trainer; \
     this build can only resolve and print configurations (`recode train --print-config`)";

/// Runs `recode train`.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let algo: Algo = args.algo.parse()?;
    let cfg = recode_rl::resolve(algo, args.config.as_deref(), &args.set)?;
    if args.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let checkpoint = match &args.resume {
        Some(dir) => Some(resolve_resume(dir)?),
        None => None,
    };
    if args.model.is_none() || args.data.is_none() || args.output.is_none() {
        anyhow::bail!("recode train needs --model, --data and --output (or --print-config)");
    }
    tracing::info!(?checkpoint, init_adapter = ?args.init_adapter, model = ?args.model, "configuration resolved");
    anyhow::bail!("cannot start training: {NOT_CONNECTED}")
}

/// A checkpoint directory, or the latest complete checkpoint inside a run directory.
fn resolve_resume(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if dir.join(recode_rl::checkpoint::STATE_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    latest_checkpoint(dir)
        .with_context(|| format!("--resume {}: no complete checkpoint found", dir.display()))
}

/// Runs `recode sft`.
pub fn run_sft(args: SftArgs) -> anyhow::Result<()> {
    let SftArgs {
        model,
        data,
        output,
    } = args;
    anyhow::bail!(
        "cannot start SFT (model {model:?}, data {data:?}, output {output:?}): {NOT_CONNECTED}"
    )
}

/// Runs `recode merge`.
pub fn run_merge(args: MergeArgs) -> anyhow::Result<()> {
    let MergeArgs {
        model,
        adapter,
        output,
    } = args;
    anyhow::bail!(
        "cannot merge (model {model:?}, adapter {adapter:?}, output {output:?}): {NOT_CONNECTED}"
    )
}
