//! pass@k (unbiased estimator) and the CodeUpdateArena per-example scores (harness doc §3, §6).

use serde::Serialize;

/// Unbiased pass@k for `n` samples of which `c` are correct: 1 − C(n−c, k)/C(n, k), computed
/// as 1 − ∏_{i=n−c+1..n}(1 − k/i); 1 when n − c < k (so also for k > n, the benchmark's quirk).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    let c = c.min(n);
    if n - c < k {
        return 1.0;
    }
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// Per-candidate outcome on one example: did all pieces pass with / without the update, and
/// what fraction passed with it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CandidateOutcome {
    /// W: every piece passes with the update.
    pub with_update: bool,
    /// O: every piece passes without the update.
    pub without_update: bool,
    /// Fraction of pieces passing with the update.
    pub fraction_with: f64,
}

/// Scores of one example (×100 like the benchmark), for one k.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExampleScores {
    /// pass@k(new), c = #W.
    pub pass_new: f64,
    /// UPass@k, c = #(W ∧ ¬O).
    pub upass: f64,
    /// pass@k(old), c = #O.
    pub pass_old: f64,
    /// pass@k(old excl.), c = #(O ∧ ¬W).
    pub pass_old_excl: f64,
    /// (n − #(W∧¬O) − #(O∧¬W)) / n.
    pub unsolved: f64,
    /// Mean of the candidates' fractions of pieces passing with the update.
    pub accuracy_mean: f64,
    /// Population standard deviation of the same fractions.
    pub accuracy_std: f64,
}

/// Computes the §3 scores of one example with `k` from its candidates' outcomes.
pub fn example_scores(cands: &[CandidateOutcome], k: usize) -> ExampleScores {
    let n = cands.len();
    let count = |f: &dyn Fn(&CandidateOutcome) -> bool| cands.iter().filter(|c| f(c)).count();
    let w = count(&|c| c.with_update);
    let wn = count(&|c| c.with_update && !c.without_update);
    let o = count(&|c| c.without_update);
    let on = count(&|c| c.without_update && !c.with_update);
    let nf = n.max(1) as f64;
    let mean = cands.iter().map(|c| c.fraction_with).sum::<f64>() / nf;
    let var = cands
        .iter()
        .map(|c| (c.fraction_with - mean).powi(2))
        .sum::<f64>()
        / nf;
    ExampleScores {
        pass_new: 100.0 * pass_at_k(n, w, k),
        upass: 100.0 * pass_at_k(n, wn, k),
        pass_old: 100.0 * pass_at_k(n, o, k),
        pass_old_excl: 100.0 * pass_at_k(n, on, k),
        unsolved: 100.0 * (n - wn - on) as f64 / nf,
        accuracy_mean: 100.0 * mean,
        accuracy_std: 100.0 * var.sqrt(),
    }
}

/// Averages per-example scores (the benchmark publishes no cross-example step: plain mean).
pub fn mean_scores(all: &[ExampleScores]) -> Option<ExampleScores> {
    if all.is_empty() {
        return None;
    }
    let n = all.len() as f64;
    let avg = |f: fn(&ExampleScores) -> f64| all.iter().map(f).sum::<f64>() / n;
    Some(ExampleScores {
        pass_new: avg(|s| s.pass_new),
        upass: avg(|s| s.upass),
        pass_old: avg(|s| s.pass_old),
        pass_old_excl: avg(|s| s.pass_old_excl),
        unsolved: avg(|s| s.unsolved),
        accuracy_mean: avg(|s| s.accuracy_mean),
        accuracy_std: avg(|s| s.accuracy_std),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C(n, k) as an exact integer (independent of the product formula).
    fn binom(n: u64, k: u64) -> u128 {
        if k > n {
            return 0;
        }
        let mut r: u128 = 1;
        for i in 0..k {
            r = r * (n - i) as u128 / (i + 1) as u128;
        }
        r
    }

    #[test]
    fn matches_direct_combinatorics() {
        for n in 1..=20u64 {
            for c in 0..=n {
                for k in 1..=n {
                    let direct = 1.0 - binom(n - c, k) as f64 / binom(n, k) as f64;
                    let got = pass_at_k(n as usize, c as usize, k as usize);
                    assert!(
                        (got - direct).abs() < 1e-12,
                        "n={n} c={c} k={k}: {got} vs {direct}"
                    );
                }
            }
        }
    }

    #[test]
    fn k_above_n_quirk_and_simple_values() {
        assert_eq!(pass_at_k(5, 0, 10), 1.0);
        assert_eq!(pass_at_k(5, 0, 1), 0.0);
        assert!((pass_at_k(5, 2, 1) - 0.4).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 5, 5), 1.0);
    }

    #[test]
    fn example_scores_by_hand() {
        let c = |w, o, f| CandidateOutcome {
            with_update: w,
            without_update: o,
            fraction_with: f,
        };
        let s = example_scores(
            &[
                c(true, false, 1.0),
                c(true, true, 1.0),
                c(false, true, 0.5),
                c(false, false, 0.0),
            ],
            1,
        );
        assert!((s.pass_new - 50.0).abs() < 1e-9);
        assert!((s.upass - 25.0).abs() < 1e-9);
        assert!((s.pass_old - 50.0).abs() < 1e-9);
        assert!((s.pass_old_excl - 25.0).abs() < 1e-9);
        assert!((s.unsolved - 50.0).abs() < 1e-9);
        assert!((s.accuracy_mean - 62.5).abs() < 1e-9);
        // population std of [1, 1, .5, 0]: sqrt(((.375)^2*2 + .125^2 + .625^2)/4)
        let std = ((0.375f64.powi(2) * 2.0 + 0.125f64.powi(2) + 0.625f64.powi(2)) / 4.0).sqrt();
        assert!((s.accuracy_std - 100.0 * std).abs() < 1e-9);
    }
}
