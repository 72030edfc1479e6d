//! `recode train`, `recode sft`, `recode merge` (being built).

/// Arguments of `recode train`.
#[derive(clap::Args)]
pub struct TrainArgs {}
/// Arguments of `recode sft`.
#[derive(clap::Args)]
pub struct SftArgs {}
/// Arguments of `recode merge`.
#[derive(clap::Args)]
pub struct MergeArgs {}

/// Runs `recode train`.
pub fn run_train(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("recode train is not built yet")
}
/// Runs `recode sft`.
pub fn run_sft(_args: SftArgs) -> anyhow::Result<()> {
    anyhow::bail!("recode sft is not built yet")
}
/// Runs `recode merge`.
pub fn run_merge(_args: MergeArgs) -> anyhow::Result<()> {
    anyhow::bail!("recode merge is not built yet")
}
