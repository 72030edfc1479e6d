//! What several commands share: the model to load (`--model`, else `$RECODE_SMOLLM2_GGUF`) and
//! loading it (as weights to train or generate with, or as an evaluation generator), and the
//! sandbox and executor-pool options of the commands that run programs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use recode_eval::executor::ExecConfig;
use recode_eval::generate::{GenError, LocalGenerator};
use recode_eval::gitchameleon::exec::PoolSettings;
use recode_eval::gitchameleon::plan::TIMEOUT_SECS;
use recode_eval::setup::{default_venv_dir, ready_python};
use recode_model::candle_core::{DType, Device};
use recode_model::LoadedModel;

/// The environment variable naming the default model (what `scripts/setup.sh` installs).
const DEFAULT_MODEL_ENV: &str = "RECODE_SMOLLM2_GGUF";

/// The model to load: `--model` if given, else `$RECODE_SMOLLM2_GGUF`, else an error saying so.
pub fn model_spec(model: &Option<String>) -> anyhow::Result<String> {
    match model {
        Some(m) => Ok(m.clone()),
        None => std::env::var(DEFAULT_MODEL_ENV).with_context(|| {
            format!("no --model given and ${DEFAULT_MODEL_ENV} is not set (scripts/setup.sh downloads SmolLM2)")
        }),
    }
}

/// Loads `spec` (GGUF file, HF directory, full fine-tuning checkpoint or hub id) on CPU in f32
/// and, when given, folds a PEFT adapter directory into its weights; logs the load time.
pub fn load_model(spec: &str, adapter: Option<&Path>) -> anyhow::Result<LoadedModel> {
    let t = Instant::now();
    let mut m = recode_rl::lm::load_lm(spec, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading model {spec}"))?;
    if let Some(dir) = adapter {
        m.model
            .load_adapters(dir)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
        m.model.merge_adapters()?;
    }
    tracing::info!(
        model = spec,
        secs = t.elapsed().as_secs_f64(),
        "model loaded"
    );
    Ok(m)
}

/// The local model as a completion source for evaluation and serving (`recode-eval`'s loader:
/// the model's chat template, an optional merged adapter, `batch` prompts per call); logs the
/// load time.
pub fn load_generator(
    spec: &str,
    adapter: Option<&Path>,
    batch: usize,
) -> Result<LocalGenerator, GenError> {
    let t = Instant::now();
    let g = LocalGenerator::load(spec, adapter, batch)?;
    tracing::info!(
        model = spec,
        secs = t.elapsed().as_secs_f64(),
        "model loaded"
    );
    Ok(g)
}

/// The number of cores: the default number of workers, jobs and fork servers.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The switch every command that runs untrusted code has.
#[derive(clap::Args, Clone, Debug)]
pub struct SandboxArgs {
    /// Run untrusted programs even where this machine permits no sandbox (no namespaces, e.g.
    /// not root and no user namespaces). DANGEROUS: programs can then read and write your files.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
}

/// Executor options shared by the commands that run benchmark programs in the sandboxed pool.
#[derive(clap::Args, Clone)]
pub struct ExecArgs {
    /// Eval virtualenv [default: $RECODE_EVAL_VENV or ~/.cache/recode/venv-eval].
    #[arg(long)]
    pub venv: Option<PathBuf>,
    /// Use this interpreter instead of the venv's (must have the benchmark's packages).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Fork servers (one per core is the benchmark's setting) [default: number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// In-program timer, seconds (benchmark: 15).
    #[arg(long, default_value_t = 15.0)]
    pub timeout: f64,
    /// Hard kill of the process group, seconds (benchmark: 16).
    #[arg(long, default_value_t = 16.0)]
    pub hard_timeout: f64,
    /// Memory of one program with all its processes, GiB; also the address space each process
    /// may add above the server's (0 = unlimited; keep ≥ 4).
    #[arg(long, default_value_t = 6.0)]
    pub mem_gb: f64,
    /// Host path programs may read (repeatable). Programs see only the system libraries, the
    /// interpreter and its virtualenv, and these paths; nothing else of the host.
    #[arg(long = "read-only", value_name = "PATH")]
    pub read_only: Vec<PathBuf>,
    /// Pass this variable of recode's environment into programs (repeatable). By default they
    /// get none: the environment is built from an allow-list, so no API key or token leaks.
    #[arg(long = "sandbox-env", value_name = "NAME")]
    pub sandbox_env: Vec<String>,
    /// Sandbox switch.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

impl ExecArgs {
    /// The pool of CodeUpdateArena and HumanEval: the eval venv's interpreter (or `--python`).
    pub fn config(&self) -> anyhow::Result<ExecConfig> {
        let python = match &self.python {
            Some(p) => p.clone(),
            None => {
                let venv = self.venv.clone().unwrap_or_else(default_venv_dir);
                ready_python(&venv)?
            }
        };
        let mut cfg = ExecConfig::new(python, self.workers());
        cfg.timeout_secs = self.timeout;
        cfg.hard_timeout_secs = self.hard_timeout;
        cfg.cpu_seconds = self.hard_timeout.ceil() as u64 + 4;
        cfg.address_space_bytes = self.memory_bytes();
        cfg.memory_bytes = cfg.address_space_bytes;
        cfg.read_only_paths = self.read_only.clone();
        cfg.pass_env = self.sandbox_env.clone();
        cfg.allow_unsandboxed = self.sandbox.unsafe_no_sandbox;
        Ok(cfg)
    }

    /// The pool of GitChameleon (per-problem environments; the fork server runs on `--python`,
    /// else an interpreter found for it; the harness's timeout).
    pub fn pool_settings(&self) -> anyhow::Result<PoolSettings> {
        let server_python = match &self.python {
            Some(p) => p.clone(),
            None => recode_eval::gitchameleon::setup::server_python()
                .context("finding an interpreter for the sandbox's fork server")?,
        };
        Ok(PoolSettings {
            server_python,
            workers: self.workers(),
            memory_bytes: self.memory_bytes(),
            read_only: self.read_only.clone(),
            pass_env: self.sandbox_env.clone(),
            allow_unsandboxed: self.sandbox.unsafe_no_sandbox,
            timeout_secs: TIMEOUT_SECS,
        })
    }

    fn workers(&self) -> usize {
        self.workers.unwrap_or_else(cores)
    }

    fn memory_bytes(&self) -> u64 {
        (self.mem_gb * (1u64 << 30) as f64) as u64
    }
}
