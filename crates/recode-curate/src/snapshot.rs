//! The introspection snapshot of one installed version (`python/snapshot.py`, embedded): public
//! symbols with canonical ids, kinds, signatures, warnings on access. It runs trusted library
//! code only (imports and attribute access), so it runs directly in the venv, not the sandbox.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{CurateError, Result};

/// The embedded snapshot script.
pub const SNAPSHOT_PY: &str = include_str!("../python/snapshot.py");

/// One parameter of a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// `POSITIONAL_ONLY`, `POSITIONAL_OR_KEYWORD`, `VAR_POSITIONAL`, `KEYWORD_ONLY`, `VAR_KEYWORD`.
    pub kind: String,
    /// Whether it has a default ("no default" differs from a default of `None`).
    pub has_default: bool,
    /// `repr` of the default.
    pub default: Option<String>,
}

/// A warning seen while importing or accessing a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningSeen {
    /// Warning class name (`DeprecationWarning`, …).
    pub category: String,
    /// Its text.
    pub message: String,
    /// Reported at a file inside site-packages (the library or its dependencies).
    pub in_library: bool,
}

/// One public symbol, once per canonical id (re-exports collapse into `paths`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Defining module and qualified name, `packaging.version:LegacyVersion`.
    pub id: String,
    /// Public access paths (`packaging.version.LegacyVersion`, re-exports too).
    pub paths: Vec<String>,
    /// `class`, `exception`, `function`, `method`, `classmethod`, `staticmethod`, `property`,
    /// `attribute`, `constant`, `typevar`.
    pub kind: String,
    /// `str(inspect.signature(...))`, when it has one.
    pub signature: Option<String>,
    /// Its parameters.
    pub params: Option<Vec<Param>>,
    /// The docstring says "deprecated" (weak evidence).
    #[serde(default)]
    pub doc_deprecated: bool,
    /// Warnings emitted when accessing it.
    #[serde(default)]
    pub warnings: Vec<WarningSeen>,
    /// Canonical id of the defining class, for class members.
    pub owner: Option<String>,
    /// Listed in some module's `__all__`.
    #[serde(default)]
    pub exported: bool,
}

impl Symbol {
    /// A helper defined in a private module (`click._compat.iteritems`) that is only visible
    /// because a public module imported it: not listed in any `__all__`, not at the top level.
    pub fn is_private_helper(&self, top_level: &[String]) -> bool {
        let module = self.id.split(':').next().unwrap_or("");
        let private = module.split('.').any(|p| p.starts_with('_'));
        let at_top = self.paths.iter().any(|p| {
            p.rsplit_once('.')
                .is_some_and(|(m, _)| top_level.iter().any(|t| t == m))
        });
        self.owner.is_none() && private && !self.exported && !at_top
    }
}

impl Symbol {
    /// The path users should write: the one in the defining module, else the shortest.
    pub fn primary_path(&self) -> &str {
        let module = self.id.split(':').next().unwrap_or("");
        let qual = self.id.split(':').nth(1).unwrap_or("");
        let canonical = format!("{module}.{qual}");
        self.paths
            .iter()
            .find(|p| **p == canonical)
            .or_else(|| self.paths.iter().min_by_key(|p| (p.len(), p.as_str())))
            .map(String::as_str)
            .unwrap_or(&self.id)
    }
}

/// The snapshot of one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Importable top-level modules of the distribution.
    pub top_level: Vec<String>,
    /// Interpreter version.
    pub python: String,
    /// Every module visited: `None` when it imported, else the error line.
    pub modules: BTreeMap<String, Option<String>>,
    /// Public symbols.
    pub symbols: Vec<Symbol>,
}

/// Output of a trusted Python run: stdout, or the error tail.
pub(crate) fn run_trusted(
    python: &Path,
    args: &[&str],
    timeout: Duration,
) -> std::result::Result<String, String> {
    let mut child = Command::new(python)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        let lines: Vec<&str> = stderr.lines().collect();
        Err(format!(
            "{status}: {}",
            lines[lines.len().saturating_sub(8)..].join("\n")
        ))
    }
}

/// Snapshots `dist` (optionally only `modules`) with the venv's interpreter in isolated mode.
pub fn take_snapshot(
    python: &Path,
    dist: &str,
    version: &str,
    modules: &[String],
    timeout: Duration,
) -> Result<Snapshot> {
    let mut args = vec!["-I", "-c", SNAPSHOT_PY, dist];
    args.extend(modules.iter().map(String::as_str));
    let fail = |detail: String| CurateError::Snapshot {
        dist: dist.to_string(),
        version: version.to_string(),
        detail,
    };
    // `-c` leaves sys.argv[0] as "-c": the script reads its arguments from sys.argv[1:].
    let out = run_trusted(python, &args, timeout).map_err(fail)?;
    serde_json::from_str(&out).map_err(|e| fail(format!("unreadable snapshot: {e}")))
}

/// The distribution's importable top-level modules in a venv.
pub fn top_level_modules(
    python: &Path,
    dist: &str,
    timeout: Duration,
) -> std::result::Result<Vec<String>, String> {
    let out = run_trusted(
        python,
        &["-I", "-c", SNAPSHOT_PY, dist, "--top-level-only"],
        timeout,
    )?;
    #[derive(Deserialize)]
    struct Top {
        top_level: Vec<String>,
    }
    serde_json::from_str::<Top>(&out)
        .map(|t| t.top_level)
        .map_err(|e| format!("unreadable output {out:?}: {e}"))
}
