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
    let pythons = match python {
        Some(p) => vec![find_interpreter(p)?],
        None => candidates(),
    };
    let mut tried = Vec::new();
    for binary_only in [true, false] {
        for py in &pythons {
            match try_pair(mgr, py, dist, old, new, binary_only) {
                Ok((o, n, top_level)) => {
                    tracing::info!("{dist} {old} / {new}: Python {}", py.version);
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
