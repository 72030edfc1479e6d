//! Helpers shared by the data tests: where the real data and the dev venv are.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// The ReCode training set in `../shared/data` (or `$RECODE_SHARED`), or `None` once the
/// running test has said it is skipped for want of it.
pub fn api_update() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::RECODE_TRAIN.shared_or_skip(&checkout)
}

/// Python of the dev venv made by scripts/setup.sh.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("RECODE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/recode/venv-dev"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} missing: run scripts/setup.sh first",
        py.display()
    );
    py
}

/// The independent Python reference of the reward (`python/reference`, e.g. `reward_paper.py`).
pub fn python_reference() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/reference")
}

/// Runs `script` with the dev venv's Python (`python -c script args…`) and returns its stdout;
/// fails the test with Python's stderr when the script fails.
pub fn python_stdout<A: AsRef<OsStr>>(script: &str, args: &[A]) -> Vec<u8> {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME set"))
}
