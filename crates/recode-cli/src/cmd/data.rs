//! `recode data` (being built).

/// Subcommands of `recode data`.
#[derive(clap::Subcommand)]
pub enum DataCommand {}

/// Runs a `recode data` subcommand.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {}
}
