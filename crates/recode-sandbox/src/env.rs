//! The environment of sandboxed programs, built from nothing: no variable of the caller's
//! environment (API keys, tokens, cloud credentials, proxy settings) reaches a program unless the
//! caller names it.

use std::path::Path;

use crate::ExecError;

/// Variables every program gets, with fixed values (`HOME` and `TMPDIR` are reset to the
/// program's own temp dir by the fork server).
pub const FIXED: &[(&str, &str)] = &[
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("HOME", "/tmp"),
    ("TMPDIR", "/tmp"),
    ("OMP_NUM_THREADS", "1"),
    ("MKL_NUM_THREADS", "1"),
    ("OPENBLAS_NUM_THREADS", "1"),
];

/// The full environment of the fork server (and so of every program): [`FIXED`], a `PATH` of the
/// interpreter's directory and the system's, and each variable in `pass` with the caller's value.
/// A name in `pass` that the caller's environment lacks is an error, never silently skipped.
pub fn program_environment(
    python: &Path,
    pass: &[String],
) -> Result<Vec<(String, String)>, ExecError> {
    let bin = python
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut env: Vec<(String, String)> = FIXED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("PATH".into(), format!("{bin}:/usr/local/bin:/usr/bin:/bin")));
    for name in pass {
        let value =
            std::env::var(name).map_err(|_| ExecError::MissingEnv { name: name.clone() })?;
        env.retain(|(k, _)| k != name);
        env.push((name.clone(), value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_of_the_caller_passes_unless_named() {
        let env = program_environment(Path::new("/venv/bin/python"), &[]).unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"PATH") && names.contains(&"HOME"));
        // Whatever the test runner's environment holds, only the fixed names appear.
        assert_eq!(names.len(), FIXED.len() + 1, "{names:?}");
        let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert!(path.starts_with("/venv/bin:"), "{path}");
    }

    #[test]
    fn a_named_variable_passes_and_a_missing_one_is_an_error() {
        let env = program_environment(Path::new("/p/python"), &["PATH".into()]).unwrap();
        let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert_eq!(Some(path.as_str()), std::env::var("PATH").ok().as_deref());
        let err = program_environment(
            Path::new("/p/python"),
            &["RECODE_SURELY_UNSET_VARIABLE_42".into()],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("RECODE_SURELY_UNSET_VARIABLE_42"),
            "{err}"
        );
    }
}
