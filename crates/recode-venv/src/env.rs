//! Cached virtualenvs: one directory per [`EnvSpec`], complete or absent.
//!
//! Build steps (under the env's lock): `python -m venv DIR`; optionally upgrade pip; `pip wheel`
//! the requirements into a private directory whose wheels are then renamed into the shared
//! wheelhouse (no wheelhouse lock: parallel builders never wait for each other's downloads or
//! source builds); `pip install --no-index --find-links WHEELHOUSE`; the follow-up installs
//! ([`EnvSpec::after`]) the same way, one call each, failures recorded; `pip freeze`; write
//! [`ENV_RECORD`]; write [`COMPLETE_MARKER`] last. Any other failure removes the directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{sandbox_read_paths, Interpreter, Result, VenvError};

/// File whose presence marks an env as completely built (written last).
pub const COMPLETE_MARKER: &str = ".recode-complete";
/// JSON record of the env inside its directory: spec, interpreter, `pip freeze`, build time.
pub const ENV_RECORD: &str = "recode-env.json";
/// Lines of pip's output kept in errors.
const TAIL_LINES: usize = 20;

/// What an environment contains: an interpreter and requirement pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// The base interpreter.
    pub python: Interpreter,
    /// pip requirement strings, e.g. `packaging==21.3` (order does not change the key).
    pub requirements: Vec<String>,
    /// Extra arguments for `pip wheel` and `pip install` (e.g. `--only-binary=:all:`).
    #[serde(default)]
    pub pip_args: Vec<String>,
    /// Upgrade pip inside the venv first (old interpreters ship pips without newer wheel tags).
    #[serde(default)]
    pub upgrade_pip: bool,
    /// Requirements installed after the main install, one pip call each and in this order, so
    /// each may change what the resolver chose before (e.g. a benchmark's pins applied after its
    /// library). A failing one is recorded in [`Venv::failed_after`], not fatal.
    #[serde(default)]
    pub after: Vec<String>,
}

impl EnvSpec {
    /// A spec with the given interpreter and requirements, default pip settings.
    pub fn new(
        python: Interpreter,
        requirements: impl IntoIterator<Item = impl Into<String>>,
    ) -> EnvSpec {
        EnvSpec {
            python,
            requirements: requirements.into_iter().map(Into::into).collect(),
            pip_args: Vec::new(),
            upgrade_pip: false,
            after: Vec::new(),
        }
    }

    /// Directory name: readable prefix (version, pins) plus a hash of everything that matters.
    pub fn key(&self) -> String {
        let mut reqs = self.requirements.clone();
        reqs.sort();
        reqs.dedup();
        let mut canonical = serde_json::json!({
            "python": self.python.path, "version": self.python.version,
            "requirements": reqs, "pip_args": self.pip_args, "upgrade_pip": self.upgrade_pip,
        });
        // Keys of specs without follow-up installs stay what they were.
        if !self.after.is_empty() {
            canonical["after"] = serde_json::json!(self.after);
        }
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut slug: String = reqs
            .join("_")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        slug.truncate(60);
        format!("py{}-{slug}-{hash}", self.python.version)
    }

    fn requirement_line(&self) -> String {
        self.requirements.join(" ")
    }
}

/// A complete virtualenv.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Venv {
    /// The venv directory.
    pub dir: PathBuf,
    /// What it was built from.
    pub spec: EnvSpec,
    /// `pip freeze` after installing (`name==version` lines).
    pub freeze: Vec<String>,
    /// Seconds the build took.
    pub build_secs: f64,
    /// Follow-up installs ([`EnvSpec::after`]) that failed, with pip's last lines.
    #[serde(default)]
    pub failed_after: Vec<(String, String)>,
    /// False when this call built it, true when an earlier build was reused.
    #[serde(skip)]
    pub reused: bool,
}

impl Venv {
    /// The venv's interpreter (`DIR/bin/python`).
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin/python")
    }

    /// Version pinned for `dist` in `pip freeze` (name compared case- and `-`/`_`-insensitively).
    pub fn installed_version(&self, dist: &str) -> Option<String> {
        let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        self.freeze.iter().find_map(|l| {
            let (n, v) = l.split_once("==")?;
            (norm(n.trim()) == norm(dist)).then(|| v.trim().to_string())
        })
    }

    /// Host paths a sandbox must expose read-only to run this venv's Python.
    pub fn read_paths(&self) -> Result<Vec<PathBuf>> {
        sandbox_read_paths(&self.python())
    }
}

