//! `recode bench reward`: reward scoring by (a) recode on one thread, (b) recode on all cores,
//! (c) the paper's Python reference and (d) Python with rapidfuzz + ast (`peers/reward_python.py`),
//! on the same generated pairs; optionally recode's HTTP reward server under load.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use recode_reward::Mode;

use crate::{BenchError, Result};

/// The report's name (`"bench"` key).
pub const NAME: &str = "reward";

/// The Python peers (c) and (d).
const PEER: &str = include_str!("../peers/reward_python.py");

/// Options of `recode bench reward`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of generated completion/target pairs.
    pub pairs: usize,
    /// Pairs scored by the (slow) paper reference; its time is extrapolated to all pairs.
    pub reference_pairs: usize,
    /// Interpreter with rapidfuzz that generates the pairs and runs (c) and (d) (None: the dev
    /// venv).
    pub python: Option<PathBuf>,
    /// Repository root (holds python/tests/test_reward_parity.py and python/reference).
    pub repo: PathBuf,
    /// HTTP part: the load, or None to skip it.
    pub http: Option<HttpOptions>,
    /// Skip (c) and (d); the pairs still come from the Python generator.
    pub no_peer: bool,
}

/// The HTTP part of `recode bench reward`: `/v1/score` on an in-process server.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// How long to load the server.
    pub duration: Duration,
    /// Concurrent keep-alive clients.
    pub clients: usize,
    /// Completion/target pairs per request.
    pub batch: usize,
    /// Stop after this many requests even if time remains.
    pub max_requests: usize,
}

/// One generated pair.
#[derive(serde::Deserialize)]
struct Pair {
    completion: String,
    target: String,
}

/// Runs the benchmark; returns the report (recode's figures, the Python peers' and the ratios
/// unless `no_peer`, the HTTP figures under `recode.http` when asked).
pub fn run(o: &Options) -> Result<serde_json::Value> {
    let python = crate::dev_python(o.python.as_deref())?;
    let dir = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "temp dir for",
        path: std::env::temp_dir(),
        source,
    })?;
    let cases = dir.path().join("bench_pairs.jsonl");
    generate_pairs(&python, &o.repo, &cases, o.pairs)?;
    let pairs = read_pairs(&cases)?;
    if pairs.is_empty() {
        return Err(BenchError::NoRows { path: cases });
    }
    let completions: Vec<&str> = pairs.iter().map(|p| p.completion.as_str()).collect();
    let targets: Vec<&str> = pairs.iter().map(|p| p.target.as_str()).collect();
    let time = |threads: Option<usize>| -> Result<f64> {
        let t = Instant::now();
        let r =
            recode_reward::score_pairs_with_threads(&completions, &targets, Mode::Paper, threads)?;
        std::hint::black_box(r);
        Ok(t.elapsed().as_secs_f64())
    };
    let single = time(Some(1))?;
    let multi = time(None)?;
    let n = pairs.len() as f64;
    let cores = crate::cores();
    eprintln!("reward benchmark: {} pairs (paper mode)", pairs.len());
    eprintln!(
        "(a) recode, 1 thread        {single:>10.3} s  {:>12.0} pairs/s",
        n / single
    );
    eprintln!(
        "(b) recode, {cores} threads       {multi:>10.3} s  {:>12.0} pairs/s",
        n / multi
    );
    eprintln!(
        "ratio (a)/(b) = {:.2}x  (parallel speed-up on {cores} cores)",
        single / multi
    );
    let mut report = serde_json::json!({
        "pairs": pairs.len(),
        "mode": "paper",
        "recode": {
            "one_thread_s": single,
            "one_thread_pairs_per_s": n / single,
            "all_cores_s": multi,
            "all_cores_pairs_per_s": n / multi,
            "threads": cores,
            "parallel_speedup": single / multi,
        },
    });
    if !o.no_peer {
        let (peer, ratios) = python_peers(&python, &cases, o, pairs.len(), single)?;
        report["python"] = peer;
        report["ratio_recode_over"] = ratios;
    }
    if let Some(http) = &o.http {
        report["recode"]["http"] = http_throughput(&pairs, http)?;
    }
    Ok(report)
}

/// Writes `n` completion/target pairs to `out` with the parity test's generator (built from the
/// ReCode data, so the pairs look like real rollouts).
fn generate_pairs(python: &Path, repo: &Path, out: &Path, n: usize) -> Result<()> {
    let generator = repo.join("python/tests/test_reward_parity.py");
    let status = std::process::Command::new(python)
        .arg(&generator)
        .arg("--out")
        .arg(out)
        .arg("--n")
        .arg(n.to_string())
        .arg("--no-reference")
        .status()
        .map_err(|source| BenchError::Spawn {
            program: python.to_path_buf(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::CommandFailed {
            what: format!("pair generator {}", generator.display()),
            status,
        });
    }
    Ok(())
}

/// The generated pairs (one `{completion, target}` object per line).
fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let io = |source| BenchError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut pairs = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        pairs.push(
            serde_json::from_str(&line).map_err(|source| BenchError::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?,
        );
    }
    Ok(pairs)
}

