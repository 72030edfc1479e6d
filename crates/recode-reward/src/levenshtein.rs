//! Levenshtein distance over Unicode code points, bit-parallel (Myers 1999, block form as in
//! Hyyrö 2003): O(⌈m/64⌉·n) word operations after stripping the common prefix and suffix.

use std::collections::HashMap;

/// Edit distance (insert, delete, substitute; unit costs) between `a` and `b`, counted in
/// Unicode scalar values like Python's `len`.
pub fn levenshtein(a: &str, b: &str) -> usize {
    if a == b {
        return 0;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    levenshtein_chars(&a, &b)
}

/// [`levenshtein`] on already decoded code points.
pub fn levenshtein_chars(a: &[char], b: &[char]) -> usize {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    // The shorter string is the bit-vector pattern.
    let (pattern, text) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if pattern.is_empty() {
        return text.len();
    }
    myers(pattern, text)
}

/// Per-block match masks of the pattern: bit i of block k is set when pattern[64k+i] == c.
struct PatternMasks {
    blocks: usize,
    ascii: Vec<u64>,
    other: HashMap<char, Vec<u64>>,
}

impl PatternMasks {
    fn new(pattern: &[char]) -> Self {
        let blocks = pattern.len().div_ceil(64);
        let mut masks = PatternMasks {
            blocks,
            ascii: vec![0; 128 * blocks],
            other: HashMap::new(),
        };
        for (i, &c) in pattern.iter().enumerate() {
            let (block, bit) = (i / 64, 1u64 << (i % 64));
            if c.is_ascii() {
                masks.ascii[c as usize * blocks + block] |= bit;
            } else {
                masks.other.entry(c).or_insert_with(|| vec![0; blocks])[block] |= bit;
            }
        }
        masks
    }

    #[inline]
    fn get(&self, c: char, block: usize) -> u64 {
        if c.is_ascii() {
            self.ascii[c as usize * self.blocks + block]
        } else {
            self.other.get(&c).map_or(0, |v| v[block])
        }
    }
}

/// One block step of Myers' algorithm; `hin` is the horizontal delta entering the block's
/// top row (−1, 0 or +1); returns the delta leaving its row `out_bit`.
#[inline(always)]
fn advance_block(pv: &mut u64, mv: &mut u64, eq: u64, hin: i8, out_bit: u64) -> i8 {
    let hin_neg = u64::from(hin < 0);
    let xv = eq | *mv;
    let eq = eq | hin_neg;
    let xh = (((eq & *pv).wrapping_add(*pv)) ^ *pv) | eq;
    let mut ph = *mv | !(xh | *pv);
    let mut mh = *pv & xh;
    let hout = i8::from(ph & out_bit != 0) - i8::from(mh & out_bit != 0);
    ph <<= 1;
    mh <<= 1;
    mh |= hin_neg;
    ph |= u64::from(hin > 0);
    *pv = mh | !(xv | ph);
    *mv = ph & xv;
    hout
}

fn myers(pattern: &[char], text: &[char]) -> usize {
    let masks = PatternMasks::new(pattern);
    let blocks = masks.blocks;
    let last_bit = 1u64 << ((pattern.len() - 1) % 64);
    let mut pv = vec![u64::MAX; blocks];
    let mut mv = vec![0u64; blocks];
    let mut score = pattern.len() as isize;
    for &c in text {
        let mut h: i8 = 1;
        for k in 0..blocks {
            let out_bit = if k + 1 == blocks { last_bit } else { 1 << 63 };
            h = advance_block(&mut pv[k], &mut mv[k], masks.get(c, k), h, out_bit);
        }
        score += isize::from(h);
    }
    score as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dp(a: &[char], b: &[char]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    #[test]
    fn known() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("héllo wörld", "hello world"), 2);
        assert_eq!(levenshtein("日本語", "日本"), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn matches_dp(a in "[abcé日 ]{0,200}", b in "[abcé日 ]{0,200}") {
            let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            prop_assert_eq!(levenshtein(&a, &b), dp(&ca, &cb));
        }

        #[test]
        fn matches_dp_long(a in "[ab]{60,300}", b in "[abc]{0,300}") {
            let (ca, cb): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            prop_assert_eq!(levenshtein(&a, &b), dp(&ca, &cb));
        }
    }
}