/// Builds and finds cached virtualenvs under a cache root.
#[derive(Debug, Clone)]
pub struct EnvManager {
    root: PathBuf,
    offline: bool,
}

impl EnvManager {
    /// Envs under `root/envs`, wheels in `root/wheels`, pip's cache in `root/pip-cache`.
    pub fn new(root: impl Into<PathBuf>) -> EnvManager {
        EnvManager {
            root: root.into(),
            offline: false,
        }
    }

    /// The recode cache: `$RECODE_CACHE`, else `~/.cache/recode`.
    pub fn from_env() -> EnvManager {
        let root = std::env::var_os("RECODE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| "/tmp".into())
                    .join(".cache/recode")
            });
        EnvManager::new(root)
    }

    /// Install only from the wheelhouse (no index): rebuilds without network.
    pub fn offline(mut self, offline: bool) -> EnvManager {
        self.offline = offline;
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the env of `spec` lives (complete or not).
    pub fn env_dir(&self, spec: &EnvSpec) -> PathBuf {
        self.root.join("envs").join(spec.key())
    }

    /// The shared directory of wheels every build installs from.
    pub fn wheelhouse(&self) -> PathBuf {
        self.root.join("wheels")
    }

    /// The complete env of `spec`, if one was built; never builds.
    pub fn lookup(&self, spec: &EnvSpec) -> Option<Venv> {
        load_complete(&self.env_dir(spec))
    }

    /// The env of `spec`: reused when complete, else built now (a concurrent builder of the same
    /// spec is waited for).
    pub fn ensure(&self, spec: &EnvSpec) -> Result<Venv> {
        let dir = self.env_dir(spec);
        if let Some(v) = load_complete(&dir) {
            return Ok(v);
        }
        let envs = self.root.join("envs");
        std::fs::create_dir_all(&envs).map_err(|e| VenvError::io(&envs, e))?;
        let _lock = lock(&envs.join(format!("{}.lock", spec.key())), true)?;
        if let Some(v) = load_complete(&dir) {
            return Ok(v);
        }
        if dir.exists() {
            tracing::info!("removing incomplete env {}", dir.display());
            std::fs::remove_dir_all(&dir).map_err(|e| VenvError::io(&dir, e))?;
        }
        let start = Instant::now();
        tracing::info!(
            "building env {} (Python {}: {})",
            dir.display(),
            spec.python.version,
            spec.requirement_line()
        );
        match self.build(spec, &dir, start) {
            Ok(v) => {
                tracing::info!("env ready in {:.1} s: {}", v.build_secs, dir.display());
                Ok(v)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn build(&self, spec: &EnvSpec, dir: &Path, start: Instant) -> Result<Venv> {
        let out = Command::new(&spec.python.path)
            .arg("-m")
            .arg("venv")
            .arg(dir)
            .output()
            .map_err(|e| VenvError::io(&spec.python.path, e))?;
        if !out.status.success() {
            return Err(VenvError::CreateVenv {
                dir: dir.to_path_buf(),
                version: spec.python.version.clone(),
                tail: tail(&out),
            });
        }
        let py = dir.join("bin/python");
        if spec.upgrade_pip {
            self.pip(
                spec,
                &py,
                "upgrade",
                &["install", "--upgrade", "pip"],
                false,
            )?;
        }
        if !spec.requirements.is_empty() {
            self.install(spec, &py, &spec.requirements)?;
        }
        let mut failed_after = Vec::new();
        for req in &spec.after {
            if let Err(e) = self.install(spec, &py, std::slice::from_ref(req)) {
                tracing::warn!("{}: follow-up install failed: {e}", dir.display());
                let tail = match e {
                    VenvError::Pip { tail, .. } => tail,
                    other => other.to_string(),
                };
                failed_after.push((req.clone(), tail));
            }
        }
        let freeze = self.pip(spec, &py, "freeze", &["freeze"], false)?;
        let freeze: Vec<String> = freeze
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('-') && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        let venv = Venv {
            dir: dir.to_path_buf(),
            spec: spec.clone(),
            freeze,
            build_secs: start.elapsed().as_secs_f64(),
            failed_after,
            reused: false,
        };
        let record = dir.join(ENV_RECORD);
        let json = serde_json::to_vec_pretty(&venv).expect("env record serialises");
        std::fs::write(&record, json).map_err(|e| VenvError::io(&record, e))?;
        std::fs::write(dir.join("freeze.txt"), venv.freeze.join("\n") + "\n")
            .map_err(|e| VenvError::io(dir.join("freeze.txt"), e))?;
        let marker = dir.join(COMPLETE_MARKER);
        std::fs::write(&marker, b"").map_err(|e| VenvError::io(&marker, e))?;
        Ok(venv)
    }

    /// `requirements` into the venv in one pip call: wheels built or downloaded into a private
    /// directory and moved into the wheelhouse file by file (atomic renames: builders never wait
    /// for each other, and the wheelhouse never holds a partial wheel), then an install from the
    /// wheelhouse alone. Offline, only the install.
    fn install(&self, spec: &EnvSpec, py: &Path, requirements: &[String]) -> Result<()> {
        let wheels = self.wheelhouse();
        std::fs::create_dir_all(&wheels).map_err(|e| VenvError::io(&wheels, e))?;
        let wheels_s = wheels.to_string_lossy().into_owned();
        if !self.offline {
            sweep_stale_incoming(&wheels);
            let private = wheels.join(format!(
                ".incoming-{}-{}",
                std::process::id(),
                INCOMING.fetch_add(1, Ordering::Relaxed)
            ));
            let private_s = private.to_string_lossy().into_owned();
            let mut args = vec![
                "wheel",
                "--wheel-dir",
                &private_s,
                "--find-links",
                &wheels_s,
            ];
            args.extend(spec.pip_args.iter().map(String::as_str));
            args.extend(requirements.iter().map(String::as_str));
            let built = self
                .pip(spec, py, "wheel", &args, true)
                .and_then(|_| publish_wheels(&private, &wheels));
            let _ = std::fs::remove_dir_all(&private);
            built?;
        }
        let mut args = vec!["install", "--no-index", "--find-links", &wheels_s];
        args.extend(spec.pip_args.iter().map(String::as_str));
        args.extend(requirements.iter().map(String::as_str));
        self.pip(spec, py, "install", &args, true)?;
        Ok(())
    }

    /// Runs the venv's pip; returns its stdout, or the last lines of its output as the error.
    fn pip(
        &self,
        spec: &EnvSpec,
        py: &Path,
        step: &str,
        args: &[&str],
        shared_cache: bool,
    ) -> Result<String> {
        let mut cmd = Command::new(py);
        cmd.args(["-m", "pip"]).args(args);
        cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env_remove("PYTHONPATH")
            .env_remove("PIP_REQUIRE_VIRTUALENV");
        if shared_cache {
            cmd.env("PIP_CACHE_DIR", self.root.join("pip-cache"));
        }
        tracing::debug!("pip {}", args.join(" "));
        let out = cmd.output().map_err(|e| VenvError::io(py, e))?;
        if !out.status.success() {
            return Err(VenvError::Pip {
                step: step.to_string(),
                requirements: spec.requirement_line(),
                version: spec.python.version.clone(),
                tail: tail(&out),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The env in `dir` if its completion marker and record are there.
fn load_complete(dir: &Path) -> Option<Venv> {
    if !dir.join(COMPLETE_MARKER).exists() {
        return None;
    }
    let bytes = std::fs::read(dir.join(ENV_RECORD)).ok()?;
    let mut v: Venv = serde_json::from_slice(&bytes).ok()?;
    v.reused = true;
    Some(v)
}

/// Private wheel directories made by this process so far (their names stay unique).
static INCOMING: AtomicUsize = AtomicUsize::new(0);

/// Removes the private wheel directories of builders that are gone (killed mid-download: their
/// partial files would otherwise stay forever; pip never reads them, `--find-links` does not
/// descend into directories).
fn sweep_stale_incoming(wheels: &Path) {
    let Ok(entries) = std::fs::read_dir(wheels) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".incoming-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            tracing::info!("removing {} (its builder is gone)", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Moves every file of `from` into `to` by rename; a wheel already there is kept (wheel files
/// of one name have the same content).
fn publish_wheels(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).map_err(|e| VenvError::io(from, e))? {
        let entry = entry.map_err(|e| VenvError::io(from, e))?;
        let target = to.join(entry.file_name());
        if !target.exists() {
            std::fs::rename(entry.path(), &target).map_err(|e| VenvError::io(&target, e))?;
        }
    }
    Ok(())
}

/// An open lock file held until dropped (exclusive or shared).
fn lock(path: &Path, exclusive: bool) -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| VenvError::io(path, e))?;
    let r = if exclusive { f.lock() } else { f.lock_shared() };
    r.map_err(|e| VenvError::io(path, e))?;
    Ok(f)
}

/// The last [`TAIL_LINES`] lines of a command's stdout followed by its stderr.
fn tail(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}
