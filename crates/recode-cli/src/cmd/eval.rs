//! `recode eval` (being built).

/// Subcommands of `recode eval`.
#[derive(clap::Subcommand)]
pub enum EvalCommand {}

/// Runs a `recode eval` subcommand.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {}
}
