//! The managed evaluation virtualenv (`recode eval setup`): the benchmark's pinned packages
//! (`python/requirements-eval.txt`, embedded), installed once; a stamp file makes re-runs instant.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned requirements (harness doc §4), embedded in the binary.
pub const REQUIREMENTS_EVAL: &str = include_str!("../../../python/requirements-eval.txt");

/// Name of the stamp file inside the venv; holds the requirements it was built from.
pub const STAMP_FILE: &str = ".recode-eval-stamp";

/// Errors while creating or checking the virtualenv.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A command could not be started.
    #[error("`{command}` failed: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed: {status}\n{stderr_tail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The venv is missing or was built from other pins.
    #[error("eval virtualenv {0} is not set up (run `recode eval setup`)")]
    NotSetUp(PathBuf),
}

/// Default location: `$RECODE_EVAL_VENV`, else `$RECODE_CACHE/venv-eval`, else
/// `~/.cache/recode/venv-eval`.
pub fn default_venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("RECODE_EVAL_VENV") {
        return PathBuf::from(v);
    }
    if let Some(c) = std::env::var_os("RECODE_CACHE") {
        return PathBuf::from(c).join("venv-eval");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache/recode/venv-eval")
}

/// The interpreter inside a venv.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// The venv's interpreter if the venv is complete and matches the embedded pins.
pub fn ready_python(venv: &Path) -> Result<PathBuf, SetupError> {
    let py = venv_python(venv);
    let stamp = std::fs::read_to_string(venv.join(STAMP_FILE)).unwrap_or_default();
    if py.exists() && stamp == REQUIREMENTS_EVAL {
        Ok(py)
    } else {
        Err(SetupError::NotSetUp(venv.to_path_buf()))
    }
}

fn run(cmd: &mut Command) -> Result<String, SetupError> {
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| SetupError::Spawn {
        command: line.clone(),
        source,
    })?;
    if !out.status.success() {
        let tail: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(SetupError::Command {
            command: line,
            status: out.status,
            stderr_tail: tail,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Outcome of [`setup_venv`].
#[derive(Debug, Clone)]
pub struct SetupReport {
    /// Interpreter of the ready venv.
    pub python: PathBuf,
    /// False when the stamp showed the venv was already complete.
    pub installed: bool,
    /// Output of the smoke check (versions, a torch matmul on CPU).
    pub check: String,
}

/// Smoke check run after installing: pinned versions present, torch computes on CPU.
const CHECK_PY: &str = "import numpy, torch, pandas, scipy, sympy, mpmath, pytest\n\
print('numpy', numpy.__version__, 'torch', torch.__version__, 'pandas', pandas.__version__,\n\
      'scipy', scipy.__version__, 'sympy', sympy.__version__)\n\
assert numpy.__version__ == '1.26.4', numpy.__version__\n\
print('torch.ones(2)@torch.ones(2) =', (torch.ones(2) @ torch.ones(2)).item())\n";

/// Creates (or reuses) the eval venv with the pinned packages; idempotent via the stamp file.
/// `base_python` makes the venv (default `python3`; the benchmark used 3.11).
pub fn setup_venv(venv: &Path, base_python: &Path, force: bool) -> Result<SetupReport, SetupError> {
    if !force {
        if let Ok(python) = ready_python(venv) {
            return Ok(SetupReport {
                python,
                installed: false,
                check: String::new(),
            });
        }
    }
    let py = venv_python(venv);
    if !py.exists() {
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent).map_err(|source| SetupError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        tracing::info!("creating virtualenv {}", venv.display());
        run(Command::new(base_python).arg("-m").arg("venv").arg(venv))?;
    }
    let req = venv.join("requirements-eval.txt");
    std::fs::write(&req, REQUIREMENTS_EVAL).map_err(|source| SetupError::Io {
        path: req.clone(),
        source,
    })?;
    tracing::info!("installing pinned packages (torch pulls ~2.6 GB of nvidia runtime wheels)");
    run(Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(&req))?;
    let check = run(Command::new(&py).arg("-I").arg("-c").arg(CHECK_PY))?;
    let stamp = venv.join(STAMP_FILE);
    std::fs::write(&stamp, REQUIREMENTS_EVAL).map_err(|source| SetupError::Io {
        path: stamp,
        source,
    })?;
    Ok(SetupReport {
        python: py,
        installed: true,
        check,
    })
}
