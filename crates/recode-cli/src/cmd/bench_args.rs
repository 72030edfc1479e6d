//! `recode bench`: the arguments of each side-by-side benchmark and the dispatch to
//! `recode-bench`, which runs them; the JSON report is printed last on stdout (and written to
//! `--out`).

use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::common::{model_spec, ExecArgs};

/// Benchmarks, one per capability; each prints recode's figures next to a peer's and the ratio.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// `recode data stats` vs an equivalent Python script (json + ast), same file.
    Data(BenchDataArgs),
    /// Reward scoring: recode (1 thread, all cores) vs Python references (paper, rapidfuzz).
    Reward(BenchRewardArgs),
    /// Generation throughput and memory vs Hugging Face transformers on the same weights.
    Generate(BenchGenerateArgs),
    /// Seconds per GRPO step and peak memory vs TRL GRPOTrainer + PEFT, same model and config.
    Train(BenchTrainArgs),
    /// Sandboxed executor throughput vs a fresh python per program and an unguarded fork parent.
    Eval(BenchEvalArgs),
}

/// Report options every `recode bench` subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOutput {
    /// Measure recode alone: no peer runs, no ratio is computed; the JSON says
    /// `"peer_free": true` and has recode's figures only.
    #[arg(long)]
    pub no_peer: bool,
    /// Also write the JSON figures here (they are always printed on stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `recode bench data`.
#[derive(clap::Args)]
pub struct BenchDataArgs {
    /// ReCode JSONL file to validate (default: $RECODE_DATA, else
    /// ../shared/data/recode/api_update.jsonl, else the hub dataset zjunlp/ReCode-Train-Data,
    /// fetched once; see recode_data::datasets).
    pub data: Option<PathBuf>,
    /// Timed repetitions of each side (the best is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Python interpreter for the peer (default: the dev venv of scripts/setup.sh).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Peer and report options.
    #[command(flatten)]
    pub output: BenchOutput,
}

/// Arguments of `recode bench reward`.
#[derive(clap::Args)]
pub struct BenchRewardArgs {
    /// Number of generated completion/target pairs.
    #[arg(long, default_value_t = 20_000)]
    pub pairs: usize,
    /// Pairs scored by the (slow, pure Python) paper reference; its time is extrapolated.
    #[arg(long, default_value_t = 1_000)]
    pub reference_pairs: usize,
    /// Python interpreter with rapidfuzz: writes the pairs, runs (c) and (d) (default: the dev
    /// venv, $RECODE_VENV/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Repository root (holds python/tests/test_reward_parity.py).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// HTTP part: seconds of load on the in-process server (0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub http_seconds: f64,
    /// HTTP part: concurrent keep-alive clients.
    #[arg(long, default_value_t = 32)]
    pub http_clients: usize,
    /// HTTP part: completion/target pairs per `/v1/score` request.
    #[arg(long, default_value_t = 64)]
    pub http_batch: usize,
    /// HTTP part: stop after this many requests even if time remains.
    #[arg(long, default_value_t = 100_000)]
    pub http_max_requests: usize,
    /// Peer and report options (`--no-peer` skips (c) and (d); the pairs still come from the
    /// Python generator).
    #[command(flatten)]
    pub output: BenchOutput,
}

/// Arguments of `recode bench generate`.
#[derive(clap::Args, Debug)]
pub struct BenchGenerateArgs {
    /// Model (default: $RECODE_SMOLLM2_GGUF).
    #[arg(long)]
    pub model: Option<String>,
    /// Prompts: `recode` renders real ReCode training prompts as rollouts see them (the first
    /// of 250-500 tokens in --data), `chat` uses short built-in chat questions.
    #[arg(long, value_enum, default_value_t = GeneratePrompts::Recode)]
    pub prompts: GeneratePrompts,
    /// ReCode data for `--prompts recode` (default: $RECODE_DATA, else
    /// ../shared/data/recode/api_update.jsonl, else the hub dataset zjunlp/ReCode-Train-Data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Prompts in the sampled batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// New tokens per completion (eos ignored so every run generates exactly this many).
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Timed repetitions of each run on every side; the median prefill and decode times are
    /// reported (a 2-core machine moves single runs by 10-25 %).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Python with torch + transformers + gguf for the peer (default: the venv that
    /// scripts/setup-bench.sh makes, $RECODE_BENCH_VENV or ~/.cache/recode/venv-bench).
    #[arg(long)]
    pub peer_python: Option<PathBuf>,
    /// Peer and report options.
    #[command(flatten)]
    pub output: BenchOutput,
}

