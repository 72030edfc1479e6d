//! The environments of a version pair: one interpreter for both versions, chosen by trying
//! (newest first) the interpreters on which both versions install **and** import.

use std::collections::BTreeSet;
use std::time::Duration;

use recode_venv::{find_interpreter, list_interpreters, EnvManager, EnvSpec, Interpreter, Venv};

use crate::snapshot::{run_trusted, top_level_modules};
use crate::{CurateError, Result};

/// Both versions of a distribution installed on one interpreter.
#[derive(Debug, Clone)]
pub struct PairEnvs {
    /// The interpreter of both venvs.
    pub python: Interpreter,
    /// Venv with the old version.
    pub old: Venv,
    /// Venv with the new version.
    pub new: Venv,
    /// Importable top-level modules of the distribution (new version).
    pub top_level: Vec<String>,
    /// Interpreters tried before this one, with why they failed.
    pub tried: Vec<String>,
}

impl PairEnvs {
    /// The venv of `version` (old or new).
    pub fn venv(&self, old: bool) -> &Venv {
        if old {
            &self.old
        } else {
            &self.new
        }
    }
}

/// One interpreter per minor version (the newest patch), newest first, Python >= 3.6.
fn candidates() -> Vec<Interpreter> {
    let mut seen = BTreeSet::new();
    list_interpreters()
        .into_iter()
        .filter(|i| i.version_key() >= vec![3, 6])
        .filter(|i| seen.insert(i.minor()))
        .collect()
}

/// Builds (or reuses) the venvs of `dist==old` and `dist==new` on `python` if given, else on
/// the newest interpreter where both install and import. Binary wheels are tried first on every
/// interpreter (fast failures), then source builds.
pub fn pair_envs(
    mgr: &EnvManager,
    dist: &str,
    old: &str,
    new: &str,
    python: Option<&str>,
) -> Result<PairEnvs> {
    let remembered = ChoiceCache::new(mgr);
    let pythons = match python {
        Some(p) => vec![find_interpreter(p)?],
        None => {
            let mut all = candidates();
            // The interpreter chosen last time goes first: failed attempts are not cached.
            if let Some(v) = remembered.get(dist, old, new) {
                if let Some(i) = all.iter().position(|p| p.version == v) {
                    let first = all.remove(i);
                    all.insert(0, first);
                }
            }
            all
        }
    };
    // A pair that worked before needs no existence check (one index request saved).
    if remembered.get(dist, old, new).is_none() {
        if let Some(py) = pythons.first() {
            check_versions_exist(mgr, py, dist, &[old, new])?;
        }
    }
    let mut tried = Vec::new();
    for binary_only in [true, false] {
        for py in &pythons {
            match try_pair(mgr, py, dist, old, new, binary_only) {
                Ok((o, n, top_level)) => {
                    tracing::info!("{dist} {old} / {new}: Python {}", py.version);
                    if python.is_none() {
                        remembered.put(dist, old, new, &py.version);
                    }
                    return Ok(PairEnvs {
                        python: py.clone(),
                        old: o,
                        new: n,
                        top_level,
                        tried,
                    });
                }
                Err(why) => {
                    let mode = if binary_only {
                        "wheels only"
                    } else {
                        "with sdists"
                    };
                    tracing::info!("{dist} on Python {} ({mode}): {why}", py.version);
                    tried.push(format!("Python {} ({mode}): {why}", py.version));
                }
            }
        }
    }
    Err(CurateError::NoCommonPython {
        dist: dist.into(),
        old: old.into(),
        new: new.into(),
        tried: tried.join("\n"),
    })
}

