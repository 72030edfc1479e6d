//! `recode generate` (being built).

/// Arguments of `recode generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {}

/// Runs `recode generate`.
pub fn run(_args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("recode generate is not built yet")
}
