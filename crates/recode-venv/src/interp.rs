//! Interpreter discovery: pyenv's versions first, then `python3.X` on `PATH`; every candidate is
//! run once to learn its exact version and install prefixes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::ProbeError;
use crate::{Result, VenvError};

/// A working Python interpreter and what it reported about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// The real executable (`sys.executable`; never a pyenv shim).
    pub path: PathBuf,
    /// Exact version, e.g. `3.10.13`.
    pub version: String,
    /// `sys.prefix`.
    pub prefix: PathBuf,
    /// `sys.base_prefix` (the installation a venv was made from; `prefix` on Python 2).
    pub base_prefix: PathBuf,
}

impl Interpreter {
    /// Runs `path` once and reads its version and prefixes.
    pub fn probe(path: &Path) -> Result<Interpreter> {
        const PROBE: &str = "import sys, json; print(json.dumps({'path': sys.executable, \
            'version': '%d.%d.%d' % tuple(sys.version_info[:3]), 'prefix': sys.prefix, \
            'base_prefix': getattr(sys, 'base_prefix', sys.prefix)}))";
        let broken = |cause: ProbeError| VenvError::BrokenInterpreter {
            path: path.to_path_buf(),
            cause,
        };
        let out = Command::new(path)
            .args(["-E", "-c", PROBE])
            .output()
            .map_err(|e| broken(ProbeError::Spawn(e)))?;
        if !out.status.success() {
            return Err(broken(ProbeError::Exit {
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).map_err(|source| {
            broken(ProbeError::Output {
                output: text.to_string(),
                source,
            })
        })
    }

    /// `major.minor`, e.g. `3.10`.
    pub fn minor(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Version as numbers, for ordering (`3.10.13` > `3.9.18`).
    pub fn version_key(&self) -> Vec<u32> {
        version_numbers(&self.version)
    }

    /// Whether this interpreter satisfies a request like `3`, `3.9` or `3.10.13`.
    pub fn matches(&self, requested: &str) -> bool {
        let want = version_numbers(requested);
        !want.is_empty() && self.version_key().starts_with(&want)
    }
}

/// `"3.10.13"` -> `[3, 10, 13]`; stops at the first part that is not a number.
fn version_numbers(v: &str) -> Vec<u32> {
    v.split('.').map_while(|p| p.parse().ok()).collect()
}

/// pyenv's versions directory: `$PYENV_ROOT/versions`, else `~/.pyenv/versions`.
fn pyenv_versions_dir() -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))?;
    Some(root.join("versions"))
}

/// Directories named like a CPython version under pyenv, as (version numbers, python path).
fn pyenv_candidates(dir: &Path) -> Vec<(Vec<u32>, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let nums = version_numbers(&name);
            // Only plain CPython builds (`3.10.13`), not `pypy3.9-…`, `3.13.0t` or virtualenvs.
            let plain = nums.len() == 3
                && name
                    == nums
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
            let py = e.path().join("bin/python");
            (plain && py.exists()).then_some((nums, py))
        })
        .collect()
}

/// `pythonX.Y` executables on `PATH` (pyenv shims excluded: they are not interpreters), as
/// (version numbers from the name, path).
fn path_candidates() -> Vec<(Vec<u32>, PathBuf)> {
    let mut out = Vec::new();
    for dir in path_dirs() {
        if dir.ends_with("shims") {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(v) = name.strip_prefix("python") else {
                continue;
            };
            let nums = version_numbers(v);
            if nums.len() == 2 && v == format!("{}.{}", nums[0], nums[1]) {
                out.push((nums, e.path()));
            }
        }
    }
    out
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// Every interpreter found (pyenv, then `PATH`), one per executable, newest version first.
pub fn list_interpreters() -> Vec<Interpreter> {
    let mut cands: Vec<(Vec<u32>, PathBuf)> = pyenv_versions_dir()
        .map(|d| pyenv_candidates(&d))
        .unwrap_or_default();
    cands.extend(path_candidates());
    let mut seen = BTreeSet::new();
    let mut found: Vec<Interpreter> = cands
        .into_iter()
        .filter_map(|(_, p)| Interpreter::probe(&p).ok())
        .filter(|i| seen.insert(std::fs::canonicalize(&i.path).unwrap_or(i.path.clone())))
        .collect();
    found.sort_by_key(|i| std::cmp::Reverse(i.version_key()));
    found
}

/// The interpreter for a request: a path to an executable, or a version (`3`, `3.9`,
/// `3.10.13`); the newest matching pyenv build wins, then `pythonX.Y` on `PATH`.
pub fn find_interpreter(requested: &str) -> Result<Interpreter> {
    let req = requested.trim();
    if req.contains('/') {
        return Interpreter::probe(Path::new(req));
    }
    let want = version_numbers(req);
    let versions_dir = pyenv_versions_dir();
    let mut cands: Vec<(Vec<u32>, PathBuf)> = versions_dir
        .as_deref()
        .map(pyenv_candidates)
        .unwrap_or_default();
    cands.sort_by(|a, b| b.0.cmp(&a.0));
    let mut path_cands = path_candidates();
    path_cands.sort_by(|a, b| b.0.cmp(&a.0));
    cands.extend(path_cands);
    if !want.is_empty() {
        for (nums, path) in &cands {
            // Names carry major.minor (PATH) or the full version (pyenv): compare the common part
            // first, then the probe's exact version.
            let n = nums.len().min(want.len());
            if nums[..n] != want[..n] {
                continue;
            }
            match Interpreter::probe(path) {
                Ok(i) if i.matches(req) => {
                    tracing::debug!(requested, path = %i.path.display(), version = %i.version, "interpreter found");
                    return Ok(i);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("skipping {}: {e}", path.display()),
            }
        }
    }
    let mut searched: Vec<PathBuf> = versions_dir.into_iter().collect();
    searched.extend(path_dirs());
    let available: BTreeSet<String> = cands
        .iter()
        .map(|(n, _)| n.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
        .collect();
    Err(VenvError::NoInterpreter {
        requested: requested.to_string(),
        searched,
        available: available.into_iter().collect(),
    })
}

/// Host paths a sandbox must let a program read to run `python` (an interpreter or a venv's
/// `bin/python`): its `sys.prefix` (the venv), `sys.base_prefix` (the installation) and the real
/// executable; canonical, deduplicated, none inside another.
pub fn sandbox_read_paths(python: &Path) -> Result<Vec<PathBuf>> {
    let i = Interpreter::probe(python)?;
    let exe = std::fs::canonicalize(&i.path).map_err(|e| VenvError::io(&i.path, e))?;
    let mut paths: Vec<PathBuf> = [i.prefix, i.base_prefix, exe]
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();
    paths.sort();
    paths.dedup();
    let kept: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect();
    Ok(kept)
}
