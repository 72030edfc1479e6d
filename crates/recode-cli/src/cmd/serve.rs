//! `recode serve`: HTTP services: reward scoring for OpenRLHF / verl, and an OpenAI-compatible
//! chat completions endpoint over the local model runtime.

use anyhow::{Context, Result};
use recode_data::ChatMessage;
use recode_eval::generate::LocalGenerator;
use recode_model::{FinishReason, SamplingParams};
use recode_reward::{Mode, RewardKind};
use recode_server::chat::{ChatBackend, ChatOutput, ChatRequest, Choice};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Subcommands of `recode serve`.
#[derive(clap::Subcommand)]
pub enum ServeCommand {
    /// Reward service: OpenRLHF `POST /get_reward`, `POST /v1/score`, `/health`, `/metrics`.
    Reward(ServeRewardArgs),
    /// OpenAI-compatible `POST /v1/chat/completions` (+ `/v1/models`, `/health`) over a local
    /// model and optional adapter: what `recode eval run --endpoint` and other OpenAI clients
    /// talk to.
    Model(ServeModelArgs),
}

/// Arguments of `recode serve model`.
#[derive(clap::Args)]
pub struct ServeModelArgs {
    /// Model: a .gguf file, a directory with config.json + safetensors, or a HF hub id
    /// (default: $RECODE_SMOLLM2_GGUF).
    #[arg(long)]
    pub model: Option<String>,
    /// PEFT adapter directory merged into the weights before serving.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Model id clients send as `model` (default: the file or directory name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Port to listen on; 0 picks a free port. The bound address is printed on stderr as
    /// `recode model server on http://ADDR`.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind (use 0.0.0.0 to accept remote clients).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// New-token limit when a request sets no `max_tokens`.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Base seed for requests that send none (each such request gets the next one).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The local model runtime behind the chat service.
struct LocalChat {
    generator: LocalGenerator,
    id: String,
    max_tokens: usize,
    next_seed: AtomicU64,
}

impl ChatBackend for LocalChat {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn complete(&self, req: &ChatRequest) -> Result<ChatOutput, String> {
        let messages: Vec<ChatMessage> = req
            .messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let sp = SamplingParams {
            temperature: req.temperature,
            top_p: req.top_p,
            max_new_tokens: req.max_tokens.unwrap_or(self.max_tokens),
            stop_strings: req.stop.clone(),
            seed: req
                .seed
                .unwrap_or_else(|| self.next_seed.fetch_add(1, Ordering::Relaxed)),
            n: req.n,
            ..Default::default()
        };
        let (mut outs, prompt_tokens) = self
            .generator
            .complete(&[messages], &sp)
            .map_err(|e| e.to_string())?;
        outs.sort_by_key(|c| c.sample_index);
        Ok(ChatOutput {
            choices: outs
                .into_iter()
                .map(|c| Choice {
                    truncated: matches!(c.finish_reason, FinishReason::Length),
                    completion_tokens: c.token_ids.len(),
                    text: c.text,
                })
                .collect(),
            prompt_tokens: prompt_tokens.first().copied().unwrap_or(0),
        })
    }
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
        ServeCommand::Model(a) => {
            let spec = crate::cmd::common::model_spec(&a.model)?;
            let id = a.served_model_name.unwrap_or_else(|| {
                std::path::Path::new(&spec)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| spec.clone())
            });
            eprintln!("loading {spec}");
            let generator = crate::cmd::common::load_generator(&spec, a.adapter.as_deref(), 1)
                .with_context(|| format!("loading {spec}"))?;
            let backend = Arc::new(LocalChat {
                generator,
                id,
                max_tokens: a.max_tokens,
                next_seed: AtomicU64::new(a.seed),
            });
            let app = recode_server::chat::router(backend, 16 << 20);
            recode_server::run_router_blocking((a.host, a.port).into(), app, "model server")?;
            Ok(())
        }
    }
}