fn try_pair(
    mgr: &EnvManager,
    py: &Interpreter,
    dist: &str,
    old: &str,
    new: &str,
    binary_only: bool,
) -> std::result::Result<(Venv, Venv, Vec<String>), String> {
    let mut venvs = Vec::new();
    let mut top = Vec::new();
    for version in [old, new] {
        let mut spec = EnvSpec::new(py.clone(), [format!("{dist}=={version}")]);
        if binary_only {
            spec.pip_args.push("--only-binary=:all:".into());
        }
        let venv = mgr.ensure(&spec).map_err(|e| last_line(&e.to_string()))?;
        let timeout = Duration::from_secs(120);
        top = top_level_modules(&venv.python(), dist, timeout).map_err(|e| last_line(&e))?;
        if top.is_empty() {
            return Err(format!("{dist}=={version} installs no importable module"));
        }
        let imports: String = top.iter().map(|m| format!("import {m}\n")).collect();
        run_trusted(&venv.python(), &["-I", "-c", &imports], timeout)
            .map_err(|e| format!("{dist}=={version} does not import: {}", last_line(&e)))?;
        venvs.push(venv);
    }
    let new_venv = venvs.pop().expect("two venvs");
    let old_venv = venvs.pop().expect("two venvs");
    Ok((old_venv, new_venv, top))
}

/// The last non-empty line of an error (pip's or Python's final verdict).
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_string()
}

/// `1.0.0` and `1` name the same release for pip's `==`.
fn release_key(v: &str) -> String {
    let mut parts: Vec<&str> = v.trim().split('.').collect();
    while parts.len() > 1 && parts.last() == Some(&"0") {
        parts.pop();
    }
    parts.join(".").to_lowercase()
}

/// Fails fast, before trying every interpreter, when the index lacks the distribution or one of
/// the versions (`pip index versions` in an empty venv of `py`, Requires-Python ignored). When
/// the check itself cannot run (old pip, no index) it is skipped. A release whose only files are
/// wheels for other Pythons is not listed: `--python` then names an interpreter to check with.
fn check_versions_exist(
    mgr: &EnvManager,
    py: &Interpreter,
    dist: &str,
    versions: &[&str],
) -> Result<()> {
    let empty = match mgr.ensure(&EnvSpec::new(py.clone(), Vec::<String>::new())) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("version check skipped: {e}");
            return Ok(());
        }
    };
    let args = [
        "-m",
        "pip",
        "index",
        "versions",
        "--pre",
        "--ignore-requires-python",
        // Offline, pip's default retries and timeouts would stall for minutes.
        "--timeout",
        "15",
        "--retries",
        "1",
        dist,
    ];
    let listed = match run_trusted(&empty.python(), &args, Duration::from_secs(60)) {
        Ok(out) => out,
        Err(e) if e.contains("No matching distribution found") => {
            return Err(CurateError::NoSuchVersion {
                dist: dist.into(),
                version: versions.join(", "),
                detail: format!("no distribution named {dist}"),
            })
        }
        Err(e) => {
            tracing::debug!("version check skipped: {}", last_line(&e));
            return Ok(());
        }
    };
    let available: Vec<&str> = listed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Available versions:"))
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    if available.is_empty() {
        return Ok(());
    }
    for v in versions {
        if !available.iter().any(|a| release_key(a) == release_key(v)) {
            let shown: Vec<&str> = available.iter().take(15).copied().collect();
            return Err(CurateError::NoSuchVersion {
                dist: dist.into(),
                version: v.to_string(),
                detail: format!(
                    "for Python {}: {}{}; if it has wheels only for other Pythons, pass --python",
                    py.minor(),
                    shown.join(", "),
                    if available.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    Ok(())
}

/// The interpreter chosen per version pair (`$RECODE_CACHE/curate/pythons.json`), so a rerun
/// does not repeat the failed attempts on newer interpreters.
struct ChoiceCache {
    path: std::path::PathBuf,
}

impl ChoiceCache {
    fn new(mgr: &EnvManager) -> ChoiceCache {
        ChoiceCache {
            path: mgr.root().join("curate/pythons.json"),
        }
    }

    fn key(dist: &str, old: &str, new: &str) -> String {
        format!("{} {old} {new}", dist.to_lowercase())
    }

    fn load(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn get(&self, dist: &str, old: &str, new: &str) -> Option<String> {
        self.load().remove(&Self::key(dist, old, new))
    }

    /// Best effort: a lost update only costs a slower rerun.
    fn put(&self, dist: &str, old: &str, new: &str, version: &str) {
        let mut all = self.load();
        all.insert(Self::key(dist, old, new), version.to_string());
        let json = serde_json::to_vec_pretty(&all).expect("map serialises");
        let _ = recode_data::atomic::write_atomic(&self.path, &json);
    }
}
