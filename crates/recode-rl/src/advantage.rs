//! Sequence-level reward processing: group advantages, DAPO's dynamic-sampling
//! filter and DAPO's overlong reward shaping. Plain `f64`; no tensors needed.

use crate::config::{ScaleRewards, StdKind};

/// Added to the std before dividing, as in the GRPO paper, TRL and verl.
pub const ADV_EPS: f64 = 1e-6;

/// Mean and standard deviation of `xs` (`Sample` divides by n−1, 0 when n < 2).
pub fn mean_std(xs: &[f64], kind: StdKind) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    let denom = match kind {
        StdKind::Sample if n < 2 => return (mean, 0.0),
        StdKind::Sample => (n - 1) as f64,
        StdKind::Population => n as f64,
    };
    (mean, (ss / denom).sqrt())
}

/// Group-relative advantages: `rewards` holds consecutive groups of `group_size`.
///
/// A_i = (r_i − mean_g) / (std + 1e-6) with the group's std (`Group`), the whole
/// batch's std (`Batch`) or no scaling (`None`). A group whose rewards are all equal
/// gets exactly 0 (its centred rewards are exactly 0).
pub fn group_advantages(
    rewards: &[f64],
    group_size: usize,
    scale: ScaleRewards,
    std_kind: StdKind,
) -> Vec<f64> {
    let batch_std = mean_std(rewards, std_kind).1;
    rewards
        .chunks(group_size.max(1))
        .flat_map(|g| {
            let (mean, std) = mean_std(g, std_kind);
            let denom = match scale {
                ScaleRewards::Group => std + ADV_EPS,
                ScaleRewards::Batch => batch_std + ADV_EPS,
                ScaleRewards::None => 1.0,
            };
            g.iter().map(move |r| (r - mean) / denom)
        })
        .collect()
}

/// True when every reward of the group is the same (no learning signal).
pub fn group_is_constant(group: &[f64]) -> bool {
    group.windows(2).all(|w| w[0] == w[1])
}

/// DAPO's soft overlong penalty for a completion of `len` tokens.
///
/// With L = `max_len` and buffer B: 0 when len ≤ L − B, linear from 0 down to
/// −`factor` across the buffer, and −`factor` beyond L (verl's `overlong_buffer`).
/// `buffer_len == 0` disables it.
pub fn overlong_penalty(len: usize, max_len: usize, buffer_len: usize, factor: f64) -> f64 {
    if buffer_len == 0 {
        return 0.0;
    }
    let expected = max_len.saturating_sub(buffer_len);
    if len <= expected {
        return 0.0;
    }
    let exceed = (len - expected).min(buffer_len) as f64;
    -exceed / buffer_len as f64 * factor
}

/// Accounting of DAPO dynamic sampling over one optimizer step.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FilterStats {
    /// Generation batches drawn (≤ `max_num_gen_batches`).
    pub gen_batches: usize,
    /// Groups generated in total.
    pub groups_seen: usize,
    /// Groups kept (non-constant rewards).
    pub groups_kept: usize,
}

impl FilterStats {
    /// Fraction of generated groups that carried a learning signal.
    pub fn kept_fraction(&self) -> f64 {
        if self.groups_seen == 0 {
            0.0
        } else {
            self.groups_kept as f64 / self.groups_seen as f64
        }
    }
}

/// Collects groups across generation batches until `target_groups` informative groups
/// are held (DAPO dynamic sampling). Items are whatever a group is (e.g. rollouts).
#[derive(Debug)]
pub struct GroupFilter<T> {
    target_groups: usize,
    max_gen_batches: usize,
    kept: Vec<T>,
    /// Running accounting.
    pub stats: FilterStats,
}

impl<T> GroupFilter<T> {
    /// A filter that wants `target_groups` and may draw `max_gen_batches` batches.
    pub fn new(target_groups: usize, max_gen_batches: usize) -> Self {
        GroupFilter {
            target_groups,
            max_gen_batches,
            kept: Vec::new(),
            stats: FilterStats::default(),
        }
    }

