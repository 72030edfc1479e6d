//! `recode reward`: score completions with ReCode's format + EM*/ES* rewards, and the
//! `recode bench reward` body (recode vs Python implementations of the same reward).

use anyhow::{bail, Context, Result};
use recode_reward::{EditScore, Mode, RewardBreakdown, RewardKind, ScoredEdit};
use recode_rl::task::Component;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Subcommands of `recode reward`.
#[derive(clap::Subcommand)]
pub enum RewardCommand {
    /// Score `{completion, target}` rows (or `{solution_str, ground_truth}`) or one pair;
    /// rows that also give `old_code` get the edit score (`edit_es_star`, `unchanged`) too.
    Score(ScoreArgs),
    /// Same as `recode bench reward`: recode vs Python implementations of the reward.
    Bench(BenchRewardArgs),
}

/// Arguments of `recode reward score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// JSONL file with one `{completion, target}` or `{solution_str, ground_truth}` per line,
    /// optionally with `old_code` (the code before the update).
    #[arg(long, conflicts_with_all = ["completion", "target", "old"])]
    pub input: Option<PathBuf>,
    /// One completion (the text the model wrote after `<think>`).
    #[arg(long, requires = "target")]
    pub completion: Option<String>,
    /// The reference new code for `--completion`.
    #[arg(long, requires = "completion")]
    pub target: Option<String>,
    /// The old code for `--completion`: adds its edit score (`edit_es_star`: ES* of the
    /// answer's change against the reference's change; `unchanged`: the answer is a copy).
    #[arg(long, requires = "completion")]
    pub old: Option<String>,
    /// Reward definition: `paper` (published, quirks included) or `fixed`.
    #[arg(long, default_value = "paper")]
    pub mode: Mode,
    /// Components summed into `total` (format, em_star, es_star, em, es; edit_es_star when
    /// every row gives its old code).
    #[arg(long, default_value = "format,es_star")]
    pub reward: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write per-row JSON here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs a `recode reward` subcommand.
pub fn run(cmd: RewardCommand) -> Result<()> {
    match cmd {
        RewardCommand::Score(args) => score_cmd(args),
        RewardCommand::Bench(args) => bench_reward(args),
    }
}

/// One input row, with the fields named either way.
struct Pair {
    completion: String,
    target: String,
    /// The code before the update, when the row gives it (`old_code`).
    old: Option<String>,
    /// Line of the input file the pair came from (0 for a pair given by flags).
    line: usize,
}

/// The string field under the first of `names` the row has (None when it has none).
fn optional_field(
    row: &serde_json::Value,
    names: &[&str],
    path: &Path,
    line: usize,
) -> Result<Option<String>> {
    for name in names {
        if let Some(v) = row.get(name) {
            return match v.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => bail!("{}:{line}: field {name:?} must be a string", path.display()),
            };
        }
    }
    Ok(None)
}

fn field(row: &serde_json::Value, names: [&str; 2], path: &Path, line: usize) -> Result<String> {
    if let Some(v) = optional_field(row, &names, path, line)? {
        return Ok(v);
    }
    bail!(
        "{}:{line}: missing field {:?} (or {:?})",
        path.display(),
        names[0],
        names[1]
    )
}

/// Reads `{completion, target}` / `{solution_str, ground_truth}` JSONL rows.
fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line =
            line.with_context(|| format!("{}:{line_no}: unreadable line", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{line_no}: invalid JSON", path.display()))?;
        pairs.push(Pair {
            completion: field(&row, ["completion", "solution_str"], path, line_no)?,
            target: field(&row, ["target", "ground_truth"], path, line_no)?,
            old: optional_field(&row, &["old_code"], path, line_no)?,
            line: line_no,
        });
    }
    Ok(pairs)
}

