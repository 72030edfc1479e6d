//! Parallel batch scoring (rayon), shared by the CLI, the HTTP server and the Python module.

use crate::{Mode, PreparedTarget, RewardBreakdown};
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
    /// The thread pool could not be built.
    #[error("cannot build a thread pool: {0}")]
    ThreadPool(String),
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
    if completions.len() != targets.len() {
        return Err(BatchError::LengthMismatch {
            completions: completions.len(),
            targets: targets.len(),
        });
    }
    // Runs of equal consecutive targets become one work item.
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=targets.len() {
        if i == targets.len() || targets[i].as_ref() != targets[start].as_ref() {
            runs.push(start..i);
            start = i;
        }
    }
    let scored: Vec<Vec<RewardBreakdown>> = runs
        .into_par_iter()
        .map(|run| {
            let target = PreparedTarget::new(targets[run.start].as_ref(), mode);
            if run.len() == 1 {
                return vec![target.score(completions[run.start].as_ref())];
            }
            completions[run]
                .par_iter()
                .map(|c| target.score(c.as_ref()))
                .collect()
        })
        .collect();
    Ok(scored.into_iter().flatten().collect())
}

/// [`score_pairs`] on a dedicated pool of `threads` threads (`None`: all cores, `Some(1)`:
/// sequential on the calling thread).
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
    match threads {
        None => score_pairs(completions, targets, mode),
        Some(n) => {
            if n <= 1 {
                if completions.len() != targets.len() {
                    return score_pairs(completions, targets, mode);
                }
                return Ok(completions
                    .iter()
                    .zip(targets)
                    .map(|(c, t)| PreparedTarget::new(t.as_ref(), mode).score(c.as_ref()))
                    .collect());
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| BatchError::ThreadPool(e.to_string()))?;
            pool.install(|| score_pairs(completions, targets, mode))
        }
    }
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
}
