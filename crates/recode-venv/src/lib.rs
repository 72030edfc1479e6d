//! Python interpreters and cached virtualenvs, shared by dataset construction (`recode-curate`)
//! and version-pinned benchmarks.
//!
//! - [`find_interpreter`] / [`list_interpreters`]: a requested version (`3.9`, `3.10.13`, or a
//!   path) to an interpreter, from pyenv (`$PYENV_ROOT` or `~/.pyenv`) then `PATH`, with its
//!   exact patch version.
//! - [`EnvManager::ensure`]: one virtualenv per [`EnvSpec`] (interpreter + requirement pins),
//!   under `$RECODE_CACHE/envs` (default `~/.cache/recode/envs`). Built with the venv's own pip
//!   (the host pip cannot target old interpreters); a per-env lock keeps parallel builders
//!   apart; the env counts only once its completion marker is written, and a failed build
//!   removes itself, so the cache is never poisoned. Wheels go to a shared wheelhouse
//!   (`wheels/`) and pip's cache (`pip-cache/`), so a rebuild works offline.
//! - [`sandbox_read_paths`] / [`Venv::read_paths`]: the host directories a sandbox must let a
//!   program read to run that interpreter (venv, `sys.prefix`/`base_prefix`, the executable).
//!
//! Venvs are built in place (not in a temporary directory renamed at the end) because a venv is
//! not relocatable: console scripts carry the build path in their shebang.

mod env;
mod error;
mod interp;

pub use env::{EnvManager, EnvSpec, Venv, COMPLETE_MARKER, ENV_RECORD};
pub use error::{ProbeError, VenvError};
pub use interp::{find_interpreter, list_interpreters, sandbox_read_paths, Interpreter};

/// Result with this crate's error.
pub type Result<T> = std::result::Result<T, VenvError>;
