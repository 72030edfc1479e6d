//! The peers' interpreters and running a peer script: what every benchmark with a Python peer
//! shares.

use std::path::{Path, PathBuf};

use crate::{BenchError, Result};

/// `peers/peer_memory.py`: the peers' peak-RSS reading, imported by the generate and train peers.
const PEER_MEMORY: &str = include_str!("../peers/peer_memory.py");

/// The dev interpreter (numpy, rapidfuzz) that the light peers of `bench data` and `bench
/// reward` run on: `explicit`, else `$RECODE_VENV/bin/python`, else the dev venv of
/// scripts/setup.sh under `$RECODE_CACHE` (default `~/.cache/recode`); an error when absent.
pub fn dev_python(explicit: Option<&Path>) -> Result<PathBuf> {
    let python = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("RECODE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| recode_cache().join("venv-dev"))
            .join("bin/python"),
    };
    if !python.exists() {
        return Err(BenchError::NoDevPython { python });
    }
    Ok(python)
}

/// The peer interpreter of the heavy benchmarks (generate, train): `explicit`, else the bench
/// venv of scripts/setup-bench.sh (`$RECODE_BENCH_VENV`, else under `$RECODE_CACHE`); an error
/// telling how to create it when absent.
pub fn bench_python(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let venv = std::env::var_os("RECODE_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| recode_cache().join("venv-bench"));
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(BenchError::NoPeerVenv { venv });
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

/// Runs a Python peer script (`source`, written to a temp file named `name` so it keeps its
/// `__doc__` and can import its siblings' names) with `args`; returns its last stdout line
/// parsed as JSON. Its stderr goes to ours.
pub fn run_peer_script(
    python: &Path,
    name: &str,
    source: &str,
    args: &[String],
) -> Result<serde_json::Value> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { what, path, source }
    };
    let dir = tempfile::tempdir().map_err(io("temp dir for", &std::env::temp_dir()))?;
    let script = dir.path().join(name);
    std::fs::write(&script, source).map_err(io("writing", &script))?;
    // The helpers every peer may import, beside it (its directory is first on sys.path).
    let memory = dir.path().join("peer_memory.py");
    std::fs::write(&memory, PEER_MEMORY).map_err(io("writing", &memory))?;
    eprintln!("running the peer: {} {name}", python.display());
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| BenchError::Spawn {
            program: python.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(BenchError::PeerFailed {
            name: name.to_string(),
            status: out.status,
            hint: signal_hint(out.status),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).map_err(|source| BenchError::PeerOutput {
        name: name.to_string(),
        output: text.into_owned(),
        source,
    })
}

/// Why a peer died, when a signal killed it: SIGILL means a build for CPU features this machine
/// lacks (the usual cause on a new machine), which scripts/setup-bench.sh repairs.
fn signal_hint(status: std::process::ExitStatus) -> &'static str {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGILL) => {
            ": killed by SIGILL, an instruction this CPU lacks (a peer built for other CPU \
             features; scripts/setup-bench.sh rebuilds it for this machine)"
        }
        Some(_) => ": killed by a signal",
        None => "",
    }
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
        let msg = err.to_string();
        assert!(
            msg.contains("SIGILL") && msg.contains("setup-bench.sh"),
            "{msg}"
        );
        let ok = run_peer_script(python, "peer.py", "print('{\"x\": 1}')\n", &[]).unwrap();
        assert_eq!(ok["x"], 1);
    }
}