/// Prompt sets of `recode bench generate`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GeneratePrompts {
    /// Real ReCode training prompts (250-500 tokens).
    Recode,
    /// Short chat questions.
    Chat,
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
    pub output: BenchOutput,
}

/// Arguments of `recode bench eval`.
#[derive(clap::Args)]
pub struct BenchEvalArgs {
    /// CodeUpdateArena JSONL file.
    #[arg(long)]
    pub data: PathBuf,
    /// N examples spread evenly over the file, every package represented (the fresh-interpreter
    /// peer pays numpy/torch imports per program: ~0.3 s each).
    #[arg(long, default_value_t = 40)]
    pub limit: usize,
    /// Executor options (also used by the peers: interpreter, workers, timeouts).
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Peer and report options.
    #[command(flatten)]
    pub output: BenchOutput,
}

/// Runs a benchmark and emits its report.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Data(a) => {
            let o = recode_bench::data::Options {
                data: a.data,
                repeat: a.repeat,
                python: a.python,
                no_peer: a.output.no_peer,
            };
            emit(
                recode_bench::data::NAME,
                recode_bench::data::run(&o)?,
                &a.output,
            )
        }
        BenchCommand::Reward(a) => run_reward(a),
        BenchCommand::Generate(a) => {
            let prompts = match a.prompts {
                GeneratePrompts::Chat => recode_bench::generate::PromptSource::Chat,
                GeneratePrompts::Recode => recode_bench::generate::PromptSource::Recode(a.data),
            };
            let o = recode_bench::generate::Options {
                prompts,
                model: model_spec(&a.model)?,
                batch: a.batch,
                new_tokens: a.new_tokens,
                repeats: a.repeats as usize,
                peer_python: a.peer_python,
                no_peer: a.output.no_peer,
            };
            let report = recode_bench::generate::run(&o)?;
            emit(recode_bench::generate::NAME, report, &a.output)
        }
        BenchCommand::Train(a) => {
            let o = recode_bench::train::Options {
                recode: std::env::current_exe().context("locating the recode binary")?,
                model: model_spec(&a.model)?,
                data: a.data,
                steps: a.steps,
                num_generations: a.num_generations,
                max_completion_length: a.max_completion_length,
                lora_r: a.lora_r,
                peer_python: a.peer_python,
                no_peer: a.output.no_peer,
            };
            emit(
                recode_bench::train::NAME,
                recode_bench::train::run(&o)?,
                &a.output,
            )
        }
        BenchCommand::Eval(a) => {
            let o = recode_bench::eval::Options {
                data: a.data,
                limit: a.limit,
                exec: a.exec.config()?,
                no_peer: a.output.no_peer,
            };
            emit(
                recode_bench::eval::NAME,
                recode_bench::eval::run(&o)?,
                &a.output,
            )
        }
    }
}

/// `recode bench reward` (also reachable as `recode reward bench`).
pub fn run_reward(a: BenchRewardArgs) -> anyhow::Result<()> {
    let http = if a.http_seconds > 0.0 {
        Some(recode_bench::reward::HttpOptions {
            duration: std::time::Duration::try_from_secs_f64(a.http_seconds)
                .context("--http-seconds must be a finite number of seconds")?,
            clients: a.http_clients,
            batch: a.http_batch,
            max_requests: a.http_max_requests,
        })
    } else {
        None
    };
    let o = recode_bench::reward::Options {
        pairs: a.pairs,
        reference_pairs: a.reference_pairs,
        python: a.python,
        repo: a.repo,
        http,
        no_peer: a.output.no_peer,
    };
    emit(
        recode_bench::reward::NAME,
        recode_bench::reward::run(&o)?,
        &a.output,
    )
}

fn emit(name: &str, report: serde_json::Value, output: &BenchOutput) -> anyhow::Result<()> {
    recode_bench::emit_report(name, report, output.no_peer, output.out.as_deref())?;
    Ok(())
}
