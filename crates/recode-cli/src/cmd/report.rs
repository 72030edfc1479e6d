//! `recode report` (being built).

/// Subcommands of `recode report`.
#[derive(clap::Subcommand)]
pub enum ReportCommand {}

/// Runs a `recode report` subcommand.
pub fn run(cmd: ReportCommand) -> anyhow::Result<()> {
    match cmd {}
}
