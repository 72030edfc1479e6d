//! Environments as the harness defines them (spec §2): the key, which row defines an
//! environment, what pip installs into it and in which calls, and which interpreter the harness
//! wants. Building them (cached, locked, atomic) is `recode-venv`'s job; this module only says
//! *what* to build.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::data::Problem;

/// The environment key: the first 12 hex characters of the SHA-256 of
/// `python_version-library-version-additional_dependencies`. `extra_dependencies` is not part
/// of it (spec §2 ⚠).
pub fn env_key(python_version: &str, library: &str, version: &str, additional: &str) -> String {
    let text = [python_version, library, version, additional].join("-");
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The key of a problem's environment.
pub fn problem_env_key(p: &Problem) -> String {
    env_key(
        &p.python_version,
        &p.library,
        &p.version,
        &p.additional_dependencies,
    )
}

/// The patch release the harness's Docker image installs for each interpreter line.
pub fn harness_patch_version(python_version: &str) -> Option<&'static str> {
    match python_version {
        "3.7" => Some("3.7.17"),
        "3.9" => Some("3.9.19"),
        "3.10" => Some("3.10.14"),
        _ => None,
    }
}

/// The packages the harness pins after the library, per interpreter line (spec §2 step 4), in
/// the order it installs them.
const PINS: &[(&str, [(&str, &str); 3])] = &[
    (
        "pytest",
        [("3.7", "6.2.5"), ("3.9", "7.1.2"), ("3.10", "7.2.0")],
    ),
    (
        "pytest-cov",
        [("3.7", "4.1.0"), ("3.9", "4.1.0"), ("3.10", "4.1.0")],
    ),
    (
        "numpy",
        [("3.7", "1.21.6"), ("3.9", "1.21.6"), ("3.10", "1.23")],
    ),
    (
        "scipy",
        [("3.7", "1.7.1"), ("3.9", "1.9.1"), ("3.10", "1.10.1")],
    ),
];

/// One environment to build: what the first row with its key asks for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvSpec {
    /// The harness's key (directory `gcham_venv_<key>`).
    pub key: String,
    /// Interpreter line (`3.7`, `3.9`, `3.10`).
    pub python_version: String,
    /// The pinned library.
    pub library: String,
    /// Its version.
    pub version: String,
    /// The defining row's `additional_dependencies`.
    pub additional_dependencies: String,
    /// The defining row's `extra_dependencies` (installed, not in the key).
    pub extra_dependencies: String,
    /// The one resolver call: `library==version` followed by every dependency token, duplicates
    /// kept, as the harness passes them.
    pub requirements: Vec<String>,
    /// The harness's `pip=X` token, if any (pins pip instead of upgrading it; unused by the data).
    pub pip: Option<String>,
    /// Follow-up installs, one pip call each, whose failure is only reported (spec §2 step 4).
    pub pins: Vec<String>,
    /// The row that defines the environment.
    pub defined_by: u64,
    /// Every problem using the environment, in file order.
    pub problems: Vec<u64>,
}

impl EnvSpec {
    /// Directory name the harness uses: `gcham_venv_<key>`.
    pub fn dir_name(&self) -> String {
        format!("gcham_venv_{}", self.key)
    }

    /// `library==version`.
    pub fn pinned(&self) -> String {
        format!("{}=={}", self.library, self.version)
    }

    /// The rows of the key whose extra dependencies differ from the defining row's: the harness
    /// installs the first row's (e.g. librosa 0.8.0's joblib 0.14 vs 0.12).
    pub fn ignored_extras<'a>(&self, problems: &'a [Problem]) -> Vec<&'a Problem> {
        problems
            .iter()
            .filter(|p| {
                self.problems.contains(&p.id) && p.extra_dependencies != self.extra_dependencies
            })
            .collect()
    }
}

