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

/// An error and its causes on one line, `: `-joined, leaving out a cause whose text is already
/// in the line: most errors here quote their source, and printing every level (as `{:#}` does)
/// would repeat it once per level.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
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

#[cfg(test)]
mod error_line_tests {
    use super::error_line;

    /// An error whose message quotes its source, as most of ours do.
    #[derive(Debug)]
    struct Quoting {
        source: std::io::Error,
    }

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading data.jsonl: {}", self.source)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    /// An error that names its context only.
    #[derive(Debug)]
    struct Wrapping {
        source: std::io::Error,
    }

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "loading the data")
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_the_message_quotes_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let quoted = Quoting { source: io() };
        assert_eq!(error_line(&quoted), "reading data.jsonl: no such file");
        // A cause the message does not quote is kept.
        let plain = Wrapping { source: io() };
        assert_eq!(error_line(&plain), "loading the data: no such file");
    }
}
