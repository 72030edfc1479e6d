//! Scoring solutions against their problems' environments, and `check-refs`: the ground truth
//! through the whole path (extraction, environment, sandbox, pytest), counted per library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use recode_sandbox::{ExecError, ExecutorPool};
use serde::Serialize;

use super::data::{DataError, Dataset, Solution};
use super::envs::problem_env_key;
use super::exec::{exec_config, pair_outcomes, run_bound, Bound, PoolSettings, SolutionOutcome};
use super::plan::{hidden_run, visible_run};
use super::prompt::extract_code;
use super::setup::EnvState;

/// Scores solutions: the data, the environments' states and one sandbox pool for all of them.
pub struct Scorer<'a> {
    data: &'a Dataset,
    envs: BTreeMap<String, EnvState>,
    pool: Option<ExecutorPool>,
}

impl<'a> Scorer<'a> {
    /// Starts the pool over the ready environments of `envs` (none started when none is ready).
    pub fn new(
        data: &'a Dataset,
        envs: Vec<EnvState>,
        settings: &PoolSettings,
    ) -> Result<Scorer<'a>, ExecError> {
        let pythons: Vec<PathBuf> = envs
            .iter()
            .filter_map(|s| s.venv.as_ref().ok().map(|v| v.python()))
            .collect();
        let pool = if pythons.is_empty() {
            None
        } else {
            Some(ExecutorPool::start(exec_config(settings, &pythons))?)
        };
        Ok(Scorer {
            data,
            envs: envs.into_iter().map(|s| (s.env.key.clone(), s)).collect(),
            pool,
        })
    }

    /// The sandbox pool (None when no environment is ready).
    pub fn pool(&self) -> Option<&ExecutorPool> {
        self.pool.as_ref()
    }

    /// The state of a problem's environment.
    pub fn env_of(&self, problem: u64) -> Option<&EnvState> {
        let p = self.data.get(problem)?;
        self.envs.get(&problem_env_key(p))
    }

    /// Runs each `(problem id, code)` (already extracted) hidden and, with `visible`, visible;
    /// outcomes in order. Problems whose environment is unavailable are `env_incomplete`.
    pub fn score(
        &self,
        items: &[(u64, String)],
        visible: bool,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<SolutionOutcome>, DataError> {
        let mut tests: BTreeMap<u64, String> = BTreeMap::new();
        let mut reasons: BTreeMap<u64, String> = BTreeMap::new();
        for (id, _) in items {
            if !tests.contains_key(id) {
                tests.insert(*id, self.data.hidden_test(*id)?);
            }
        }
        let mut pythons: BTreeMap<u64, PathBuf> = BTreeMap::new();
        for (id, _) in items {
            match self.env_of(*id).map(|s| &s.venv) {
                Some(Ok(v)) if self.pool.is_some() => {
                    pythons.insert(*id, v.python());
                }
                Some(Err(f)) => {
                    reasons.insert(*id, f.detail.clone());
                }
                _ => {
                    reasons.insert(*id, "no environment for this problem".into());
                }
            }
        }
        let mut bound = Vec::new();
        for (id, code) in items {
            let Some(p) = self.data.get(*id) else {
                continue;
            };
            let python = pythons
                .get(id)
                .map(PathBuf::as_path)
                .ok_or_else(|| reasons.get(id).map_or("no environment", String::as_str));
            let test = &tests[id];
            bound.push(Bound {
                python,
                plan: hidden_run(p, test, code),
            });
            if visible {
                bound.push(Bound {
                    python,
                    plan: visible_run(p, test, code),
                });
            }
        }
        let outcomes = match &self.pool {
            Some(pool) => run_bound(pool, &bound, progress),
            None => bound
                .iter()
                .map(|b| {
                    progress();
                    super::exec::RunOutcome::incomplete(b.python.err().unwrap_or("no environment"))
                })
                .collect(),
        };
        Ok(pair_outcomes(&bound, outcomes))
    }
}