fn spec_of(p: &Problem, key: String) -> EnvSpec {
    let deps = format!("{} {}", p.additional_dependencies, p.extra_dependencies);
    let mut pip = None;
    let mut requirements = vec![p.pinned()];
    let mut tokens = Vec::new();
    for tok in deps.split_whitespace() {
        if let Some(v) = tok.strip_prefix("pip=") {
            // The harness takes what follows the first `=`: `pip==1` pins pip to "".
            pip = Some(v.split('=').next().unwrap_or_default().to_string());
        } else if tok != "-" {
            requirements.push(tok.to_string());
        }
        tokens.push(tok.to_lowercase());
    }
    let lib = p.library.to_lowercase();
    let pins = PINS
        .iter()
        .filter(|(name, _)| {
            let is_library = match *name {
                "pytest" | "pytest-cov" => lib == "pytest",
                other => lib == other,
            };
            // Skipped when the name occurs as a substring of any dependency token.
            !is_library && !tokens.iter().any(|t| t.contains(name))
        })
        .filter_map(|(name, versions)| {
            versions
                .iter()
                .find(|(py, _)| *py == p.python_version)
                .map(|(_, v)| format!("{name}=={v}"))
        })
        .collect();
    EnvSpec {
        key,
        python_version: p.python_version.clone(),
        library: p.library.clone(),
        version: p.version.clone(),
        additional_dependencies: p.additional_dependencies.clone(),
        extra_dependencies: p.extra_dependencies.clone(),
        requirements,
        pip,
        pins,
        defined_by: p.id,
        problems: Vec::new(),
    }
}

/// The environments of `problems`, in the order their first row appears; the first row with a
/// key defines its environment (spec §2).
pub fn env_specs(problems: &[Problem]) -> Vec<EnvSpec> {
    let mut order: Vec<String> = Vec::new();
    let mut specs: BTreeMap<String, EnvSpec> = BTreeMap::new();
    for p in problems {
        let key = problem_env_key(p);
        let spec = specs.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            spec_of(p, key)
        });
        spec.problems.push(p.id);
    }
    order.into_iter().filter_map(|k| specs.remove(&k)).collect()
}

/// Problems chosen with `--library NAME[==VERSION],...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibrarySelection {
    /// (library, optional version); empty = every problem.
    pub entries: Vec<(String, Option<String>)>,
}

/// A `--library` value that does not parse or selects nothing.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// Malformed entry.
    #[error("--library: `{0}` is not NAME or NAME==VERSION")]
    Syntax(String),
    /// An entry matched no problem.
    #[error(
        "--library: `{entry}` matches no problem (versions of {library} in the data: {available})"
    )]
    NoMatch {
        /// The entry as written.
        entry: String,
        /// Its library.
        library: String,
        /// The versions present, or `none`.
        available: String,
    },
}

