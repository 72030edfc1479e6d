//! Running [`RunPlan`]s through the sandbox: one pool of fork servers (on a modern Python that
//! only forks, isolates and execs) whose read-only view holds every environment in use; each run
//! is a [`Job::Exec`] of the environment's interpreter in a fresh private work directory.
//!
//! The verdict is the harness's: the hidden run passes iff pytest exits with status 0. The
//! sandbox keeps the run from the host (files, network, processes, limits), but the rule itself
//! is forgeable by the code under test: a solution can call `os._exit(0)` at import, or patch
//! pytest from a `conftest`-like side effect, and pass. recode keeps the benchmark's rule for
//! parity and says so; verdicts decided out of the program's reach exist for CodeUpdateArena
//! (judged jobs) but GitChameleon's hidden tests are whole pytest files.

use std::path::{Path, PathBuf};

use recode_sandbox::{ExecConfig, ExecJob, ExecResult, ExecutorPool, Job};
use serde::{Deserialize, Serialize};

use super::plan::{harness_env, missing_resource, RunKind, RunPlan};

/// Characters of a run's output kept in results (its end: pytest's summary is last).
pub const OUTPUT_CHARS: usize = 2000;

/// The outcome of one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunOutcome {
    /// Exit status 0 (the benchmark's pass).
    pub passed: bool,
    /// `passed`, `exit:N` (pytest: 1 tests failed, 2 collection error, 5 no tests), `signal:N`,
    /// `timeout`, `memory_limit`, `setup_error`, or `env_incomplete` when the output shows a
    /// resource this machine lacks (see [`missing_resource`]).
    pub error_class: String,
    /// The visible run's harness rule: true unless the status is 1, a timeout or a launch
    /// failure (so also for other statuses and deaths by signal, spec §3.3 ⚠).
    pub passed_harness: bool,
    /// Exit status when the command exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// The end of stdout+stderr.
    pub output: String,
    /// What the run lacked, when `env_incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

fn tail(text: &str, chars: usize) -> String {
    let n = text.chars().count();
    text.chars().skip(n.saturating_sub(chars)).collect()
}

impl RunOutcome {
    /// Reads a sandbox result.
    pub fn from_exec(r: &ExecResult) -> RunOutcome {
        let class = r.error_class();
        let passed = r.passed();
        let missing = (!passed)
            .then(|| missing_resource(&r.stdout))
            .flatten()
            .or_else(|| r.setup_error.clone().filter(|_| class == "setup_error"));
        let passed_harness = r.setup_error.is_none() && class != "timeout" && class != "exit:1";
        RunOutcome {
            passed,
            error_class: if missing.is_some() && class != "setup_error" {
                "env_incomplete".into()
            } else {
                class
            },
            passed_harness,
            exit_code: r.exit_code,
            seconds: r.wall,
            output: tail(&r.stdout, OUTPUT_CHARS),
            missing,
        }
    }

    /// An outcome for a run that could not start (no environment).
    pub fn incomplete(reason: &str) -> RunOutcome {
        RunOutcome {
            passed: false,
            error_class: "env_incomplete".into(),
            passed_harness: false,
            exit_code: None,
            seconds: 0.0,
            output: String::new(),
            missing: Some(reason.to_string()),
        }
    }
}

/// The sandbox's job for `plan` run by the environment interpreter `python`, killed after
/// `timeout_secs` (the harness: [`TIMEOUT_SECS`](super::plan::TIMEOUT_SECS)).
pub fn exec_job(python: &Path, plan: &RunPlan, timeout_secs: f64) -> Job {
    let mut argv = vec![python.to_string_lossy().into_owned()];
    argv.extend(plan.args.iter().cloned());
    Job::Exec(ExecJob {
        argv,
        files: plan.files.clone(),
        env: harness_env(),
        timeout_secs: Some(timeout_secs),
        loopback: plan.loopback,
    })
}

/// Pool settings for GitChameleon runs.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The fork servers' own interpreter (see [`super::setup::server_python`]).
    pub server_python: PathBuf,
    /// Runs at once.
    pub workers: usize,
    /// Memory of one run with all its processes (and address space per process), bytes.
    pub memory_bytes: u64,
    /// Host paths runs may read besides the environments.
    pub read_only: Vec<PathBuf>,
    /// Variables of recode's environment passed into runs.
    pub pass_env: Vec<String>,
    /// Run without isolation where the machine permits none (dangerous).
    pub allow_unsandboxed: bool,
    /// Wall-clock limit of one run, seconds (the harness: [`TIMEOUT_SECS`](super::plan::TIMEOUT_SECS)).
    pub timeout_secs: f64,
}

/// The executor configuration running the interpreters `pythons` (environments' `bin/python`).
pub fn exec_config(s: &PoolSettings, pythons: &[PathBuf]) -> ExecConfig {
    let mut cfg = ExecConfig::new(s.server_python.clone(), s.workers.clamp(1, 32));
    cfg.preload = Vec::new();
    cfg.interpreters = pythons.to_vec();
    // `localhost` (tornado's tests bind and connect to it) resolves through the sandbox's own
    // /etc/hosts; the host's names stay out of the view.
    cfg.read_only_paths = s.read_only.clone();
    cfg.pass_env = s.pass_env.clone();
    cfg.memory_bytes = s.memory_bytes;
    cfg.address_space_bytes = s.memory_bytes;
    cfg.timeout_secs = s.timeout_secs;
    cfg.hard_timeout_secs = s.timeout_secs + 5.0;
    cfg.capture_chars = 16 << 10;
    cfg.allow_unsandboxed = s.allow_unsandboxed;
    cfg
}

