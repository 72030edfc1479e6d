//! `recode data mine | verify | synth`: dataset construction (issue 30), thin over
//! `recode-curate`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use recode_curate::candidate::write_jsonl;
use recode_curate::synth::{repair, synth, SynthOptions};
use recode_curate::{
    mine, verify, write_outputs, ApiChange, MineOptions, VerifyOptions, VerifyReport,
};
use recode_venv::EnvManager;

use crate::cmd::common::SandboxArgs;

/// Arguments of `recode data mine`.
#[derive(Args)]
pub struct MineArgs {
    /// Distribution name on PyPI (e.g. `packaging`).
    #[arg(long)]
    pub dist: String,
    /// The old released version (e.g. `21.3`).
    #[arg(long)]
    pub old: String,
    /// The new released version (e.g. `22.0`).
    #[arg(long)]
    pub new: String,
    /// Only these modules (repeatable); default: every public module of the distribution.
    #[arg(long = "module")]
    pub modules: Vec<String>,
    /// Interpreter for both versions (`3.11`, `3.10.13` or a path). Default: the newest
    /// Python (pyenv, then PATH) on which both versions install and import.
    #[arg(long)]
    pub python: Option<String>,
    /// Output: one API change per line (kind, symbol, canonical id, signatures, evidence).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write the figures (symbols, changes by kind, filters, seconds) as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seconds allowed per snapshot.
    #[arg(long, default_value_t = 120)]
    pub snapshot_timeout: u64,
    /// Changelog evidence: download the new version's source distribution, read its
    /// CHANGES/CHANGELOG/HISTORY/NEWS files, cut the section between the two versions'
    /// headings and attach the lines naming each changed symbol.
    #[arg(long)]
    pub sdist: bool,
}

/// `recode data mine`.
pub fn run_mine(a: MineArgs) -> Result<()> {
    let mgr = EnvManager::from_env();
    let opts = MineOptions {
        dist: a.dist,
        old: a.old,
        new: a.new,
        modules: a.modules,
        python: a.python,
        snapshot_timeout: Duration::from_secs(a.snapshot_timeout),
        sdist: a.sdist,
    };
    let (changes, report) = mine(&mgr, &opts)?;
    write_jsonl(&a.output, &changes)?;
    if let Some(p) = &a.report {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| p.display().to_string())?;
    }
    eprintln!(
        "{} {} -> {} on Python {}: {} -> {} public symbols, {} changes ({:.1} s; envs {:.1} s, snapshots {:.1} + {:.1} s)",
        report.dist,
        report.old_version,
        report.new_version,
        report.python,
        report.symbols_old,
        report.symbols_new,
        report.changes,
        report.seconds_total,
        report.seconds_envs,
        report.seconds_snapshot_old,
        report.seconds_snapshot_new
    );
    eprintln!("  {:<18} {:>6}", "kind", "count");
    for (k, n) in &report.changes_by_kind {
        eprintln!("  {k:<18} {n:>6}");
    }
    for (f, n) in &report.filtered {
        eprintln!("  filtered: {f} {n}");
    }
    if a.sdist {
        eprintln!(
            "  changelog: {} line(s) from {}; {:.0}% of changes with warning or changelog evidence",
            report.changelog_lines,
            if report.changelog_files.is_empty() {
                "no file".to_string()
            } else {
                report.changelog_files.join(", ")
            },
            100.0 * report.with_evidence
        );
        if let Some(e) = &report.changelog_error {
            eprintln!("  changelog: {e}");
        }
    }
    for (m, e) in &report.import_errors {
        eprintln!("  import error (recorded, not fatal): {m}: {e}");
    }
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

/// Arguments of `recode data verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Candidates (JSONL): ReCode's six keys plus `old_version` ("==X"), optional `change_id`
    /// and `model`; `dependency` is a PyPI name or one of ReCode's display names (PyTorch, …).
    pub candidates: PathBuf,
    /// Output directory: rows.jsonl (ReCode's six keys), rows.meta.jsonl (provenance by row
    /// hash), rejects.jsonl (reason + evidence), report.json.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Interpreter for every pair (`3.11`); default: per pair, the newest Python on which both
    /// versions install and import.
    #[arg(long)]
    pub python: Option<String>,
    /// Parallel sandboxed runs.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Seconds per run (a snippet that loops is rejected with `timeout`).
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Memory per run, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: u64,
    /// Accepted rows kept per change id.
    #[arg(long, default_value_t = 3)]
    pub max_per_change: usize,
    /// Sandbox switch.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

struct Bar(indicatif::ProgressBar);

impl recode_curate::verify::VerifyProgress for Bar {
    fn start(&self, runs: usize) {
        self.0.set_length(runs as u64);
        self.0.reset_elapsed();
    }
    fn run_done(&self) {
        self.0.inc(1);
    }
}

/// `recode data verify`.
pub fn run_verify(a: VerifyArgs) -> Result<()> {
    let candidates: Vec<recode_curate::candidate::Candidate> =
        recode_curate::candidate::read_jsonl(&a.candidates)?;
    let opts = VerifyOptions {
        python: a.python,
        workers: a.jobs,
        timeout_secs: a.timeout,
        memory_bytes: a.memory_mib << 20,
        max_per_change: a.max_per_change,
        allow_unsandboxed: a.sandbox.unsafe_no_sandbox,
        ..VerifyOptions::default()
    };
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "verify {bar:30} {pos}/{len} runs {per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    let out = verify(
        &EnvManager::from_env(),
        &candidates,
        &opts,
        &Bar(bar.clone()),
    )?;
    bar.finish_and_clear();
    write_outputs(&a.output, &out)?;
    print_verify_table(&out.report);
    eprintln!(
        "wrote {}/{{rows.jsonl,rows.meta.jsonl,rejects.jsonl,report.json}}",
        a.output.display()
    );
    Ok(())
}

