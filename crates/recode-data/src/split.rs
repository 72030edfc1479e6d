//! Deterministic train/validation split, stratified by library.
//!
//! Each library's rows are shuffled with a seeded SplitMix64 stream (integer arithmetic only,
//! so every platform gives the same split) and `round(n · val)` of them go to validation.
//! Both outputs keep the input order.

use std::collections::BTreeMap;

use crate::error::{DataError, Result};
use crate::example::{dependency_key, UpdateExample};

/// SplitMix64: a small, well-mixed generator whose output is identical on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform integer in `0..n` (Lemire's multiply-shift; n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// FNV-1a, used to give every library its own stream independent of the others.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Which rows go where: indices into the input, each list in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
}

/// Splits `examples` with validation fraction `val` (0 ≤ val < 1) and `seed`.
pub fn split(examples: &[UpdateExample], val: f64, seed: u64) -> Result<Split> {
    if !(0.0..1.0).contains(&val) {
        return Err(DataError::SplitFraction { value: val });
    }
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, ex) in examples.iter().enumerate() {
        let key = ex
            .dependency
            .as_deref()
            .map(dependency_key)
            .unwrap_or_default();
        groups.entry(key).or_default().push(i);
    }
    let mut val_rows = Vec::new();
    for (key, mut idx) in groups {
        let mut rng = SplitMix64::new(seed ^ fnv1a(&key));
        for i in (1..idx.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            idx.swap(i, j);
        }
        let take = (idx.len() as f64 * val).round() as usize;
        val_rows.extend_from_slice(&idx[..take]);
    }
    val_rows.sort_unstable();
    let mut is_val = vec![false; examples.len()];
    for &i in &val_rows {
        is_val[i] = true;
    }
    let train = (0..examples.len()).filter(|&i| !is_val[i]).collect();
    Ok(Split {
        train,
        val: val_rows,
    })
}
