//! `recode data verify`: static checks, then four sandboxed runs per candidate (old code on the
//! old and the new version, new code on both), the verdict, dedupe, and the output files.
//!
//! Verdict: `old@old` and `new@new` must run to their last line; the pair is **breaking** when
//! `old@new` fails or emits a warning attributed to the library that `old@old` did not emit,
//! **additive** when `new@old` fails; otherwise `not_discriminating`. Any run that times out
//! or hits the memory limit rejects the pair with `timeout`.

mod checks;
mod runs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use recode_data::UpdateExample;
use recode_reward::{normalize_code, Mode};
use recode_sandbox::{ExecConfig, ExecutorPool};
use recode_venv::{list_interpreters, EnvManager};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use checks::{identifiers, static_checks, StaticReject};
pub use runs::{outcome, snippet_job, RunOutcome, RunWarning, RUNNER_PY};

use crate::candidate::{bare_version, distribution, write_jsonl, Candidate};
use crate::diff::{leaf, ChangeRef};
use crate::envs::{pair_envs, PairEnvs};
use crate::{CurateError, Result};

/// Reasons a candidate is rejected (`env`: its versions could not be installed).
pub const REASONS: [&str; 10] = [
    "parse",
    "syntax",
    "identical",
    "off_target",
    "old_broken",
    "new_broken",
    "timeout",
    "not_discriminating",
    "duplicate",
    "env",
];

/// Settings of a verification run.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Interpreter for every pair (`3.11`); default: chosen per pair by trying.
    pub python: Option<String>,
    /// Interpreter of the sandbox's fork servers (a modern one, >= 3.8); default:
    /// `$RECODE_VENV/bin/python`, else the newest interpreter found.
    pub server_python: Option<PathBuf>,
    /// Parallel runs.
    pub workers: usize,
    /// Seconds per run.
    pub timeout_secs: f64,
    /// Memory per run (all its processes), bytes.
    pub memory_bytes: u64,
    /// Accepted rows kept per change id (later ones are rejected as `duplicate`).
    pub max_per_change: usize,
    /// Run without isolation where the machine permits none (`--unsafe-no-sandbox`).
    pub allow_unsandboxed: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            python: None,
            server_python: None,
            workers: 2,
            timeout_secs: 10.0,
            memory_bytes: 1 << 30,
            max_per_change: 3,
            allow_unsandboxed: false,
        }
    }
}

/// Progress callbacks (the CLI draws a bar).
pub trait VerifyProgress: Sync {
    /// Runs about to start.
    fn start(&self, _runs: usize) {}
    /// One run finished.
    fn run_done(&self) {}
}

impl VerifyProgress for () {}

/// Provenance of an accepted row (`rows.meta.jsonl`), keyed by the row's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowMeta {
    /// Hash of the row's six fields ([`row_hash`]).
    pub row_hash: String,
    /// Distribution installed.
    pub dist: String,
    /// `==X`.
    pub old_version: String,
    /// The change it illustrates.
    pub change_id: Option<String>,
    /// The model that wrote it.
    pub model: Option<String>,
    /// Interpreter of both versions.
    pub python: String,
    /// `breaking`, `additive` or `breaking+additive`.
    pub verdict: String,
    /// The four runs: `old@old`, `old@new`, `new@old`, `new@new` -> summary.
    pub runs: BTreeMap<String, String>,
}

/// A rejected candidate with its reason and evidence (`rejects.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reject {
    /// The candidate as read.
    #[serde(flatten)]
    pub candidate: Candidate,
    /// One of [`REASONS`].
    pub reason: String,
    /// The error line or check that decided.
    pub evidence: String,
    /// Position of the candidate in the input.
    #[serde(skip)]
    pub index: usize,
}

/// One version pair's interpreter and set-up time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairInfo {
    /// Distribution.
    pub dist: String,
    /// Old version.
    pub old: String,
    /// New version.
    pub new: String,
    /// Interpreter used, or the error.
    pub python: String,
    /// Seconds to find/build the environments.
    pub seconds_envs: f64,
}