fn print_verify_table(r: &VerifyReport) {
    eprintln!(
        "{} candidates: {} accepted ({} breaking, {} additive); {} runs in {:.1} s ({:.1} runs/s); {:.1} s total",
        r.candidates, r.accepted, r.breaking, r.additive, r.runs, r.seconds_runs, r.runs_per_sec, r.seconds_total
    );
    for p in &r.pairs {
        let rejected = r.rejected_per_package.get(&p.dist).map(|m| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        eprintln!(
            "  {} {} -> {}: Python {} (envs {:.1} s): {} accepted; rejected: {}",
            p.dist,
            p.old,
            p.new,
            p.python,
            p.seconds_envs,
            r.rows_per_package.get(&p.dist).copied().unwrap_or(0),
            rejected.unwrap_or_else(|| "none".into())
        );
    }
    eprintln!(
        "  {:<20} {:>10} {:>8}",
        "change kind", "candidates", "accepted"
    );
    for (k, n) in &r.candidates_by_kind {
        eprintln!(
            "  {k:<20} {n:>10} {:>8}",
            r.accepted_by_kind.get(k).copied().unwrap_or(0)
        );
    }
    eprintln!("  {:<20} {:>6}", "rejected", "count");
    for (k, n) in r.rejected.iter().filter(|(_, n)| **n > 0) {
        eprintln!("  {k:<20} {n:>6}");
    }
}

/// Arguments of `recode data synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// Mined changes (JSONL from `recode data mine`).
    pub changes: PathBuf,
    /// OpenAI-compatible endpoint: `recode serve model`, vLLM, llama.cpp, a hosted API
    /// (`http://127.0.0.1:8000`, `…/v1` or the full `…/v1/chat/completions`).
    #[arg(long)]
    pub endpoint: String,
    /// Model name sent with each request and recorded in each candidate.
    #[arg(long)]
    pub model: String,
    /// Name of the environment variable holding the API key (sent as a Bearer token; never
    /// written anywhere).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Answers per change.
    #[arg(short, long, default_value_t = 1)]
    pub n: usize,
    /// Only the first K changes (after --kind).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only changes of these kinds (repeatable: removed, added, renamed, param_added, …).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Maximum tokens per answer.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Verify each candidate right away (sandboxed, as `recode data verify`) and give the model
    /// one repair turn carrying the error line for those that fail.
    #[arg(long)]
    pub repair: bool,
    /// Interpreter for --repair's verification (`3.11`).
    #[arg(long)]
    pub python: Option<String>,
    /// Sandbox switch (for --repair's snippets).
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Output: candidates (JSONL); unparsable answers go to <stem>.rejects.jsonl beside it.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write the figures (requests, candidates, parse and endpoint failures, repair
    /// turns, seconds) as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `recode data synth`.
pub fn run_synth(a: SynthArgs) -> Result<()> {
    let mut changes: Vec<ApiChange> = recode_curate::candidate::read_jsonl(&a.changes)?;
    if !a.kinds.is_empty() {
        changes.retain(|c| a.kinds.iter().any(|k| k == c.kind.as_str()));
    }
    if let Some(k) = a.limit {
        changes.truncate(k);
    }
    let api_key = match &a.api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .with_context(|| format!("--api-key-env {var}: the variable is not set"))?,
        ),
        None => None,
    };
    let opts = SynthOptions {
        endpoint: a.endpoint,
        model: a.model,
        api_key,
        n: a.n,
        temperature: a.temperature,
        max_tokens: a.max_tokens,
        concurrency: a.concurrency,
        retries: 4,
        backoff: Duration::from_millis(500),
        seed: 0,
    };
    let bar = indicatif::ProgressBar::new((changes.len() * opts.n) as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "synth {bar:30} {pos}/{len} requests {per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    let tick = || bar.inc(1);
    let mut out = synth(&changes, &opts, &tick);
    if a.repair && !out.candidates.is_empty() {
        let vopts = VerifyOptions {
            python: a.python,
            allow_unsandboxed: a.sandbox.unsafe_no_sandbox,
            max_per_change: usize::MAX,
            ..VerifyOptions::default()
        };
        let failures =
            recode_curate::verify::failures(&EnvManager::from_env(), &out.candidates, &vopts)?;
        let n = failures.iter().filter(|f| f.is_some()).count();
        bar.inc_length(n as u64);
        repair(&mut out, &changes, &failures, &opts, &tick);
    }
    bar.finish_and_clear();
    write_jsonl(&a.output, &out.candidates)?;
    let rejects = a.output.with_extension("rejects.jsonl");
    write_jsonl(&rejects, &out.rejects)?;
    let r = &out.report;
    if let Some(p) = &a.report {
        std::fs::write(p, serde_json::to_vec_pretty(r)?)
            .with_context(|| p.display().to_string())?;
    }
    eprintln!(
        "{} changes: {} requests, {} candidates, {} unparsable, {} endpoint failures, {} repair turns ({:.1} s)",
        r.changes, r.requests, r.candidates, r.parse_failures, r.endpoint_failures, r.repairs, r.seconds
    );
    eprintln!("wrote {} and {}", a.output.display(), rejects.display());
    Ok(())
}