    /// Offers one generation batch of `(group, rewards)`; constant-reward groups are dropped.
    pub fn offer(&mut self, batch: Vec<(T, Vec<f64>)>) {
        self.stats.gen_batches += 1;
        for (group, rewards) in batch {
            self.stats.groups_seen += 1;
            if !group_is_constant(&rewards) {
                self.stats.groups_kept += 1;
                self.kept.push(group);
            }
        }
    }

    /// True when enough groups are held or the generation budget is spent.
    pub fn done(&self) -> bool {
        self.kept.len() >= self.target_groups || self.stats.gen_batches >= self.max_gen_batches
    }

    /// Kept groups, truncated to the target (surplus from the last batch is dropped, as
    /// in verl). May hold fewer than the target when the budget ran out.
    pub fn finish(mut self) -> (Vec<T>, FilterStats) {
        self.kept.truncate(self.target_groups);
        (self.kept, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_match_a_direct_computation() {
        let r = [1.0, 2.0, 4.0, -1.0, 0.5, 0.5];
        let a = group_advantages(&r, 3, ScaleRewards::Group, StdKind::Sample);
        // group 1: mean 7/3, sample var = ((4/3)^2+(1/3)^2+(5/3)^2)/2 = 42/18
        let s1 = (42.0f64 / 18.0).sqrt();
        let m1 = 7.0 / 3.0;
        for i in 0..3 {
            assert!((a[i] - (r[i] - m1) / (s1 + 1e-6)).abs() < 1e-12);
        }
        let ap = group_advantages(&r, 3, ScaleRewards::Group, StdKind::Population);
        let p1 = (42.0f64 / 27.0).sqrt();
        assert!((ap[0] - (1.0 - m1) / (p1 + 1e-6)).abs() < 1e-12);
        let an = group_advantages(&r, 3, ScaleRewards::None, StdKind::Sample);
        assert!((an[2] - (4.0 - m1)).abs() < 1e-12);
    }

    #[test]
    fn constant_group_gives_zero_advantage_and_is_dropped() {
        let r = [0.7, 0.7, 0.7, 0.7, 1.0, 0.0, 1.0, 0.0];
        let a = group_advantages(&r, 4, ScaleRewards::Group, StdKind::Sample);
        assert!(a[..4].iter().all(|&x| x == 0.0));
        assert!(a[4..].iter().all(|&x| x.abs() > 0.5));
        let mut f = GroupFilter::new(2, 3);
        f.offer(vec![("a", r[..4].to_vec()), ("b", r[4..].to_vec())]);
        assert!(!f.done());
        f.offer(vec![
            ("c", vec![3.0, 3.0]),
            ("d", vec![1.0, 2.0]),
            ("e", vec![0.0, 1.0]),
        ]);
        assert!(f.done());
        let (kept, stats) = f.finish();
        assert_eq!(kept, ["b", "d"]);
        assert_eq!(
            stats,
            FilterStats {
                gen_batches: 2,
                groups_seen: 5,
                groups_kept: 3
            }
        );
        assert!((stats.kept_fraction() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn filter_stops_at_generation_budget() {
        let mut f: GroupFilter<u8> = GroupFilter::new(4, 2);
        f.offer(vec![(1, vec![1.0, 1.0])]);
        f.offer(vec![(2, vec![0.0, 1.0])]);
        assert!(f.done());
        let (kept, stats) = f.finish();
        assert_eq!((kept, stats.gen_batches), (vec![2], 2));
    }

    #[test]
    fn overlong_penalty_is_dapos_piecewise_linear_ramp() {
        // L = 20, B = 4, factor 1: expected 16.
        assert_eq!(overlong_penalty(16, 20, 4, 1.0), 0.0);
        assert_eq!(overlong_penalty(17, 20, 4, 1.0), -0.25);
        assert_eq!(overlong_penalty(20, 20, 4, 1.0), -1.0);
        assert_eq!(overlong_penalty(25, 20, 4, 0.5), -0.5);
        assert_eq!(overlong_penalty(25, 20, 0, 1.0), 0.0);
    }
}