/// The `--reward` list: library components, and whether `edit_es_star` is summed too.
fn parse_reward(list: &str) -> Result<(Vec<RewardKind>, bool)> {
    let mut kinds = Vec::new();
    let mut edit = false;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == Component::EditEsStar.name() {
            edit = true;
        } else {
            kinds.push(name.parse::<RewardKind>()?);
        }
    }
    if kinds.is_empty() && !edit {
        bail!("--reward must name at least one component");
    }
    Ok((kinds, edit))
}

fn row_json(
    index: usize,
    r: &RewardBreakdown,
    edit: Option<&EditScore>,
    kinds: &[RewardKind],
    sum_edit: bool,
) -> serde_json::Value {
    let mut total = r.total_of(kinds);
    if sum_edit {
        total += edit.map_or(0.0, |e| e.edit_es_star);
    }
    let mut row = serde_json::json!({
        "index": index,
        "format": r.format,
        "em_star": r.em_star,
        "es_star": r.es_star,
        "similarity": r.similarity,
        "has_code_block": r.has_code_block,
        "syntax_ok": r.syntax_ok,
        "exact_match": r.exact_match,
        "total": total,
    });
    if let Some(e) = edit {
        row["edit_es_star"] = e.edit_es_star.into();
        row["edit_similarity"] = e.similarity.into();
        row["unchanged"] = e.unchanged.into();
    }
    row
}

fn score_cmd(args: ScoreArgs) -> Result<()> {
    let (kinds, sum_edit) = parse_reward(&args.reward)?;
    let pairs = match (&args.input, &args.completion, &args.target) {
        (Some(path), _, _) => read_pairs(path)?,
        (None, Some(c), Some(t)) => vec![Pair {
            completion: c.clone(),
            target: t.clone(),
            old: args.old.clone(),
            line: 0,
        }],
        _ => bail!("give --input FILE.jsonl, or --completion TEXT --target TEXT"),
    };
    if sum_edit {
        if let Some(p) = pairs.iter().find(|p| p.old.is_none()) {
            match &args.input {
                Some(path) => bail!(
                    "{}:{}: missing field \"old_code\", which --reward edit_es_star needs",
                    path.display(),
                    p.line
                ),
                None => bail!("--reward edit_es_star needs --old CODE"),
            }
        }
    }
    let start = Instant::now();
    let scored = score_with_progress(&pairs, args.mode, args.threads)?;
    let elapsed = start.elapsed();
    let (results, edits): (Vec<RewardBreakdown>, Vec<Option<EditScore>>) =
        scored.into_iter().map(|s| (s.reward, s.edit)).unzip();
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for (i, (r, e)) in results.iter().zip(&edits).enumerate() {
        writeln!(out, "{}", row_json(i, r, e.as_ref(), &kinds, sum_edit))?;
    }
    out.flush()?;
    if args.input.is_some() {
        print_summary(&results, &kinds, elapsed);
        print_edit_summary(&edits);
    }
    Ok(())
}

