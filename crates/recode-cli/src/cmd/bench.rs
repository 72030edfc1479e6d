//! `recode bench`: each benchmark runs recode and a peer side by side and reports the ratio.
//! The benchmark bodies live in the owning subcommand's module; this dispatches and holds the
//! helpers every benchmark shares: the peer interpreter, running a Python peer, and the JSON
//! report (`--no-peer`, `--out`) each one prints last on stdout.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Benchmarks, one per capability; each prints recode's figures next to a peer's and the ratio.
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// `recode data stats` vs an equivalent Python script (json + ast), same file.
    Data(crate::cmd::data::BenchDataArgs),
    /// Reward scoring: recode (1 thread, all cores) vs Python references (paper, rapidfuzz).
    Reward(crate::cmd::reward::BenchRewardArgs),
    /// Generation throughput and memory vs Hugging Face transformers on the same weights.
    Generate(crate::cmd::generate::BenchGenerateArgs),
    /// Seconds per GRPO step and peak memory vs TRL GRPOTrainer + PEFT, same model and config.
    Train(crate::cmd::train::BenchTrainArgs),
    /// Sandboxed executor throughput vs a fresh python per program and an unguarded fork parent.
    Eval(crate::cmd::eval::BenchEvalArgs),
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Data(a) => crate::cmd::data::bench_data(a),
        BenchCommand::Reward(a) => crate::cmd::reward::bench_reward(a),
        BenchCommand::Generate(a) => crate::cmd::generate::bench_generate(a),
        BenchCommand::Train(a) => crate::cmd::train::bench_train(a),
        BenchCommand::Eval(a) => crate::cmd::eval::bench_eval(a),
    }
}

/// Report options every `recode bench` subcommand shares.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOutput {
    /// Measure recode alone: no peer runs, no ratio is computed; the JSON says
    /// `"peer_free": true` and has recode's figures only.
    #[arg(long)]
    pub no_peer: bool,
    /// Also write the JSON figures here (they are always printed on stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Finishes a benchmark: names it (`"bench"`), marks whether a peer ran (`"peer_free"`; a
/// peer-free run is also announced on stderr), prints the JSON on stdout (the last thing the
/// command prints there) and writes the same text to `--out` when given.
pub fn emit_report(
    bench: &str,
    mut report: serde_json::Value,
    output: &BenchOutput,
) -> anyhow::Result<()> {
    report["bench"] = bench.into();
    report["peer_free"] = output.no_peer.into();
    if output.no_peer {
        eprintln!("peer-free run (--no-peer): recode's figures only, no peer and no ratio");
    }
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = &output.out {
        recode_data::atomic::write_atomic(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// The dev interpreter (numpy, rapidfuzz) that the light peers of `bench data` and `bench
/// reward` run on: `explicit`, else `$RECODE_VENV/bin/python`, else the dev venv of
/// scripts/setup.sh under `$RECODE_CACHE` (default `~/.cache/recode`); an error when absent.
pub fn dev_python(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let python = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("RECODE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| recode_cache().join("venv-dev"))
            .join("bin/python"),
    };
    if !python.exists() {
        bail!(
            "{} not found: run scripts/setup.sh (dev venv), pass --python, or --no-peer",
            python.display()
        );
    }
    Ok(python)
}

/// `$RECODE_CACHE`, else `~/.cache/recode`.
fn recode_cache() -> PathBuf {
    std::env::var_os("RECODE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/recode")
        })
}

/// The peer interpreter of the side-by-side benchmarks: `explicit`, else the bench venv of
/// scripts/setup-bench.sh; an error telling how to create it when absent.
pub fn bench_python(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let venv = std::env::var_os("RECODE_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| recode_cache().join("venv-bench"));
    let python = venv.join("bin/python");
    if !python.exists() {
        bail!(
            "no peer environment at {}: run scripts/setup-bench.sh (PyTorch, transformers, TRL), \
             pass --peer-python, or --no-peer for recode alone",
            venv.display()
        );
    }
    Ok(python)
}

/// Runs a Python peer script (`source`, written to a temp file so it keeps its `__doc__`) with
/// `args`; returns its last stdout line parsed as JSON. Its stderr goes to ours.
pub fn run_peer_script(
    python: &Path,
    name: &str,
    source: &str,
    args: &[String],
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir().context("temp dir for the peer script")?;
    let script = dir.path().join(name);
    std::fs::write(&script, source).with_context(|| format!("writing {}", script.display()))?;
    eprintln!("running the peer: {} {name}", python.display());
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    if !out.status.success() {
        use std::os::unix::process::ExitStatusExt;
        let hint = match out.status.signal() {
            Some(libc::SIGILL) => {
                ": killed by SIGILL, an instruction this CPU lacks (a peer built for other CPU \
                 features; scripts/setup-bench.sh rebuilds it for this machine)"
            }
            Some(_) => ": killed by a signal",
            None => "",
        };
        bail!("peer {name} failed ({}){hint}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("peer {name} printed no JSON: {text:.300}"))
}

#[cfg(test)]
mod tests {
    use super::run_peer_script;

    /// A peer killed by SIGILL (a build for CPU features the machine lacks) is reported as such.
    #[test]
    fn a_peer_dying_of_an_illegal_instruction_says_so() {
        let python = std::env::var_os("RECODE_VENV")
            .map(|v| std::path::PathBuf::from(v).join("bin/python"))
            .unwrap_or_else(|| "python3".into());
        let python = python.as_path();
        let err = run_peer_script(
            python,
            "peer.py",
            "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n",
            &[],
        )
        .expect_err("a dead peer is an error");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("SIGILL") && msg.contains("setup-bench.sh"),
            "{msg}"
        );
        let ok = run_peer_script(python, "peer.py", "print('{\"x\": 1}')\n", &[]).unwrap();
        assert_eq!(ok["x"], 1);
    }
}