/// One run to execute: the interpreter, or why there is none.
pub struct Bound<'a> {
    /// The environment's interpreter, or the reason it is unavailable.
    pub python: Result<&'a Path, &'a str>,
    /// The run.
    pub plan: RunPlan,
}

/// Runs every bound plan (in parallel on `pool`) and returns outcomes in order; plans without
/// an interpreter are `env_incomplete` without running. `progress` is called per finished run.
pub fn run_bound(
    pool: &ExecutorPool,
    runs: &[Bound<'_>],
    progress: &(dyn Fn() + Sync),
) -> Vec<RunOutcome> {
    let timeout = pool.config().timeout_secs;
    let mut jobs = Vec::new();
    let mut index = Vec::new();
    for (i, b) in runs.iter().enumerate() {
        if let Ok(py) = b.python {
            jobs.push(exec_job(py, &b.plan, timeout));
            index.push(i);
        }
    }
    let results = pool.run_jobs(&jobs, progress);
    let mut out: Vec<Option<RunOutcome>> = vec![None; runs.len()];
    for (i, r) in index.into_iter().zip(&results) {
        out[i] = Some(RunOutcome::from_exec(r));
    }
    out.into_iter()
        .zip(runs)
        .map(|(o, b)| {
            o.unwrap_or_else(|| {
                progress();
                RunOutcome::incomplete(b.python.err().unwrap_or("no environment"))
            })
        })
        .collect()
}

/// Hidden and visible outcomes of one solution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SolutionOutcome {
    /// The score.
    pub hidden: RunOutcome,
    /// The diagnostic (absent when not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<RunOutcome>,
}

/// Pairs the outcomes of plans made as (hidden, visible?) per solution back up.
pub fn pair_outcomes(plans: &[Bound<'_>], outcomes: Vec<RunOutcome>) -> Vec<SolutionOutcome> {
    let mut out: Vec<SolutionOutcome> = Vec::new();
    for (b, o) in plans.iter().zip(outcomes) {
        match b.plan.kind {
            RunKind::Hidden => out.push(SolutionOutcome {
                hidden: o,
                visible: None,
            }),
            RunKind::Visible => {
                if let Some(last) = out.last_mut() {
                    last.visible = Some(o);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: &str, exit: Option<i32>, signal: Option<i32>, out: &str) -> ExecResult {
        let verdict = if exit == Some(0) { "passed" } else { "failed" };
        serde_json::from_value(serde_json::json!({
            "verdict": verdict, "outcome": outcome, "exit_code": exit, "signal": signal,
            "stdout": out, "wall": 1.5,
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_follow_the_exit_status_and_the_visible_rule() {
        let ok = RunOutcome::from_exec(&result("exited", Some(0), None, "1 passed"));
        assert!(ok.passed && ok.passed_harness);
        assert_eq!(ok.error_class, "passed");
        let failed = RunOutcome::from_exec(&result("exited", Some(1), None, "1 failed"));
        assert!(!failed.passed && !failed.passed_harness);
        assert_eq!(failed.error_class, "exit:1");
        // The harness's visible rule: any status but 1 passes, deaths by signal too.
        let usage = RunOutcome::from_exec(&result("exited", Some(2), None, ""));
        assert!(!usage.passed && usage.passed_harness);
        let killed = RunOutcome::from_exec(&result("signaled", None, Some(9), ""));
        assert_eq!(killed.error_class, "signal:9");
        assert!(!killed.passed && killed.passed_harness);
    }

    #[test]
    fn the_pool_sees_the_envs_and_etc_hosts_and_keeps_the_timeout() {
        let s = PoolSettings {
            server_python: "/usr/bin/python3".into(),
            workers: 64,
            memory_bytes: 1 << 30,
            read_only: vec!["/data".into()],
            pass_env: Vec::new(),
            allow_unsandboxed: false,
            timeout_secs: 240.0,
        };
        let cfg = exec_config(&s, &["/envs/a/bin/python".into()]);
        assert_eq!(cfg.workers, 32);
        assert!(cfg.preload.is_empty());
        assert_eq!(cfg.interpreters, [PathBuf::from("/envs/a/bin/python")]);
        assert_eq!(cfg.read_only_paths[0], PathBuf::from("/data"));
        assert_eq!(cfg.read_only_paths, [PathBuf::from("/data")]);
        let plan = RunPlan {
            problem: 1,
            kind: RunKind::Hidden,
            args: vec!["-m".into(), "pytest".into()],
            files: Vec::new(),
            loopback: true,
        };
        let Job::Exec(job) = exec_job(Path::new("/envs/a/bin/python"), &plan, 240.0) else {
            panic!("an exec job");
        };
        assert_eq!(job.argv, ["/envs/a/bin/python", "-m", "pytest"]);
        assert_eq!((job.timeout_secs, job.loopback), (Some(240.0), true));
        assert!(job
            .env
            .iter()
            .any(|(k, v)| k == "OMP_NUM_THREADS" && v == "1"));
    }

    #[test]
    fn missing_resources_are_env_incomplete_and_output_is_the_tail() {
        let long = format!("{}OSError: sndfile library not found", "x".repeat(5000));
        let o = RunOutcome::from_exec(&result("exited", Some(2), None, &long));
        assert_eq!(o.error_class, "env_incomplete");
        assert!(o.missing.as_deref().unwrap().contains("libsndfile1"));
        assert_eq!(o.output.chars().count(), OUTPUT_CHARS);
        assert!(o.output.ends_with("not found"));
        // A passing run is never incomplete, whatever it printed.
        let o = RunOutcome::from_exec(&result("exited", Some(0), None, &long));
        assert_eq!(o.error_class, "passed");
        assert_eq!(o.missing, None);
    }
}
