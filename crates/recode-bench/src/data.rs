//! `recode bench data`: `recode data stats` (in process, full report) against the same report's
//! core written in Python (json + ast, `peers/data_stats.py`) on the same file.

use std::path::PathBuf;

use recode_data::{stats, LoadOptions};
use recode_reward::Mode;

use crate::{BenchError, Result};

/// The report's name (`"bench"` key).
pub const NAME: &str = "data";

/// The Python peer: load, duplicates, nulls, prefixes, `ast` syntax checks, timed inside the
/// interpreter (start-up excluded).
const PEER: &str = include_str!("../peers/data_stats.py");

/// Options of `recode bench data`.
#[derive(Debug, Clone)]
pub struct Options {
    /// ReCode JSONL file (None: `$RECODE_DATA`, else the shared checkout's file, else the hub
    /// data set, as `recode_data::datasets::RECODE_TRAIN` resolves it).
    pub data: Option<PathBuf>,
    /// Timed repetitions of each side (the best is reported; at least 1).
    pub repeat: usize,
    /// Interpreter for the peer (None: the dev venv).
    pub python: Option<PathBuf>,
    /// Measure recode alone.
    pub no_peer: bool,
}

/// Runs the benchmark; returns the report (recode's figures, and the peer's with the ratio
/// unless `no_peer`), after checking that both sides counted the same rows, duplicates and
/// syntax errors.
pub fn run(o: &Options) -> Result<serde_json::Value> {
    let data = crate::recode_data_file(o.data.as_deref())?;
    let spec = data.to_string_lossy().into_owned();
    let repeat = o.repeat.max(1);
    let mut best = f64::INFINITY;
    let mut report = None;
    for _ in 0..repeat {
        let t = std::time::Instant::now();
        let ds = recode_data::load(&spec, LoadOptions { keep_going: false })?;
        let r = stats::compute(&ds, Mode::Paper);
        best = best.min(t.elapsed().as_secs_f64());
        report = Some(r);
    }
    let report = report.expect("at least one run");
    let threads = rayon::current_num_threads();
    eprintln!(
        "file: {} ({} rows), best of {repeat}",
        data.display(),
        report.rows
    );
    eprintln!("recode data stats (full report, {threads} threads): {best:.4} s");
    let mut json = serde_json::json!({
        "file": data,
        "repeat": repeat,
        "recode": {
            "seconds": best,
            "rows_per_s": report.rows as f64 / best,
            "threads": threads,
            "rows": report.rows,
            "exact_duplicates": report.exact_duplicates,
            "new_code_syntax_errors": report.new_code_syntax_errors,
        },
    });
    if o.no_peer {
        return Ok(json);
    }
    let python = crate::dev_python(o.python.as_deref())?;
    let args = [data.display().to_string(), repeat.to_string()];
    let peer = crate::run_peer_script(&python, "data_stats.py", PEER, &args)?;
    let peer_s = peer["seconds"]
        .as_f64()
        .ok_or_else(|| BenchError::PeerField {
            name: "data_stats.py".into(),
            key: "seconds",
            output: peer.clone(),
        })?;
    let same = peer["rows"].as_u64() == Some(report.rows as u64)
        && peer["dups"].as_u64() == Some(report.exact_duplicates as u64)
        && peer["bad"]["new_code"].as_u64() == Some(report.new_code_syntax_errors as u64);
    if !same {
        return Err(BenchError::PeerDisagrees {
            peer,
            rows: report.rows,
            exact_duplicates: report.exact_duplicates,
            new_code_syntax_errors: report.new_code_syntax_errors,
        });
    }
    eprintln!("python json + ast (core counts only):       {peer_s:.4} s");
    eprintln!("ratio python / recode: {:.1}x", peer_s / best);
    json["python"] = peer;
    json["ratio_recode_over"] = serde_json::json!({ "python": peer_s / best });
    Ok(json)
}
