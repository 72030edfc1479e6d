//! `recode`: keep code LLMs current with library API changes through rule-based RL.
//!
//! Each subcommand lives in its own module under `cmd/` and owns one stage of the
//! pipeline: data → reward → generate → train → eval → report.

mod cmd;

use clap::{Parser, Subcommand};

/// Keep code LLMs current with library API changes (the ReCode method).
///
/// Typical flow:
///   recode data stats data.jsonl         inspect and validate the training set
///   recode data clean data.jsonl out.jsonl
///   recode data split out.jsonl --val 0.05
///   recode train --algo grpo --model M --data train.jsonl --output runs/x
///   recode eval run --bench codeupdatearena --model M --adapter runs/x/final
#[derive(Parser)]
#[command(name = "recode", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate, clean, split, render and export API-update data sets.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Score completions with ReCode's format + EM*/ES* rewards.
    #[command(subcommand)]
    Reward(cmd::reward::RewardCommand),
    /// Run HTTP services (reward scoring for OpenRLHF / verl).
    #[command(subcommand)]
    Serve(cmd::serve::ServeCommand),
    /// Generate text with a local model (GGUF or safetensors), optionally with an adapter.
    Generate(cmd::generate::GenerateArgs),
    /// Train with GRPO or DAPO (rule-based RL on API-update data).
    Train(cmd::train::TrainArgs),
    /// Supervised fine-tuning baseline on the ReCode answer format.
    Sft(cmd::train::SftArgs),
    /// Fold a LoRA/DoRA adapter into base weights and write safetensors.
    Merge(cmd::train::MergeArgs),
    /// Evaluate on CodeUpdateArena and HumanEval with sandboxed execution.
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Render HTML reports from training runs and evaluation results.
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
    /// Benchmarks that run recode side by side with a peer and report the ratio.
    #[command(subcommand)]
    Bench(cmd::bench_args::BenchCommand),
}

/// Candle's elementwise ops run on a thread pool of their own whose workers spin after each op,
/// beside rayon's pool (our kernels and the gemm); on a machine with few cores the two pools take
/// the cores from each other (a third of a GRPO step's CPU time went to spinning in perf, and
/// the learning phase took twice as long under load). One candle thread runs those ops inline on
/// the calling thread. Set before any thread exists; `CANDLE_NUM_THREADS` set by the user wins.
fn single_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

fn main() -> std::process::ExitCode {
    single_candle_pool();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::Reward(c) => cmd::reward::run(c),
        Command::Serve(c) => cmd::serve::run(c),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Train(a) => cmd::train::run_train(a),
        Command::Sft(a) => cmd::train::run_sft(a),
        Command::Merge(a) => cmd::train::run_merge(a),
        Command::Eval(c) => cmd::eval::run(c),
        Command::Report(c) => cmd::report::run(c),
        Command::Bench(c) => cmd::bench_args::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", recode_bench::error_line(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
