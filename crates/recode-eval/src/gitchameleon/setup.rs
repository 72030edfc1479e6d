//! Building the environments (`recode eval setup --bench gitchameleon`) through `recode-venv`:
//! cached per spec, locked, complete or absent (a failed build leaves nothing), in parallel.
//!
//! Each [`EnvSpec`] becomes a `recode_venv::EnvSpec`: the interpreter of its Python line (the
//! newest pyenv build of it; the harness's image has 3.7.17 / 3.9.19 / 3.10.14, see
//! [`harness_patch_version`]), pip upgraded first, the library and every dependency token in one
//! resolver call, then the harness's pins as follow-up installs whose failure is only recorded.
//! Differences from the harness: venvs are not made with `--copies`, and pip installs from a
//! wheelhouse it has just filled (`pip wheel`, then `pip install --no-index`), which resolves
//! the same versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use recode_venv::{find_interpreter, Interpreter, VenvError};
pub use recode_venv::{EnvManager, Venv};
use serde::Serialize;

use super::envs::{harness_patch_version, EnvSpec};

/// The `recode-venv` spec of a GitChameleon environment on `python`.
pub fn venv_spec(env: &EnvSpec, python: Interpreter) -> recode_venv::EnvSpec {
    let mut spec = recode_venv::EnvSpec::new(python, env.requirements.iter().cloned());
    spec.upgrade_pip = true;
    spec.after = env.pins.clone();
    spec
}

/// Why an environment is not available.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvFailure {
    /// `no_interpreter`, `not_on_index`, `source_build`, `resolver_conflict`, `pip`,
    /// `unsupported` or `io`.
    pub class: String,
    /// The error, with pip's last lines when pip failed.
    pub detail: String,
}

impl EnvFailure {
    fn from_venv(e: &VenvError) -> EnvFailure {
        let detail = e.to_string();
        let class = match e {
            VenvError::NoInterpreter { .. } | VenvError::BrokenInterpreter { .. } => {
                "no_interpreter"
            }
            VenvError::Pip { tail, .. } => {
                if tail.contains("No matching distribution") {
                    "not_on_index"
                } else if tail.contains("ResolutionImpossible") || tail.contains("conflict") {
                    "resolver_conflict"
                } else if tail.contains("Failed building wheel")
                    || tail.contains("subprocess-exited-with-error")
                    || tail.contains("Failed to build")
                {
                    "source_build"
                } else {
                    "pip"
                }
            }
            _ => "io",
        };
        EnvFailure {
            class: class.into(),
            detail,
        }
    }
}

/// An environment's state on this machine.
#[derive(Debug, Clone)]
pub struct EnvState {
    /// The GitChameleon environment.
    pub env: EnvSpec,
    /// The interpreter version used (None when none was found).
    pub python: Option<String>,
    /// The built venv, or why there is none.
    pub venv: Result<Venv, EnvFailure>,
}

impl EnvState {
    /// The pinned interpreter line's patch version differs from the harness's image.
    pub fn python_note(&self) -> Option<String> {
        let used = self.python.as_deref()?;
        let want = harness_patch_version(&self.env.python_version)?;
        (used != want).then(|| format!("Python {used} (harness: {want})"))
    }
}

/// Finds interpreters once per Python line.
#[derive(Default)]
pub struct Interpreters {
    found: Mutex<BTreeMap<String, Result<Interpreter, EnvFailure>>>,
}

impl Interpreters {
    /// The newest interpreter of the `3.X` line (pyenv, then `PATH`).
    pub fn get(&self, line: &str) -> Result<Interpreter, EnvFailure> {
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        found
            .entry(line.to_string())
            .or_insert_with(|| find_interpreter(line).map_err(|e| EnvFailure::from_venv(&e)))
            .clone()
    }
}

fn unsupported(env: &EnvSpec) -> Option<EnvFailure> {
    env.pip.as_ref().map(|v| EnvFailure {
        class: "unsupported".into(),
        detail: format!("the dependency token `pip={v}` (pin pip) is not supported"),
    })
}

/// The state of `env` without building anything.
pub fn lookup(mgr: &EnvManager, interps: &Interpreters, env: &EnvSpec) -> EnvState {
    let python = interps.get(&env.python_version);
    let version = python.as_ref().ok().map(|i| i.version.clone());
    let venv = python.and_then(|py| {
        if let Some(f) = unsupported(env) {
            return Err(f);
        }
        mgr.lookup(&venv_spec(env, py)).ok_or_else(|| EnvFailure {
            class: "not_built".into(),
            detail: format!(
                "environment {} ({} on Python {}) is not built: run `recode eval setup --bench \
                 gitchameleon --library {}`",
                env.key,
                env.pinned(),
                env.python_version,
                env.pinned()
            ),
        })
    });
    EnvState {
        env: env.clone(),
        python: version,
        venv,
    }
}

/// Builds (or reuses) `env`.
pub fn ensure(mgr: &EnvManager, interps: &Interpreters, env: &EnvSpec) -> EnvState {
    let python = interps.get(&env.python_version);
    let version = python.as_ref().ok().map(|i| i.version.clone());
    let venv = python.and_then(|py| {
        if let Some(f) = unsupported(env) {
            return Err(f);
        }
        mgr.ensure(&venv_spec(env, py))
            .map_err(|e| EnvFailure::from_venv(&e))
    });
    EnvState {
        env: env.clone(),
        python: version,
        venv,
    }
}

/// Builds every environment of `envs` with `jobs` builders at once, largest problem count first
/// (most problems scorable earliest); `done` is called as each finishes. Results are in the
/// order of `envs`.
pub fn ensure_all(
    mgr: &EnvManager,
    envs: &[EnvSpec],
    jobs: usize,
    done: &(dyn Fn(&EnvState) + Sync),
) -> Vec<EnvState> {
    let interps = Interpreters::default();
    let mut order: Vec<usize> = (0..envs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(envs[i].problems.len()));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<EnvState>>> = Mutex::new(vec![None; envs.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, envs.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let state = ensure(mgr, &interps, &envs[i]);
                done(&state);
                out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(state);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Disk an environment will take, bytes: its venv plus the wheels kept in the wheelhouse. From
/// sizes measured here: 207–284 MB per venv plus ~75 MB of wheels (scipy, sympy), ~2 GB for a
/// torch venv plus its wheel (spec §5).
pub fn estimated_bytes(env: &EnvSpec) -> u64 {
    let heavy = env.requirements.iter().chain(&env.pins).any(|r| {
        let name = r.to_lowercase();
        name.starts_with("torch") || name.starts_with("tensorflow")
    });
    if heavy {
        4 << 30
    } else {
        350 << 20
    }
}

/// Bytes under `path` (0 when absent); symlinks are not followed.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| dir_bytes(&e.path()))
        .sum()
}

/// The interpreter a fork server runs on for GitChameleon's exec jobs (any Python ≥ 3.8: it only
/// forks, isolates and execs the environment's interpreter): `$RECODE_VENV/bin/python` when
/// present, else the newest interpreter found.
pub fn server_python() -> Result<PathBuf, VenvError> {
    if let Some(v) = std::env::var_os("RECODE_VENV") {
        let p = PathBuf::from(v).join("bin/python");
        if p.exists() {
            return Ok(p);
        }
    }
    recode_venv::list_interpreters()
        .into_iter()
        .find(|i| i.version_key() >= vec![3, 8])
        .map(|i| i.path)
        .ok_or_else(|| VenvError::NoInterpreter {
            requested: ">=3.8 (for the sandbox's fork server)".into(),
            searched: Vec::new(),
            available: Vec::new(),
        })
}