/// Figures of a verification run (`report.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Candidates read.
    pub candidates: usize,
    /// Rows written.
    pub accepted: usize,
    /// Accepted rows whose old code breaks or warns on the new version.
    pub breaking: usize,
    /// Accepted rows whose new code fails on the old version.
    pub additive: usize,
    /// Rejections by reason (every reason listed, zeros included).
    pub rejected: BTreeMap<String, usize>,
    /// Duplicates / candidates.
    pub duplicate_rate: f64,
    /// Accepted rows per change id.
    pub rows_per_change: BTreeMap<String, usize>,
    /// Accepted rows per distribution.
    pub rows_per_package: BTreeMap<String, usize>,
    /// Candidates per change kind (from their change ids; `(none)` without one).
    pub candidates_by_kind: BTreeMap<String, usize>,
    /// Accepted rows per change kind.
    pub accepted_by_kind: BTreeMap<String, usize>,
    /// Rejections per distribution and reason.
    pub rejected_per_package: BTreeMap<String, BTreeMap<String, usize>>,
    /// Sandboxed runs made.
    pub runs: usize,
    /// Seconds of the runs.
    pub seconds_runs: f64,
    /// Runs per second.
    pub runs_per_sec: f64,
    /// Seconds overall.
    pub seconds_total: f64,
    /// Version pairs and their interpreters.
    pub pairs: Vec<PairInfo>,
}

/// Everything a verification produces.
#[derive(Debug, Clone, Default)]
pub struct VerifyOutput {
    /// Accepted rows, ReCode's six keys.
    pub rows: Vec<UpdateExample>,
    /// Their provenance, same order.
    pub meta: Vec<RowMeta>,
    /// Rejected candidates.
    pub rejects: Vec<Reject>,
    /// Figures.
    pub report: VerifyReport,
}

/// Stable hash of a row's six fields (16 hex digits).
pub fn row_hash(row: &UpdateExample) -> String {
    let json = serde_json::to_string(row).expect("row serialises");
    hex16(json.as_bytes())
}

fn hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_eq(v: &str) -> String {
    format!("=={}", bare_version(v))
}

/// The four runs of one candidate, in job order.
const RUNS: [(&str, bool, bool); 4] = [
    // (label, old code?, old version?)
    ("old@old", true, true),
    ("new@new", false, false),
    ("old@new", true, false),
    ("new@old", false, true),
];

