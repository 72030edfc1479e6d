//! `recode data mine | verify | synth`: dataset construction (issue 30), thin over
//! `recode-curate`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use recode_curate::candidate::write_jsonl;
use recode_curate::{mine, MineOptions};
use recode_venv::EnvManager;

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
    for (m, e) in &report.import_errors {
        eprintln!("  import error (recorded, not fatal): {m}: {e}");
    }
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
