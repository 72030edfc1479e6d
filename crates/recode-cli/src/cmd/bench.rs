//! `recode bench`: each benchmark runs recode and a peer side by side and reports the ratio.
//! The benchmark bodies live in the owning subcommand's module; this only dispatches.

/// Benchmarks, one per capability; each prints recode's figures next to a peer's and the ratio.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// `recode data stats` vs an equivalent Python script (json + ast), same file.
    Data(crate::cmd::data::BenchDataArgs),
    /// Reward scoring: recode (1 thread, all cores) vs Python references (paper, rapidfuzz).
    Reward(crate::cmd::reward::BenchRewardArgs),
    /// Generation throughput and memory vs Hugging Face transformers on the same weights.
    Generate(crate::cmd::generate::BenchGenerateArgs),
    /// Seconds per GRPO step and peak memory vs TRL GRPOTrainer + PEFT, same model and config.
    Train(crate::cmd::train::BenchTrainArgs),
    /// Sandboxed executor throughput vs a fresh python per program and an unguarded fork parent.
    Eval(crate::cmd::eval::BenchEvalArgs),
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Data(a) => crate::cmd::data::bench_data(a),
        BenchCommand::Reward(a) => crate::cmd::reward::bench_reward(a),
        BenchCommand::Generate(a) => crate::cmd::generate::bench_generate(a),
        BenchCommand::Train(a) => crate::cmd::train::bench_train(a),
        BenchCommand::Eval(a) => crate::cmd::eval::bench_eval(a),
    }
}
