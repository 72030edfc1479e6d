//! `recode serve`: HTTP services (reward scoring for OpenRLHF / verl).

use anyhow::Result;
use recode_reward::{Mode, RewardKind};
use std::net::IpAddr;

/// Subcommands of `recode serve`.
#[derive(clap::Subcommand)]
pub enum ServeCommand {
    /// Reward service: OpenRLHF `POST /get_reward`, `POST /v1/score`, `/health`, `/metrics`.
    Reward(ServeRewardArgs),
}

/// Arguments of `recode serve reward`.
#[derive(clap::Args)]
pub struct ServeRewardArgs {
    /// Port to listen on; 0 picks a free port. The bound address is printed on stderr as
    /// `recode reward server on http://ADDR`.
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Address to bind (use 0.0.0.0 to accept remote trainers).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Reward definition: `paper` or `fixed`.
    #[arg(long, default_value = "paper")]
    pub mode: Mode,
    /// Components summed into the returned reward.
    #[arg(long, default_value = "format,es_star")]
    pub reward: String,
    /// Largest accepted request body, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mb: usize,
}

/// Runs a `recode serve` subcommand (blocks until SIGTERM or ctrl-c).
pub fn run(cmd: ServeCommand) -> Result<()> {
    match cmd {
        ServeCommand::Reward(a) => {
            let config = recode_server::ServerConfig {
                addr: (a.host, a.port).into(),
                mode: a.mode,
                rewards: RewardKind::parse_list(&a.reward)?,
                max_body_bytes: a.max_body_mb.saturating_mul(1 << 20),
            };
            recode_server::run_blocking(config)?;
            Ok(())
        }
    }
}