impl LibrarySelection {
    /// Parses `sympy==1.13,scipy==1.9.2` (library names compare case-insensitively).
    pub fn parse(text: &str) -> Result<LibrarySelection, SelectionError> {
        let mut entries = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, version) = match raw.split_once("==") {
                Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
                None => (raw, None),
            };
            let bad_name = name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if bad_name
                || version
                    .as_deref()
                    .is_some_and(|v| v.is_empty() || v.contains('='))
            {
                return Err(SelectionError::Syntax(raw.to_string()));
            }
            entries.push((name.to_lowercase(), version));
        }
        Ok(LibrarySelection { entries })
    }

    fn matches(entry: &(String, Option<String>), p: &Problem) -> bool {
        p.library.to_lowercase() == entry.0 && entry.1.as_ref().is_none_or(|v| *v == p.version)
    }

    /// The selected problems in file order; an entry that matches nothing is an error naming the
    /// versions present.
    pub fn select<'a>(&self, problems: &'a [Problem]) -> Result<Vec<&'a Problem>, SelectionError> {
        if self.entries.is_empty() {
            return Ok(problems.iter().collect());
        }
        for entry in &self.entries {
            if !problems.iter().any(|p| Self::matches(entry, p)) {
                let mut versions: Vec<&str> = problems
                    .iter()
                    .filter(|p| p.library.to_lowercase() == entry.0)
                    .map(|p| p.version.as_str())
                    .collect();
                versions.sort();
                versions.dedup();
                return Err(SelectionError::NoMatch {
                    entry: match &entry.1 {
                        Some(v) => format!("{}=={v}", entry.0),
                        None => entry.0.clone(),
                    },
                    library: entry.0.clone(),
                    available: if versions.is_empty() {
                        "none".into()
                    } else {
                        versions.join(", ")
                    },
                });
            }
        }
        Ok(problems
            .iter()
            .filter(|p| self.entries.iter().any(|e| Self::matches(e, p)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(id: u64, py: &str, lib: &str, ver: &str, add: &str, extra: &str) -> Problem {
        Problem {
            id,
            python_version: py.into(),
            library: lib.into(),
            version: ver.into(),
            additional_dependencies: add.into(),
            extra_dependencies: extra.into(),
            problem: String::new(),
            starting_code: String::new(),
            solution: String::new(),
            test: String::new(),
            type_of_change: String::new(),
            name_of_class_or_func: String::new(),
            docs: Vec::new(),
            line: id as usize + 1,
        }
    }

    #[test]
    fn key_matches_the_harness() {
        // Values computed with the harness's generate_venv_cache_key (hashlib, spec §5 table).
        assert_eq!(env_key("3.9", "sympy", "1.13", ""), "42d3fe715e8c");
        assert_eq!(env_key("3.10", "scipy", "1.9.2", ""), "7332ff8ded61");
        assert_eq!(
            env_key("3.7", "torch", "1.9.0", "scipy==1.7.3 numpy==1.21.6"),
            "927f7310e738"
        );
    }

    #[test]
    fn first_row_defines_and_extras_are_not_keyed() {
        let ps = vec![
            problem(
                304,
                "3.7",
                "librosa",
                "0.8.0",
                "numba==0.46",
                "joblib==0.14",
            ),
            problem(305, "3.10", "scipy", "1.9.2", "", ""),
            problem(
                306,
                "3.7",
                "librosa",
                "0.8.0",
                "numba==0.46",
                "joblib==0.12",
            ),
        ];
        let specs = env_specs(&ps);
        assert_eq!(specs.len(), 2);
        let l = &specs[0];
        assert_eq!((l.defined_by, l.problems.clone()), (304, vec![304, 306]));
        assert_eq!(
            l.requirements,
            ["librosa==0.8.0", "numba==0.46", "joblib==0.14"]
        );
        assert_eq!(l.ignored_extras(&ps).len(), 1);
        assert_eq!(
            l.pins,
            [
                "pytest==6.2.5",
                "pytest-cov==4.1.0",
                "numpy==1.21.6",
                "scipy==1.7.1"
            ]
        );
        // The library itself is never re-pinned.
        assert_eq!(
            specs[1].pins,
            ["pytest==7.2.0", "pytest-cov==4.1.0", "numpy==1.23"]
        );
    }

    #[test]
    fn pins_skip_on_substring_of_any_dependency() {
        let p = problem(
            1,
            "3.9",
            "plotly",
            "4.0.0",
            "NumPy==1.16 - pytest-cov==3",
            "",
        );
        let s = &env_specs(&[p])[0];
        // `numpy` in `numpy==1.16` (lower-cased); `pytest` and `pytest-cov` in `pytest-cov==3`.
        assert_eq!(s.pins, ["scipy==1.9.1"]);
        assert_eq!(
            s.requirements,
            ["plotly==4.0.0", "NumPy==1.16", "pytest-cov==3"]
        );
        let p = problem(2, "3.10", "pytest", "7.0.0", "pip=23.0", "");
        let s = &env_specs(&[p])[0];
        assert_eq!(s.pins, ["numpy==1.23", "scipy==1.10.1"]);
        assert_eq!(s.pip.as_deref(), Some("23.0"));
        assert_eq!(s.requirements, ["pytest==7.0.0"]);
    }

    #[test]
    fn selection() {
        let ps = vec![
            problem(0, "3.9", "sympy", "1.13", "", ""),
            problem(1, "3.9", "sympy", "1.9", "", ""),
            problem(2, "3.10", "scipy", "1.9.2", "", ""),
        ];
        let s = LibrarySelection::parse("SymPy==1.13, scipy").unwrap();
        let ids: Vec<u64> = s.select(&ps).unwrap().iter().map(|p| p.id).collect();
        assert_eq!(ids, [0, 2]);
        assert_eq!(
            LibrarySelection::parse("")
                .unwrap()
                .select(&ps)
                .unwrap()
                .len(),
            3
        );
        let e = LibrarySelection::parse("sympy==2.0")
            .unwrap()
            .select(&ps)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sympy==2.0") && e.contains("1.13, 1.9"), "{e}");
        assert!(LibrarySelection::parse("sympy==").is_err());
        assert!(LibrarySelection::parse("sympy>=1").is_err());
    }
}