/// Scores in chunks so a progress bar can advance on large inputs; rows that give their old
/// code get their edit score in the same pass.
fn score_with_progress(
    pairs: &[Pair],
    mode: Mode,
    threads: Option<usize>,
) -> Result<Vec<ScoredEdit>> {
    let bar = indicatif::ProgressBar::new(pairs.len() as u64);
    if pairs.len() < 10_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut results = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(4096) {
        let completions: Vec<&str> = chunk.iter().map(|p| p.completion.as_str()).collect();
        let targets: Vec<&str> = chunk.iter().map(|p| p.target.as_str()).collect();
        let old_codes: Vec<Option<&str>> = chunk.iter().map(|p| p.old.as_deref()).collect();
        results.extend(recode_reward::score_edits_with_threads(
            &completions,
            &targets,
            &old_codes,
            mode,
            threads,
        )?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(results)
}

fn print_summary(results: &[RewardBreakdown], kinds: &[RewardKind], elapsed: std::time::Duration) {
    let n = results.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RewardBreakdown) -> f64| results.iter().map(f).sum::<f64>() / n;
    let frac =
        |f: &dyn Fn(&RewardBreakdown) -> bool| results.iter().filter(|r| f(r)).count() as f64 / n;
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    eprintln!(
        "scored {} rows in {:.3}s ({:.0} rows/s)",
        results.len(),
        elapsed.as_secs_f64(),
        results.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    eprintln!(
        "mean total ({}) {:.4} | format {:.4} em_star {:.4} es_star {:.4} similarity {:.4}",
        names.join("+"),
        mean(&|r| r.total_of(kinds)),
        mean(&|r| r.format),
        mean(&|r| r.em_star),
        mean(&|r| r.es_star),
        mean(&|r| r.similarity)
    );
    eprintln!(
        "format ok {:.1}% | code block {:.1}% | syntax ok {:.1}% | exact match {:.1}%",
        100.0 * frac(&|r| r.format > 0.0),
        100.0 * frac(&|r| r.has_code_block),
        100.0 * frac(&|r| r.syntax_ok),
        100.0 * frac(&|r| r.exact_match)
    );
}

/// Mean edit score and copy rate over the rows that gave their old code.
fn print_edit_summary(edits: &[Option<EditScore>]) {
    let given: Vec<&EditScore> = edits.iter().flatten().collect();
    if given.is_empty() {
        return;
    }
    let n = given.len() as f64;
    eprintln!(
        "rows with old_code {} | edit_es_star {:.4} | unchanged (copy of the old code) {:.1}%",
        given.len(),
        given.iter().map(|e| e.edit_es_star).sum::<f64>() / n,
        100.0 * given.iter().filter(|e| e.unchanged).count() as f64 / n
    );
}

/// Arguments of `recode bench reward`.
#[derive(clap::Args)]
pub struct BenchRewardArgs {
    /// Number of generated completion/target pairs.
    #[arg(long, default_value_t = 20_000)]
    pub pairs: usize,
    /// Pairs scored by the (slow, pure Python) paper reference; its time is extrapolated.
    #[arg(long, default_value_t = 1_000)]
    pub reference_pairs: usize,
    /// Python interpreter with rapidfuzz: writes the pairs, runs (c) and (d) (default: the dev
    /// venv, $RECODE_VENV/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Repository root (holds python/tests/test_reward_parity.py).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// HTTP part: seconds of load on the in-process server (0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub http_seconds: f64,
    /// HTTP part: concurrent keep-alive clients.
    #[arg(long, default_value_t = 32)]
    pub http_clients: usize,
    /// HTTP part: completion/target pairs per `/v1/score` request.
    #[arg(long, default_value_t = 64)]
    pub http_batch: usize,
    /// HTTP part: stop after this many requests even if time remains.
    #[arg(long, default_value_t = 100_000)]
    pub http_max_requests: usize,
    /// Peer and report options (`--no-peer` skips (c) and (d); the pairs still come from the
    /// Python generator).
    #[command(flatten)]
    pub output: crate::cmd::bench::BenchOutput,
}

/// Python side of the benchmark: times the paper reference and a rapidfuzz + ast version.
const PY_BENCH: &str = r#"
import ast, json, re, sys, time
sys.path.insert(0, sys.argv[2])
import reward_paper
from rapidfuzz.distance import Levenshtein
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
n_ref = int(sys.argv[3])
pairs = [(r["completion"], r["target"]) for r in rows]
t = time.perf_counter()
for c, g in pairs[:n_ref]:
    reward_paper.score(c, g)
ref_per_pair = (time.perf_counter() - t) / max(1, min(n_ref, len(pairs)))
BLOCK = re.compile(r"```python\n(.*?)\n```", re.S)
FMT = re.compile(r"^<think>([^<]*(?:<(?!/?think>)[^<]*)*)</think>\s*<answer>([\s\S]*?)</answer>\s*$", re.S)
def fast(c, g):
    fmt = 1.0 if FMT.search("<think>" + c) else -1.0
    m = BLOCK.search(c)
    if not m:
        return fmt - 2.0
    code = reward_paper.normalize(m.group(1).strip())
    try:
        ast.parse(code)
    except Exception:
        return fmt - 2.0
    ref = reward_paper.normalize(g)
    return fmt + Levenshtein.normalized_similarity(code, ref) * 3.5 - 1.5
t = time.perf_counter()
for c, g in pairs:
    fast(c, g)
fast_per_pair = (time.perf_counter() - t) / max(1, len(pairs))
print(json.dumps({"reference_per_pair": ref_per_pair, "rapidfuzz_per_pair": fast_per_pair}))
"#;

/// `recode bench reward`: (a) recode 1 thread, (b) recode all cores, (c) the Python paper
/// reference, (d) Python with rapidfuzz + ast, on the same generated pairs; prints ratios.
pub fn bench_reward(args: BenchRewardArgs) -> Result<()> {
    let python = crate::cmd::bench::dev_python(args.python.as_deref())?;
    let generator = args.repo.join("python/tests/test_reward_parity.py");
    let dir = tempfile::tempdir().context("temp dir for the pairs")?;
    let cases = dir.path().join("bench_pairs.jsonl");
    let status = std::process::Command::new(&python)
        .arg(&generator)
        .arg("--out")
        .arg(&cases)
        .arg("--n")
        .arg(args.pairs.to_string())
        .arg("--no-reference")
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!("pair generator {} failed", generator.display());
    }
    let pairs = read_pairs(&cases)?;
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
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
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
    if !args.output.no_peer {
        let (peer, ratios) = python_reward_peers(&python, &cases, &args, pairs.len(), single)?;
        report["python"] = peer;
        report["ratio_recode_over"] = ratios;
    }
    if args.http_seconds > 0.0 {
        report["recode"]["http"] = http_throughput(&pairs, &args)?;
    }
    crate::cmd::bench::emit_report("reward", report, &args.output)
}

/// (c) and (d) of `recode bench reward` on the pairs in `cases`: their figures, and their
/// times over recode's one-thread time `single` (how many times faster recode is).
fn python_reward_peers(
    python: &Path,
    cases: &Path,
    args: &BenchRewardArgs,
    n_pairs: usize,
    single: f64,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let out = std::process::Command::new(python)
        .args(["-c", PY_BENCH])
        .arg(cases)
        .arg(args.repo.join("python/reference"))
        .arg(args.reference_pairs.to_string())
        .output()
        .context("cannot run the Python benchmark")?;
    if !out.status.success() {
        bail!(
            "Python benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let py: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("Python benchmark output")?;
    let n = n_pairs as f64;
    let per_pair = |key: &str| {
        py[key]
            .as_f64()
            .with_context(|| format!("Python benchmark output has no {key}: {py}"))
    };
    let reference = per_pair("reference_per_pair")? * n;
    let rapid = per_pair("rapidfuzz_per_pair")? * n;
    let measured = args.reference_pairs.min(n_pairs);
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

/// HTTP part of the benchmark: the reward server in-process on 127.0.0.1:0, `/v1/score`
/// batches of `--http-batch` pairs cut from the same generated set, `--http-clients`
/// concurrent keep-alive clients, bounded by `--http-seconds` and `--http-max-requests`.
fn http_throughput(pairs: &[Pair], args: &BenchRewardArgs) -> Result<serde_json::Value> {
    if pairs.is_empty() {
        bail!("no pairs to send over HTTP");
    }
    let batch = args.http_batch.max(1);
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
        clients: args.http_clients.max(1),
        duration: std::time::Duration::try_from_secs_f64(args.http_seconds)
            .context("--http-seconds must be a finite number of seconds")?,
        max_requests: args.http_max_requests.max(1),
        ..recode_server::LoadOptions::default()
    };
    let report = recode_server::run_load(server.addr(), &bodies, &opts);
    server.stop()?;
    if report.requests == 0 {
        bail!(
            "HTTP benchmark: no successful request ({} errors; first: {})",
            report.errors,
            report.first_error.as_deref().unwrap_or("none")
        );
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
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