/// (c) and (d) on the pairs in `cases`: their figures, and their times over recode's one-thread
/// time `single` (how many times faster recode is).
fn python_peers(
    python: &Path,
    cases: &Path,
    o: &Options,
    n_pairs: usize,
    single: f64,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let name = "reward_python.py";
    let args = [
        cases.display().to_string(),
        o.repo.join("python/reference").display().to_string(),
        o.reference_pairs.to_string(),
    ];
    let py = crate::run_peer_script(python, name, PEER, &args)?;
    let n = n_pairs as f64;
    let per_pair = |key: &'static str| {
        py[key].as_f64().ok_or_else(|| BenchError::PeerField {
            name: name.into(),
            key,
            output: py.clone(),
        })
    };
    let reference = per_pair("reference_per_pair")? * n;
    let rapid = per_pair("rapidfuzz_per_pair")? * n;
    let measured = o.reference_pairs.min(n_pairs);
    let basis = if measured < n_pairs {
        format!("extrapolated from {measured} pairs: timed on the first {measured}, scaled to {n_pairs}")
    } else {
        format!("measured on all {n_pairs} pairs")
    };
    eprintln!(
        "(c) Python paper reference  {reference:>10.3} s  {:>12.0} pairs/s  ({basis})",
        n / reference
    );
    eprintln!(
        "(d) Python rapidfuzz + ast  {rapid:>10.3} s  {:>12.0} pairs/s",
        n / rapid
    );
    eprintln!(
        "ratio (c)/(a) = {:.1}x   (target >= 200x)",
        reference / single
    );
    eprintln!("ratio (d)/(a) = {:.1}x   (target >= 5x)", rapid / single);
    let peer = serde_json::json!({
        "paper_reference_s": reference,
        "paper_reference_pairs_timed": measured,
        "rapidfuzz_s": rapid,
    });
    let ratios = serde_json::json!({
        "paper_reference": reference / single,
        "rapidfuzz": rapid / single,
    });
    Ok((peer, ratios))
}

/// The HTTP part: the reward server in-process on 127.0.0.1:0, `/v1/score` batches cut from the
/// same generated set, concurrent keep-alive clients, bounded by time and request count.
fn http_throughput(pairs: &[Pair], h: &HttpOptions) -> Result<serde_json::Value> {
    let batch = h.batch.max(1);
    // Up to 512 distinct bodies, consecutive slices of the set (wrapping round), so requests
    // carry varied completions rather than one repeated batch.
    let n_bodies = pairs.len().div_ceil(batch).clamp(1, 512);
    let bodies: Vec<recode_server::LoadBody> = (0..n_bodies)
        .map(|b| {
            let items: Vec<serde_json::Value> = (0..batch)
                .map(|i| {
                    let p = &pairs[(b * batch + i) % pairs.len()];
                    serde_json::json!({ "completion": p.completion, "target": p.target })
                })
                .collect();
            recode_server::LoadBody {
                json: serde_json::Value::Array(items).to_string(),
                items: batch,
            }
        })
        .collect();
    let server = recode_server::BackgroundServer::start(recode_server::ServerConfig {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..recode_server::ServerConfig::default()
    })?;
    let opts = recode_server::LoadOptions {
        clients: h.clients.max(1),
        duration: h.duration,
        max_requests: h.max_requests.max(1),
        ..recode_server::LoadOptions::default()
    };
    let report = recode_server::run_load(server.addr(), &bodies, &opts);
    server.stop()?;
    if report.requests == 0 {
        return Err(BenchError::NoHttpSuccess {
            errors: report.errors,
            first_error: report.first_error.unwrap_or_else(|| "none".into()),
        });
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "HTTP POST /v1/score on 127.0.0.1 (in-process server, {} keep-alive clients, batches of {batch}, {} distinct bodies):",
        opts.clients,
        bodies.len()
    );
    eprintln!(
        "    {} requests in {:.2} s: {:.0} requests/s, {:.0} items/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; errors {}",
        report.requests,
        report.elapsed.as_secs_f64(),
        report.requests_per_sec(),
        report.items_per_sec(),
        ms(report.p50),
        ms(report.p99),
        ms(report.max),
        report.errors
    );
    if report.errors > 0 {
        eprintln!(
            "    first error: {}",
            report.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(serde_json::json!({
        "clients": opts.clients,
        "batch": batch,
        "requests": report.requests,
        "errors": report.errors,
        "seconds": report.elapsed.as_secs_f64(),
        "requests_per_s": report.requests_per_sec(),
        "items_per_s": report.items_per_sec(),
        "p50_ms": ms(report.p50),
        "p99_ms": ms(report.p99),
        "max_ms": ms(report.max),
    }))
}

#[cfg(test)]
mod tests {
    use super::read_pairs;
    use crate::BenchError;

    /// Blank lines are skipped; a malformed line is an error naming its file and line.
    #[test]
    fn pairs_are_read_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        std::fs::write(
            &path,
            "{\"completion\": \"a\", \"target\": \"b\", \"extra\": 1}\n\n{\"completion\": \"c\", \"target\": \"d\"}\n",
        )
        .unwrap();
        let pairs = read_pairs(&path).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (pairs[1].completion.as_str(), pairs[1].target.as_str()),
            ("c", "d")
        );
        std::fs::write(
            &path,
            "{\"completion\": \"a\", \"target\": \"b\"}\n{\"completion\": 3}\n",
        )
        .unwrap();
        match read_pairs(&path) {
            Err(BenchError::JsonLine { line, path: p, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(p, path);
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a malformed line was accepted"),
        }
    }
}
