//! `recode serve` (being built).

/// Subcommands of `recode serve`.
#[derive(clap::Subcommand)]
pub enum ServeCommand {}

/// Runs a `recode serve` subcommand.
pub fn run(cmd: ServeCommand) -> anyhow::Result<()> {
    match cmd {}
}
