//! How one solution is run (spec §3): the hidden pytest run (the score) and the visible script
//! run (a diagnostic), as files + arguments + environment, before they are bound to an
//! environment's interpreter and handed to the sandbox.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::data::Problem;

/// The harness's limit per run (`TIMEOUT_SEC`), seconds.
pub const TIMEOUT_SECS: f64 = 240.0;

/// Which of a solution's two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `python -m pytest --disable-warnings -q DIR` on `sample_<id>.py` + `test_sample.py`.
    Hidden,
    /// `python visible_test_sample_<id>.py` holding the code, a newline and the `test` field.
    Visible,
}

/// One run of a solution: what to write into the fresh work directory (the program's cwd) and
/// the arguments after the environment's interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// Problem id.
    pub problem: u64,
    /// Hidden or visible.
    pub kind: RunKind,
    /// Arguments after the interpreter.
    pub args: Vec<String>,
    /// Relative path → content, written into the work directory before the run.
    pub files: Vec<(String, String)>,
    /// Bring up loopback in the private network namespace (it reaches nothing of the host).
    pub loopback: bool,
}

/// The variables the harness's Docker image sets for every run (its `PYTHONPATH=/app` names
/// the harness's own source directory and is not reproduced).
pub fn harness_env() -> Vec<(String, String)> {
    [
        ("OMP_NUM_THREADS", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        ("PYTHONUNBUFFERED", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether a problem's runs get loopback: its hidden test, starting code or solution names
/// `localhost` or `127.0.0.1`, imports `socket` or uses `tornado.testing` (mitmproxy 216–222 use
/// addresses as data, falcon 256 a server name, tornado 259–263 bind and connect sockets).
pub fn needs_loopback(p: &Problem, hidden_test: &str) -> bool {
    const MARKS: [&str; 4] = ["localhost", "127.0.0.1", "import socket", "tornado.testing"];
    [hidden_test, &p.starting_code, &p.solution]
        .iter()
        .any(|t| MARKS.iter().any(|m| t.contains(m)))
}

/// The hidden run (spec §3.1): `sample_<id>.py` = the extracted code, `test_sample.py` = the
/// hidden test (the file name loses the id), `python -m pytest --disable-warnings -q .` with
/// the work directory as cwd (the harness passes the temporary directory's path; the rootdir,
/// collection and `sys.path` insertion are the same).
pub fn hidden_run(p: &Problem, hidden_test: &str, code: &str) -> RunPlan {
    RunPlan {
        problem: p.id,
        kind: RunKind::Hidden,
        args: ["-m", "pytest", "--disable-warnings", "-q", "."]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        files: vec![
            (format!("{}.py", p.module()), code.to_string()),
            ("test_sample.py".to_string(), hidden_test.to_string()),
        ],
        loopback: needs_loopback(p, hidden_test),
    }
}

/// The visible run (spec §3.3): the code, a newline and the dataset's `test` field as
/// `visible_test_sample_<id>.py`, run as a script.
pub fn visible_run(p: &Problem, hidden_test: &str, code: &str) -> RunPlan {
    let name = format!("visible_test_sample_{}.py", p.id);
    RunPlan {
        problem: p.id,
        kind: RunKind::Visible,
        args: vec![name.clone()],
        files: vec![(name, format!("{code}\n{}", p.test))],
        loopback: needs_loopback(p, hidden_test),
    }
}

/// What a run needed that this machine lacks, recognised in its output: nltk data (a download
/// the harness's image makes at build time), `libsndfile` (soundfile, librosa),
/// `libspatialindex` (rtree, geopandas). Such a run is `env_incomplete`, not a failure.
pub fn missing_resource(output: &str) -> Option<String> {
    if output.contains("sndfile library not found") {
        return Some("system library libsndfile missing (apt-get install libsndfile1)".into());
    }
    if output.contains("spatialindex") && output.contains("OSError") {
        return Some(
            "system library libspatialindex missing (apt-get install libspatialindex-dev)".into(),
        );
    }
    if output.contains("Resource") && output.contains("not found") && output.contains("nltk") {
        static ANSI: OnceLock<Regex> = OnceLock::new();
        let ansi = ANSI.get_or_init(|| Regex::new(r"\x1b\[[0-9;]*m").expect("static regex"));
        static WHAT: OnceLock<Regex> = OnceLock::new();
        let what_re =
            WHAT.get_or_init(|| Regex::new(r"Resource\s+(\S+)\s+not found").expect("static regex"));
        let plain = ansi.replace_all(output, "");
        // The last match: pytest lists nltk's own source (a format string) before the error.
        let what = what_re
            .captures_iter(&plain)
            .last()
            .map_or("?".to_string(), |c| c[1].to_string());
        return Some(format!(
            "nltk data `{what}` missing (the harness's image downloads punkt, wordnet and \
             omw-1.4; no download is possible here)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(id: u64, test: &str) -> Problem {
        Problem {
            id,
            python_version: "3.10".into(),
            library: "lib".into(),
            version: "1".into(),
            additional_dependencies: String::new(),
            extra_dependencies: String::new(),
            problem: String::new(),
            starting_code: String::new(),
            solution: String::new(),
            test: test.into(),
            type_of_change: String::new(),
            name_of_class_or_func: String::new(),
            docs: Vec::new(),
            line: 1,
        }
    }

    #[test]
    fn files_and_arguments_follow_the_harness() {
        let p = problem(12, "assert f() == 1");
        let h = hidden_run(&p, "from sample_12 import f", "def f(): return 1");
        assert_eq!(h.args, ["-m", "pytest", "--disable-warnings", "-q", "."]);
        assert_eq!(
            h.files[0],
            ("sample_12.py".into(), "def f(): return 1".into())
        );
        assert_eq!(h.files[1].0, "test_sample.py");
        assert!(!h.loopback);
        let v = visible_run(&p, "", "def f(): return 1");
        assert_eq!(v.args, ["visible_test_sample_12.py"]);
        assert_eq!(v.files[0].1, "def f(): return 1\nassert f() == 1");
        assert!(hidden_run(&p, "connect('127.0.0.1')", "").loopback);
        assert!(hidden_run(&p, "import tornado.testing\n", "").loopback);
    }

    #[test]
    fn missing_resources_are_recognised() {
        let nltk = "    msg = f\"Resource \\33[93m{resource}\\033[0m not found.\"\nE   LookupError: \n  Resource \u{1b}[93mwordnet\u{1b}[0m not found.\n  \
                    Please use the NLTK Downloader to obtain the resource:\n  >>> import nltk";
        let r = missing_resource(nltk).unwrap();
        assert!(r.contains("wordnet"), "{r}");
        assert!(missing_resource("OSError: sndfile library not found")
            .unwrap()
            .contains("libsndfile1"));
        assert_eq!(missing_resource("AssertionError: 1 != 2"), None);
    }
}
