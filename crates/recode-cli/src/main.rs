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

/// candle asks for its thread count before every matmul (the gemm's parallelism): from
/// `RAYON_NUM_THREADS`, or else by parsing `/proc/cpuinfo` for the physical cores, anew each
/// time, thousands of times a GRPO step (~10% of its learning phase went to the kernel formatting
/// that file). Setting the variable once to the same count (physical cores, at most the CPUs
/// this process may use) keeps the gemm's threads and skips the file. The rayon pool (our
/// kernels) then has as many workers. Set before any thread exists; a value set by the user wins.
fn fixed_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = num_cpus::get_physical().clamp(1, allowed);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Runs `f` on a worker of rayon's pool (the caller waits): the parallel kernels `f` starts then
/// split work with the other workers directly, instead of waking the pool and sleeping until it
/// is done each time (thousands of times a training step).
fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

fn main() -> std::process::ExitCode {
    single_candle_pool();
    fixed_thread_count();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::Reward(c) => cmd::reward::run(c),
        Command::Serve(c) => cmd::serve::run(c),
        Command::Generate(a) => on_worker(|| cmd::generate::run(a)),
        Command::Train(a) => on_worker(|| cmd::train::run_train(a)),
        Command::Sft(a) => on_worker(|| cmd::train::run_sft(a)),
        Command::Merge(a) => on_worker(|| cmd::train::run_merge(a)),
        Command::Eval(c) => on_worker(|| cmd::eval::run(c)),
        Command::Report(c) => cmd::report::run(c),
        Command::Bench(c) => on_worker(|| cmd::bench_args::run(c)),
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
