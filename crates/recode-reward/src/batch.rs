//! Parallel batch scoring (rayon), shared by the CLI, the HTTP server and the Python module.

use crate::{EditScore, Mode, PreparedEdit, PreparedTarget, RewardBreakdown};
use rayon::prelude::*;

/// Errors of batch scoring.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// `completions` and `targets` differ in length.
    #[error("{completions} completions but {targets} targets: they must pair one to one")]
    LengthMismatch {
        /// Number of completions given.
        completions: usize,
        /// Number of targets given.
        targets: usize,
    },
    /// `old_codes` and `targets` differ in length.
    #[error("{old_codes} old codes but {targets} targets: they must pair one to one")]
    OldCodeMismatch {
        /// Number of targets given.
        targets: usize,
        /// Number of old codes given.
        old_codes: usize,
    },
    /// The thread pool could not be built.
    #[error("cannot build a thread pool of {threads} threads: {source}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// Underlying error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
}

/// One completion's reward and, when its old code was given, the score of its edit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredEdit {
    /// Format and EM*/ES* against the reference new code.
    pub reward: RewardBreakdown,
    /// The edit score against the reference edit (`None`: no old code given for this row).
    pub edit: Option<EditScore>,
}

/// Scores `completions[i]` against `targets[i]` in parallel on the current rayon pool.
/// Consecutive equal targets (a GRPO group) are normalised once.
pub fn score_pairs<C, T>(
    completions: &[C],
    targets: &[T],
    mode: Mode,
) -> Result<Vec<RewardBreakdown>, BatchError>
where
    C: AsRef<str> + Sync,
    T: AsRef<str> + Sync,
{
    check_len(completions.len(), targets.len())?;
    Ok(score_runs(
        targets.len(),
        |a, b| targets[a].as_ref() == targets[b].as_ref(),
        |i| PreparedTarget::new(targets[i].as_ref(), mode),
        |target, i| target.score(completions[i].as_ref()),
    ))
}

/// [`score_pairs`] plus the edit score ([`PreparedEdit`]) of each row whose old code
/// `old_codes[i]` is given, parsing each answer once. Consecutive rows with the same target
/// and old code (a GRPO group) share one preparation.
pub fn score_edits<C, T, O>(
    completions: &[C],
    targets: &[T],
    old_codes: &[Option<O>],
    mode: Mode,
) -> Result<Vec<ScoredEdit>, BatchError>
where
    C: AsRef<str> + Sync,
    T: AsRef<str> + Sync,
    O: AsRef<str> + Sync,
{
    check_len(completions.len(), targets.len())?;
    if old_codes.len() != targets.len() {
        return Err(BatchError::OldCodeMismatch {
            targets: targets.len(),
            old_codes: old_codes.len(),
        });
    }
    let old = |i: usize| old_codes[i].as_ref().map(AsRef::as_ref);
    Ok(score_runs(
        targets.len(),
        |a, b| targets[a].as_ref() == targets[b].as_ref() && old(a) == old(b),
        |i| {
            let target = PreparedTarget::new(targets[i].as_ref(), mode);
            let edit = old(i).map(|o| PreparedEdit::new(o, &target));
            (target, edit)
        },
        |(target, edit), i| {
            let (reward, code) = target.score_with_code(completions[i].as_ref());
            let edit = edit.as_ref().map(|e| e.score_code(code.as_deref()));
            ScoredEdit { reward, edit }
        },
    ))
}

/// [`score_pairs`] on a dedicated pool of `threads` threads (`None`: the current pool,
/// `Some(1)`: one thread).
pub fn score_pairs_with_threads<C, T>(
    completions: &[C],
    targets: &[T],
    mode: Mode,
    threads: Option<usize>,
) -> Result<Vec<RewardBreakdown>, BatchError>
where
    C: AsRef<str> + Sync,
    T: AsRef<str> + Sync,
{
    on_threads(threads, || score_pairs(completions, targets, mode))?
}

