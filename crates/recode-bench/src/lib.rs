//! Side-by-side benchmarks: each runs one capability of recode and a peer doing the same work
//! (a Python script, Hugging Face transformers, TRL, a plain `python` per program) and reports
//! both sets of figures and their ratio as one JSON object.
//!
//! One module per benchmark ([`data`], [`reward`], [`generate`], [`train`], [`eval`]), each with
//! an options struct of plain fields and a `run` that returns the report; [`emit_report`]
//! finishes it (names it, prints it, writes `--out`). The peer scripts live in `peers/` beside
//! this crate and are embedded at build time, so the `recode` binary carries them.
//!
//! This crate knows no command line: `recode bench …` (recode-cli) parses the arguments into
//! the options and calls it.

#![warn(missing_docs)]

use std::path::Path;

pub mod data;
mod error;
pub mod eval;
pub mod generate;
mod peer;
pub mod reward;
pub mod train;

pub use error::{BenchError, Result};
pub use peer::{bench_python, dev_python, run_peer_script};

/// Finishes a benchmark: names it (`"bench"`), marks whether a peer ran (`"peer_free"`; a
/// peer-free run is also announced on stderr), prints the JSON on stdout (the last thing the
/// command prints there) and writes the same text to `out` when given.
pub fn emit_report(
    bench: &str,
    mut report: serde_json::Value,
    no_peer: bool,
    out: Option<&Path>,
) -> Result<()> {
    report["bench"] = bench.into();
    report["peer_free"] = no_peer.into();
    if no_peer {
        eprintln!("peer-free run (--no-peer): recode's figures only, no peer and no ratio");
    }
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = out {
        recode_data::atomic::write_atomic(p, text.as_bytes())?;
    }
    Ok(())
}

/// The ReCode training data a benchmark reads: `explicit`, else the default that
/// `recode_data::datasets::RECODE_TRAIN` resolves ($RECODE_DATA, ../shared/data, the hub).
fn recode_data_file(explicit: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
    Ok(match explicit {
        Some(p) => p.to_path_buf(),
        None => recode_data::datasets::RECODE_TRAIN.default_file(std::path::Path::new("."))?,
    })
}

/// Worker threads the benchmarks report and give their peers: `$RAYON_NUM_THREADS`, else the
/// number of cores.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(cores)
}

/// The number of cores (1 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    /// The report written to `out` is the JSON printed, named and marked peer-free or not.
    #[test]
    fn the_report_names_the_benchmark_and_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.json");
        super::emit_report(
            "data",
            serde_json::json!({"recode": {"seconds": 1.5}}),
            true,
            Some(&out),
        )
        .unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(written["bench"], "data");
        assert_eq!(written["peer_free"], true);
        assert_eq!(written["recode"]["seconds"], 1.5);
    }
}
