//! Paired comparisons of two evaluations of the same prompts: is a difference in mean score or
//! in exact-match count more than the noise of a small held-out set?
//!
//! A mean difference gets a percentile bootstrap interval over prompts (resampling the
//! per-prompt differences); a pass/fail count gets the exact two-sided McNemar test (a binomial
//! test on the prompts that changed outcome).

/// A paired difference in mean score with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanDifference {
    /// Mean of `other − base` over the prompts.
    pub mean: f64,
    /// Lower end of the 95% percentile bootstrap interval.
    pub low: f64,
    /// Upper end of the 95% percentile bootstrap interval.
    pub high: f64,
}

/// A paired change of a pass/fail outcome (e.g. exact match) between two evaluations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeChange {
    /// Prompts that fail in `base` and pass in `other`.
    pub gained: usize,
    /// Prompts that pass in `base` and fail in `other`.
    pub lost: usize,
    /// Exact two-sided McNemar p-value: 1 means no evidence of a change.
    pub p_value: f64,
}

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mean of `other[i] − base[i]` with a 95% percentile bootstrap interval from `resamples`
/// resamples of the prompts (seeded: the same inputs give the same interval).
///
/// Panics if the slices differ in length (they must score the same prompts).
pub fn mean_difference(base: &[f64], other: &[f64], resamples: usize, seed: u64) -> MeanDifference {
    assert_eq!(
        base.len(),
        other.len(),
        "paired scores of different prompt counts"
    );
    let d: Vec<f64> = other.iter().zip(base).map(|(o, b)| o - b).collect();
    let n = d.len();
    if n == 0 {
        return MeanDifference {
            mean: 0.0,
            low: 0.0,
            high: 0.0,
        };
    }
    let mean = d.iter().sum::<f64>() / n as f64;
    // Seeded, so a report computes the same interval every time.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    MeanDifference {
        mean,
        low: at(0.025),
        high: at(0.975),
    }
}

/// Gains, losses and the exact two-sided McNemar p-value of a paired pass/fail outcome.
///
/// Panics if the slices differ in length.
pub fn outcome_change(base: &[bool], other: &[bool]) -> OutcomeChange {
    assert_eq!(
        base.len(),
        other.len(),
        "paired outcomes of different prompt counts"
    );
    let gained = base.iter().zip(other).filter(|(b, o)| !**b && **o).count();
    let lost = base.iter().zip(other).filter(|(b, o)| **b && !**o).count();
    OutcomeChange {
        gained,
        lost,
        p_value: mcnemar_exact(gained, lost),
    }
}

/// Exact two-sided McNemar p-value: 2·P(X ≤ min(b, c)) for X ~ Binomial(b + c, ½), capped at 1.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // Binomial coefficients in log space keep large counts finite.
    let ln_choose = |n: usize, k: usize| -> f64 {
        let lg = |m: usize| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
        lg(n) - lg(k) - lg(n - k)
    };
    let tail: f64 = (0..=b.min(c))
        .map(|k| (ln_choose(n, k) - n as f64 * std::f64::consts::LN_2).exp())
        .sum();
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_hand_computed_binomial_tails() {
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(1, 1), 1.0);
        // 0 of 5 changes in one direction: 2 · (1/2)^5.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // 1 vs 9: 2 · (1 + 10) / 1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        // 2 vs 3 is capped at 1 (2 · 16/32 = 1).
        assert_eq!(mcnemar_exact(2, 3), 1.0);
    }

    #[test]
    fn outcome_change_counts_gains_and_losses() {
        let base = [true, false, false, true, false];
        let other = [true, true, true, false, false];
        let c = outcome_change(&base, &other);
        assert_eq!((c.gained, c.lost), (2, 1));
        assert!((c.p_value - mcnemar_exact(2, 1)).abs() < 1e-15);
    }

    #[test]
    fn bootstrap_interval_agrees_with_the_normal_approximation_on_many_prompts() {
        // Differences with a known mean and spread: the percentile interval of 4000 resamples
        // must match mean ± 1.96·sd/√n within 10% of its half-width.
        let n = 2000;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let base: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let other: Vec<f64> = base
            .iter()
            .map(|b| b + 0.1 + (rng.random::<f64>() - 0.5))
            .collect();
        let r = mean_difference(&base, &other, 4000, 1);
        let d: Vec<f64> = other.iter().zip(&base).map(|(o, b)| o - b).collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        let half = 1.96 * sd / (n as f64).sqrt();
        assert!((r.mean - mean).abs() < 1e-12);
        assert!(
            ((r.high - r.low) / 2.0 - half).abs() < 0.1 * half,
            "{r:?} vs ±{half}"
        );
        assert!(((r.high + r.low) / 2.0 - mean).abs() < 0.1 * half);
        // Seeded: the same call gives the same interval.
        assert_eq!(r, mean_difference(&base, &other, 4000, 1));
    }

    #[test]
    fn identical_scores_give_a_zero_width_interval() {
        let s = [0.5, -2.0, 1.25];
        let r = mean_difference(&s, &s, 200, 3);
        assert_eq!((r.mean, r.low, r.high), (0.0, 0.0, 0.0));
    }
}