/// [`score_edits`] on a dedicated pool of `threads` threads (`None`: the current pool).
pub fn score_edits_with_threads<C, T, O>(
    completions: &[C],
    targets: &[T],
    old_codes: &[Option<O>],
    mode: Mode,
    threads: Option<usize>,
) -> Result<Vec<ScoredEdit>, BatchError>
where
    C: AsRef<str> + Sync,
    T: AsRef<str> + Sync,
    O: AsRef<str> + Sync,
{
    on_threads(threads, || {
        score_edits(completions, targets, old_codes, mode)
    })?
}

fn check_len(completions: usize, targets: usize) -> Result<(), BatchError> {
    if completions == targets {
        Ok(())
    } else {
        Err(BatchError::LengthMismatch {
            completions,
            targets,
        })
    }
}

/// Runs `work` on a pool of `threads` threads, or on the current pool when `None`.
fn on_threads<R: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> R + Send,
) -> Result<R, BatchError> {
    match threads {
        None => Ok(work()),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map(|pool| pool.install(work))
            .map_err(|source| BatchError::ThreadPool {
                threads: n.max(1),
                source,
            }),
    }
}

/// Splits `0..len` into runs of consecutive rows that `same` pairs up, prepares each run once
/// and scores its rows in parallel, returning the scores in row order.
fn score_runs<P, R>(
    len: usize,
    same: impl Fn(usize, usize) -> bool,
    prepare: impl Fn(usize) -> P + Sync,
    score: impl Fn(&P, usize) -> R + Sync,
) -> Vec<R>
where
    P: Sync,
    R: Send,
{
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=len {
        if i == len || !same(start, i) {
            runs.push(start..i);
            start = i;
        }
    }
    let scored: Vec<Vec<R>> = runs
        .into_par_iter()
        .map(|run| {
            let prepared = prepare(run.start);
            if run.len() == 1 {
                return vec![score(&prepared, run.start)];
            }
            run.into_par_iter().map(|i| score(&prepared, i)).collect()
        })
        .collect();
    scored.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_equals_single() {
        let c = [
            "a</think><answer>```python\nx = 1\n```</answer>",
            "nothing",
            "```python\ny\n```",
        ];
        let t = ["x = 1", "x = 1", "y"];
        let batch = score_pairs(&c, &t, Mode::Paper).unwrap();
        let seq = score_pairs_with_threads(&c, &t, Mode::Paper, Some(1)).unwrap();
        for i in 0..3 {
            assert_eq!(batch[i], crate::score(c[i], t[i], Mode::Paper));
            assert_eq!(seq[i], batch[i]);
        }
        assert!(score_pairs(&c, &t[..2], Mode::Paper).is_err());
    }

    /// Each row's edit score equals a separately prepared [`PreparedEdit::score`], rows
    /// without old code get none, and runs split where the old code changes.
    #[test]
    fn edits_equal_single_scores() {
        let copy = "a</think><answer>```python\nx = old(1)\n```</answer>";
        let exact = "a</think><answer>```python\nx = new(1)\n```</answer>";
        let c = [copy, exact, exact, copy, "nothing"];
        let t = ["x = new(1)"; 5];
        let o = [
            Some("x = old(1)"),
            Some("x = old(1)"),
            Some("x = other(1)"),
            None,
            Some("x = old(1)"),
        ];
        for threads in [None, Some(1), Some(2)] {
            let got = score_edits_with_threads(&c, &t, &o, Mode::Paper, threads).unwrap();
            for i in 0..c.len() {
                assert_eq!(
                    got[i].reward,
                    crate::score(c[i], t[i], Mode::Paper),
                    "row {i}"
                );
                let want = o[i].map(|old| {
                    let target = PreparedTarget::new(t[i], Mode::Paper);
                    PreparedEdit::new(old, &target).score(c[i])
                });
                assert_eq!(got[i].edit, want, "row {i}");
            }
            assert!(got[0].edit.unwrap().unchanged);
            assert!(!got[2].edit.unwrap().unchanged);
        }
        assert!(matches!(
            score_edits(&c, &t, &o[..4], Mode::Paper),
            Err(BatchError::OldCodeMismatch { .. })
        ));
    }
}
