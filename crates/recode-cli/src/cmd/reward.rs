//! `recode reward` (being built).

/// Subcommands of `recode reward`.
#[derive(clap::Subcommand)]
pub enum RewardCommand {}

/// Runs a `recode reward` subcommand.
pub fn run(cmd: RewardCommand) -> anyhow::Result<()> {
    match cmd {}
}