/// Verifies `candidates`: static checks, the four runs each, verdicts, dedupe.
pub fn verify(
    mgr: &EnvManager,
    candidates: &[Candidate],
    opts: &VerifyOptions,
    progress: &dyn VerifyProgress,
) -> Result<VerifyOutput> {
    let start = Instant::now();
    let mut out = VerifyOutput::default();
    let mut reject = |c: &Candidate, reason: &str, evidence: String| {
        out.rejects.push(Reject {
            index: candidates
                .iter()
                .position(|x| std::ptr::eq(x, c))
                .unwrap_or(usize::MAX),
            candidate: c.clone(),
            reason: reason.to_string(),
            evidence,
        })
    };
    // 1. Static checks and exact dedupe (before spending runs).
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&Candidate> = Vec::new();
    for c in candidates {
        if let Some(r) = static_checks(&c.old_code, &c.new_code, c.change_id.as_deref()) {
            reject(c, r.reason, r.evidence);
            continue;
        }
        let key = hex16(
            format!(
                "{}\0{}\0{}\0{}",
                distribution(&c.dependency).to_lowercase(),
                bare_version(&c.new_version),
                normalize_code(&c.old_code, Mode::Fixed),
                normalize_code(&c.new_code, Mode::Fixed)
            )
            .as_bytes(),
        );
        if !seen.insert(key) {
            reject(
                c,
                "duplicate",
                "same dependency, version and normalised code as an earlier candidate".into(),
            );
            continue;
        }
        todo.push(c);
    }
    // 2. Environments per version pair.
    let mut pairs: BTreeMap<(String, String, String), Option<PairEnvs>> = BTreeMap::new();
    for c in &todo {
        let key = (
            distribution(&c.dependency),
            bare_version(&c.old_version).to_string(),
            bare_version(&c.new_version).to_string(),
        );
        if pairs.contains_key(&key) {
            continue;
        }
        let t = Instant::now();
        let envs = pair_envs(mgr, &key.0, &key.1, &key.2, opts.python.as_deref());
        let python = match &envs {
            Ok(e) => e.python.version.clone(),
            Err(e) => format!("error: {e}"),
        };
        out.report.pairs.push(PairInfo {
            dist: key.0.clone(),
            old: key.1.clone(),
            new: key.2.clone(),
            python,
            seconds_envs: t.elapsed().as_secs_f64(),
        });
        if let Err(e) = &envs {
            tracing::warn!("{} {} / {}: {e}", key.0, key.1, key.2);
        }
        pairs.insert(key, envs.ok());
    }
    let mut runnable: Vec<(&Candidate, &PairEnvs)> = Vec::new();
    for c in todo {
        let key = (
            distribution(&c.dependency),
            bare_version(&c.old_version).to_string(),
            bare_version(&c.new_version).to_string(),
        );
        match pairs.get(&key).and_then(Option::as_ref) {
            Some(envs) => runnable.push((c, envs)),
            None => {
                let info = out.report.pairs.iter().find(|p| {
                    (p.dist.as_str(), p.old.as_str(), p.new.as_str())
                        == (key.0.as_str(), key.1.as_str(), key.2.as_str())
                });
                reject(c, "env", info.map(|p| p.python.clone()).unwrap_or_default());
            }
        }
    }
    // 3. The runs, all through one sandbox pool.
    let salt = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let mut jobs = Vec::new();
    let mut nonces = Vec::new();
    for (i, (c, envs)) in runnable.iter().enumerate() {
        for (label, old_code, old_version) in RUNS {
            let code = if old_code { &c.old_code } else { &c.new_code };
            let nonce = format!("@@recode-{salt:016x}-{i}-{label}@@");
            jobs.push(snippet_job(
                &envs.venv(old_version).python(),
                code,
                &nonce,
                opts.timeout_secs,
            ));
            nonces.push(nonce);
        }
    }
    progress.start(jobs.len());
    let t_runs = Instant::now();
    let results = if jobs.is_empty() {
        Vec::new()
    } else {
        let pool = start_pool(&runnable.iter().map(|(_, e)| *e).collect::<Vec<_>>(), opts)?;
        pool.run_jobs(&jobs, &|| progress.run_done())
    };
    out.report.seconds_runs = t_runs.elapsed().as_secs_f64();
    out.report.runs = jobs.len();
    // 4. Verdicts.
    let mut per_change: HashMap<String, usize> = HashMap::new();
    for (i, (c, envs)) in runnable.iter().enumerate() {
        let outcomes: Vec<RunOutcome> = (0..4)
            .map(|k| outcome(&results[4 * i + k], &nonces[4 * i + k]))
            .collect();
        let [oo, nn, on, no] = [&outcomes[0], &outcomes[1], &outcomes[2], &outcomes[3]];
        let runs_map: BTreeMap<String, String> = RUNS
            .iter()
            .zip(&outcomes)
            .map(|((l, _, _), o)| (l.to_string(), o.summary()))
            .collect();
        if let Some((label, o)) = RUNS
            .iter()
            .zip(&outcomes)
            // Unbounded loops and unbounded allocation both end here.
            .find(|(_, o)| o.status == "timeout" || o.status == "memory_limit")
        {
            reject(c, "timeout", format!("{}: {}", label.0, o.summary()));
            continue;
        }
        if !oo.ok() {
            reject(
                c,
                "old_broken",
                format!(
                    "old_code on {}: {}",
                    envs.old.spec.requirements.join(" "),
                    oo.summary()
                ),
            );
            continue;
        }
        if !nn.ok() {
            reject(
                c,
                "new_broken",
                format!(
                    "new_code on {}: {}",
                    envs.new.spec.requirements.join(" "),
                    nn.summary()
                ),
            );
            continue;
        }
        let symbol = c
            .change_id
            .as_deref()
            .and_then(ChangeRef::parse)
            .map(|r| leaf(&r.symbol).to_string());
        let new_warnings = fresh_library_warnings(oo, on, symbol.as_deref());
        let breaking = !on.ok() || !new_warnings.is_empty();
        let additive = !no.ok();
        if !breaking && !additive {
            reject(c, "not_discriminating", "old_code runs on the new version without a new library warning and new_code runs on the old version".into());
            continue;
        }
        let change = c.change_id.clone().unwrap_or_default();
        let n = per_change.entry(change.clone()).or_default();
        if c.change_id.is_some() && *n >= opts.max_per_change {
            reject(
                c,
                "duplicate",
                format!("already {} accepted rows for {change}", opts.max_per_change),
            );
            continue;
        }
        *n += 1;
        let verdict = match (breaking, additive) {
            (true, true) => "breaking+additive",
            (true, false) => "breaking",
            _ => "additive",
        };
        let row = UpdateExample {
            dependency: Some(c.dependency.clone()),
            new_version: Some(with_eq(&c.new_version)),
            description: Some(c.description.clone()),
            update_info: Some(c.update_info.clone()),
            old_code: Some(c.old_code.clone()),
            new_code: Some(c.new_code.clone()),
        };
        let mut runs = runs_map;
        if !new_warnings.is_empty() {
            runs.insert("old@new new warnings".into(), new_warnings.join(" | "));
        }
        out.meta.push(RowMeta {
            row_hash: row_hash(&row),
            dist: distribution(&c.dependency),
            old_version: with_eq(&c.old_version),
            change_id: c.change_id.clone(),
            model: c.model.clone(),
            python: envs.python.version.clone(),
            verdict: verdict.into(),
            runs,
        });
        out.rows.push(row);
    }
    // 5. Figures.
    let r = &mut out.report;
    r.candidates = candidates.len();
    r.accepted = out.rows.len();
    r.breaking = out
        .meta
        .iter()
        .filter(|m| m.verdict.contains("breaking"))
        .count();
    r.additive = out
        .meta
        .iter()
        .filter(|m| m.verdict.contains("additive"))
        .count();
    r.rejected = REASONS.iter().map(|k| (k.to_string(), 0)).collect();
    for j in &out.rejects {
        *r.rejected.entry(j.reason.clone()).or_default() += 1;
        let dist = distribution(&j.candidate.dependency);
        *r.rejected_per_package
            .entry(dist)
            .or_default()
            .entry(j.reason.clone())
            .or_default() += 1;
    }
    r.duplicate_rate = r.rejected["duplicate"] as f64 / r.candidates.max(1) as f64;
    let kind = |id: Option<&str>| {
        id.and_then(ChangeRef::parse)
            .map(|c| c.kind)
            .unwrap_or_else(|| "(none)".into())
    };
    for c in candidates {
        *r.candidates_by_kind
            .entry(kind(c.change_id.as_deref()))
            .or_default() += 1;
    }
    for m in &out.meta {
        *r.accepted_by_kind
            .entry(kind(m.change_id.as_deref()))
            .or_default() += 1;
        *r.rows_per_change
            .entry(m.change_id.clone().unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        *r.rows_per_package.entry(m.dist.clone()).or_default() += 1;
    }
    r.runs_per_sec = r.runs as f64 / r.seconds_runs.max(1e-9);
    r.seconds_total = start.elapsed().as_secs_f64();
    Ok(out)
}

/// Verifies `candidates` and returns, per candidate, `(reason, evidence)` when it was rejected
/// (the input of a repair turn).
pub fn failures(
    mgr: &EnvManager,
    candidates: &[Candidate],
    opts: &VerifyOptions,
) -> Result<Vec<Option<(String, String)>>> {
    let out = verify(mgr, candidates, opts, &())?;
    let mut f = vec![None; candidates.len()];
    for r in out.rejects {
        if let Some(slot) = f.get_mut(r.index) {
            *slot = Some((r.reason, r.evidence));
        }
    }
    Ok(f)
}

/// Library warnings of `old@new` that `old@old` did not emit, as `Category: message` lines. A
/// warning counts when emitted by site-packages code or when its text names the symbol.
fn fresh_library_warnings(
    old_old: &RunOutcome,
    old_new: &RunOutcome,
    symbol: Option<&str>,
) -> Vec<String> {
    let before: BTreeSet<(&str, &str)> = old_old
        .warnings
        .iter()
        .map(|w| (w.category.as_str(), w.message.as_str()))
        .collect();
    old_new
        .warnings
        .iter()
        .filter(|w| w.library || symbol.is_some_and(|s| w.message.contains(s)))
        .filter(|w| !before.contains(&(w.category.as_str(), w.message.as_str())))
        .map(|w| format!("{}: {}", w.category, w.message))
        .collect()
}

/// The fork-server interpreter: the option, `$RECODE_VENV/bin/python`, else the newest >= 3.8.
fn server_python(opts: &VerifyOptions) -> Result<PathBuf> {
    if let Some(p) = &opts.server_python {
        return Ok(p.clone());
    }
    if let Some(v) = std::env::var_os("RECODE_VENV") {
        let p = Path::new(&v).join("bin/python");
        if p.exists() {
            return Ok(p);
        }
    }
    list_interpreters()
        .into_iter()
        .find(|i| i.version_key() >= vec![3, 8])
        .map(|i| i.path)
        .ok_or(CurateError::NoServerPython { minimum: "3.8" })
}

/// One pool for every venv of the run: their interpreters and directories in the view.
fn start_pool(envs: &[&PairEnvs], opts: &VerifyOptions) -> Result<ExecutorPool> {
    let mut cfg = ExecConfig::new(server_python(opts)?, opts.workers.max(1));
    cfg.preload = Vec::new();
    cfg.timeout_secs = opts.timeout_secs;
    cfg.hard_timeout_secs = opts.timeout_secs + 2.0;
    cfg.cpu_seconds = opts.timeout_secs.ceil() as u64 + 2;
    cfg.memory_bytes = opts.memory_bytes;
    cfg.capture_chars = 16 << 10;
    cfg.allow_unsandboxed = opts.allow_unsandboxed;
    let mut interpreters = BTreeSet::new();
    let mut read = BTreeSet::new();
    for e in envs {
        for v in [&e.old, &e.new] {
            interpreters.insert(v.python());
            read.extend(v.read_paths()?);
        }
    }
    cfg.interpreters = interpreters.into_iter().collect();
    // The sandbox mounts private tmpfs on these: envs there would be invisible to programs.
    let hidden = ["/tmp", "/var/tmp", "/dev/shm", "/run"];
    if let Some(p) = read
        .iter()
        .find(|p| hidden.iter().any(|h| p.starts_with(h)))
    {
        return Err(CurateError::Sandbox(recode_sandbox::ExecError::Config(format!(
            "{} is under a directory the sandbox replaces with a private tmpfs ({}): set RECODE_CACHE to a directory elsewhere",
            p.display(),
            hidden.join(", ")
        ))));
    }
    cfg.read_only_paths = read.into_iter().collect();
    Ok(ExecutorPool::start(cfg)?)
}

/// Writes `rows.jsonl`, `rows.meta.jsonl`, `rejects.jsonl` and `report.json` into `dir`.
pub fn write_outputs(dir: &Path, out: &VerifyOutput) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CurateError::io(dir, e))?;
    write_jsonl(&dir.join("rows.jsonl"), &out.rows)?;
    write_jsonl(&dir.join("rows.meta.jsonl"), &out.meta)?;
    write_jsonl(&dir.join("rejects.jsonl"), &out.rejects)?;
    let report = dir.join("report.json");
    let json = serde_json::to_vec_pretty(&out.report).expect("report serialises");
    std::fs::write(&report, json).map_err(|e| CurateError::io(&report, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(warnings: &[(&str, &str, bool)]) -> RunOutcome {
        RunOutcome {
            status: "ok".into(),
            error: None,
            warnings: warnings
                .iter()
                .map(|(c, m, library)| RunWarning {
                    category: c.to_string(),
                    message: m.to_string(),
                    filename: String::new(),
                    library: *library,
                })
                .collect(),
        }
    }

    #[test]
    fn only_new_library_warnings_count() {
        let stdlib = (
            "DeprecationWarning",
            "module 'sre_constants' is deprecated",
            false,
        );
        let lib = (
            "DeprecationWarning",
            "Function 'semver.parse' is deprecated",
            true,
        );
        let naming = ("UserWarning", "parse() will change", false);
        // The stdlib warning is seen on both sides or on the new side only: never counted.
        assert!(fresh_library_warnings(&run(&[stdlib]), &run(&[stdlib]), None).is_empty());
        assert!(fresh_library_warnings(&run(&[]), &run(&[stdlib]), None).is_empty());
        // A library warning new on the new version counts; one the old version emitted too does not.
        assert_eq!(
            fresh_library_warnings(&run(&[]), &run(&[lib]), None).len(),
            1
        );
        assert!(fresh_library_warnings(&run(&[lib]), &run(&[lib]), None).is_empty());
        // A warning from elsewhere counts when its text names the symbol.
        assert_eq!(
            fresh_library_warnings(&run(&[]), &run(&[naming]), Some("parse")).len(),
            1
        );
        assert!(fresh_library_warnings(&run(&[]), &run(&[naming]), Some("compare")).is_empty());
    }

    #[test]
    fn display_names_map_to_distributions() {
        assert_eq!(distribution("PyTorch"), "torch");
        assert_eq!(distribution("Scikit-learn"), "scikit-learn");
        assert_eq!(distribution("Numpy"), "numpy");
        assert_eq!(distribution("packaging"), "packaging");
        assert_eq!(with_eq("2.0.0"), "==2.0.0");
        assert_eq!(with_eq("==2.0.0"), "==2.0.0");
    }
}