/// Counts of one group of problems.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Problems.
    pub total: usize,
    /// Hidden run passed.
    pub passed: usize,
    /// Hidden run failed with everything needed present.
    pub failed: usize,
    /// Could not run here (environment or resource missing).
    pub env_incomplete: usize,
}

impl Counts {
    fn add(&mut self, o: &SolutionOutcome) {
        self.total += 1;
        if o.hidden.passed {
            self.passed += 1;
        } else if o.hidden.error_class == "env_incomplete" {
            self.env_incomplete += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// A ground truth that did not pass, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefFailure {
    /// Problem id.
    pub id: u64,
    /// `library==version`.
    pub library: String,
    /// The hidden run's error class.
    pub error_class: String,
    /// What was missing (`env_incomplete`) or the end of pytest's output.
    pub reason: String,
}

/// The result of `check-refs --bench gitchameleon`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Always `gitchameleon`.
    pub bench: String,
    /// Problems checked.
    pub total: usize,
    /// Ground truths passing their hidden tests.
    pub passed: usize,
    /// Ground truths failing with their environment complete.
    pub failed: usize,
    /// Problems that cannot run here.
    pub env_incomplete: usize,
    /// Visible runs exiting 0.
    pub visible_passed: usize,
    /// Visible runs passing under the harness's own rule (status ≠ 1).
    pub visible_passed_harness: usize,
    /// Wall time of the runs, seconds.
    pub seconds: f64,
    /// Counts per library.
    pub per_library: BTreeMap<String, Counts>,
    /// Counts per `library==version`.
    pub per_version: BTreeMap<String, Counts>,
    /// Failures with their reason.
    pub failures: Vec<RefFailure>,
    /// Problems that could not run, with what they lacked.
    pub incomplete: Vec<RefFailure>,
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Scores the ground truth of `problems` (ids) and counts the outcomes.
pub fn check_refs(
    scorer: &Scorer<'_>,
    data: &Dataset,
    truth: &[Solution],
    problems: &[u64],
    progress: &(dyn Fn() + Sync),
) -> Result<(CheckReport, Vec<SolutionOutcome>), DataError> {
    let items: Vec<(u64, String)> = problems
        .iter()
        .filter_map(|id| truth.iter().find(|s| s.id == *id))
        .map(|s| (s.id, extract_code(&s.text).0))
        .collect();
    let t = Instant::now();
    let outcomes = scorer.score(&items, true, progress)?;
    let seconds = t.elapsed().as_secs_f64();
    let mut report = CheckReport {
        bench: "gitchameleon".into(),
        total: 0,
        passed: 0,
        failed: 0,
        env_incomplete: 0,
        visible_passed: 0,
        visible_passed_harness: 0,
        seconds,
        per_library: BTreeMap::new(),
        per_version: BTreeMap::new(),
        failures: Vec::new(),
        incomplete: Vec::new(),
    };
    let mut all = Counts::default();
    for ((id, _), o) in items.iter().zip(&outcomes) {
        let Some(p) = data.get(*id) else { continue };
        all.add(o);
        report
            .per_library
            .entry(p.library.clone())
            .or_default()
            .add(o);
        report.per_version.entry(p.pinned()).or_default().add(o);
        if let Some(v) = &o.visible {
            report.visible_passed += usize::from(v.passed);
            report.visible_passed_harness += usize::from(v.passed_harness);
        }
        if !o.hidden.passed {
            let f = RefFailure {
                id: *id,
                library: p.pinned(),
                error_class: o.hidden.error_class.clone(),
                reason: o
                    .hidden
                    .missing
                    .clone()
                    .unwrap_or_else(|| last_lines(&o.hidden.output, 6)),
            };
            if o.hidden.error_class == "env_incomplete" {
                report.incomplete.push(f);
            } else {
                report.failures.push(f);
            }
        }
    }
    report.total = all.total;
    report.passed = all.passed;
    report.failed = all.failed;
    report.env_incomplete = all.env_incomplete;
    Ok((report, outcomes))
}
