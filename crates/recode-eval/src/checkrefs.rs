//! `check-refs`: every reference solution run with and without its update (harness doc §8).
//! Validates the harness: a reference should pass with the update and fail without it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::arena::{assemble_job, PreparedSet, VerdictMode};
use crate::executor::{ExecResult, ExecutorPool, Job};

/// One test program of a candidate: which example, which piece, with or without the update.
#[derive(Debug, Clone)]
pub struct ProgramRef {
    /// Index into `PreparedSet::updates`.
    pub update: usize,
    /// Index into that update's examples.
    pub example: usize,
    /// Index of the test piece.
    pub piece: usize,
    /// With the INSTALL section.
    pub with_update: bool,
}

/// Builds every program of the reference solutions: (refs, jobs).
pub fn reference_programs(set: &PreparedSet, mode: VerdictMode) -> (Vec<ProgramRef>, Vec<Job>) {
    let mut refs = Vec::new();
    let mut programs = Vec::new();
    for (ui, u) in set.updates.iter().enumerate() {
        for (ei, ex) in u.record.examples.iter().enumerate() {
            for with_update in [true, false] {
                for (pi, piece) in u.pieces[ei].iter().enumerate() {
                    let install = with_update.then_some(u.install.as_str());
                    programs.push(assemble_job(
                        ex,
                        &u.record.update.implementation,
                        install,
                        &ex.ref_solution,
                        piece,
                        mode,
                    ));
                    refs.push(ProgramRef {
                        update: ui,
                        example: ei,
                        piece: pi,
                        with_update,
                    });
                }
            }
        }
    }
    (refs, programs)
}

/// A failing piece of one example.
#[derive(Debug, Clone, Serialize)]
pub struct PieceFailure {
    /// Piece index.
    pub piece: usize,
    /// Benchmark verdict.
    pub verdict: String,
    /// Error class (see `ExecResult::error_class`).
    pub error_class: String,
}

/// An example whose reference does not behave as expected.
#[derive(Debug, Clone, Serialize)]
pub struct RefFailure {
    /// `prog_syn_id`.
    pub id: String,
    /// Package of the update.
    pub package: String,
    /// `fails_with_update` or `passes_without_update`.
    pub kind: String,
    /// Error class of the first failing piece (or `passed` for passes-without).
    pub error_class: String,
    /// Failing pieces (with update) — empty for passes-without.
    pub pieces: Vec<PieceFailure>,
}

/// Per-package counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackageCounts {
    /// Examples.
    pub total: usize,
    /// References passing every piece with the update.
    pub pass_with_update: usize,
    /// References failing at least one piece without the update.
    pub fail_without_update: usize,
}

/// The check-refs summary (the `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct CheckRefsReport {
    /// Examples checked.
    pub total: usize,
    /// Programs executed.
    pub programs: usize,
    /// References passing every piece with the update.
    pub pass_with_update: usize,
    /// References failing at least one piece without the update.
    pub fail_without_update: usize,
    /// Counts per package.
    pub per_package: BTreeMap<String, PackageCounts>,
    /// Examples that misbehave, with their error class.
    pub failures: Vec<RefFailure>,
    /// Updates rejected before running: (update_id, reason).
    pub rejected: Vec<(String, String)>,
    /// Wall time of the executions, seconds.
    pub seconds: f64,
    /// Programs per second.
    pub programs_per_sec: f64,
}

/// Aggregates per-program results into the report.
pub fn summarize(
    set: &PreparedSet,
    refs: &[ProgramRef],
    results: &[ExecResult],
    seconds: f64,
) -> CheckRefsReport {
    // (update, example) -> (failing pieces with update, any failure without)
    let mut with_fail: BTreeMap<(usize, usize), Vec<PieceFailure>> = BTreeMap::new();
    let mut without_fail: BTreeMap<(usize, usize), bool> = BTreeMap::new();
    for (r, res) in refs.iter().zip(results) {
        let key = (r.update, r.example);
        if r.with_update {
            let e = with_fail.entry(key).or_default();
            if !res.passed() {
                e.push(PieceFailure {
                    piece: r.piece,
                    verdict: res.verdict.clone(),
                    error_class: res.error_class(),
                });
            }
        } else {
            *without_fail.entry(key).or_default() |= !res.passed();
        }
    }
    let mut per_package: BTreeMap<String, PackageCounts> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut pass_with, mut fail_without, mut total) = (0, 0, 0);
    for (ui, u) in set.updates.iter().enumerate() {
        for (ei, ex) in u.record.examples.iter().enumerate() {
            total += 1;
            let pkg = per_package
                .entry(u.record.update.package.clone())
                .or_default();
            pkg.total += 1;
            let fails = with_fail.remove(&(ui, ei)).unwrap_or_default();
            if fails.is_empty() {
                pass_with += 1;
                pkg.pass_with_update += 1;
            } else {
                failures.push(RefFailure {
                    id: ex.prog_syn_id.clone(),
                    package: u.record.update.package.clone(),
                    kind: "fails_with_update".into(),
                    error_class: fails[0].error_class.clone(),
                    pieces: fails,
                });
            }
            if without_fail.get(&(ui, ei)).copied().unwrap_or(false) {
                fail_without += 1;
                pkg.fail_without_update += 1;
            } else {
                failures.push(RefFailure {
                    id: ex.prog_syn_id.clone(),
                    package: u.record.update.package.clone(),
                    kind: "passes_without_update".into(),
                    error_class: "passed".into(),
                    pieces: Vec::new(),
                });
            }
        }
    }
    CheckRefsReport {
        total,
        programs: results.len(),
        pass_with_update: pass_with,
        fail_without_update: fail_without,
        per_package,
        failures,
        rejected: set
            .rejected
            .iter()
            .map(|(id, _, why)| (id.clone(), why.to_string()))
            .collect(),
        seconds,
        programs_per_sec: results.len() as f64 / seconds.max(1e-9),
    }
}

/// Runs all reference programs on `pool` and summarises them.
pub fn check_refs(
    set: &PreparedSet,
    pool: &ExecutorPool,
    mode: VerdictMode,
    progress: &(dyn Fn() + Sync),
) -> (CheckRefsReport, Vec<ExecResult>) {
    let (refs, programs) = reference_programs(set, mode);
    let t = std::time::Instant::now();
    let results = pool.run_jobs(&programs, progress);
    let report = summarize(set, &refs, &results, t.elapsed().as_secs_f64());
    (report, results)
}
