//! `recode bench`: each benchmark runs recode and a peer side by side and reports the ratio.
//! The benchmark bodies live in the owning subcommand's module; this only dispatches.

/// Benchmarks, one per capability.
#[derive(clap::Subcommand)]
pub enum BenchCommand {}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {}
}
