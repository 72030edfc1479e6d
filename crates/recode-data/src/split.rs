//! Deterministic train/validation/test split, stratified by library, written once.
//!
//! Each library's rows are shuffled with a seeded SplitMix64 stream (integer arithmetic only,
//! so every platform gives the same split); the first `round(n · val)` of them go to
//! validation and the next `round(n · test)` to test. Every output keeps the input order. With
//! `test = 0` the split is the two-way split earlier versions wrote (same rows, same seed).
//!
//! [`write_split`] writes the parts as JSONL with a manifest (`split.json`: each file's row
//! count and SHA-256) and never overwrites a split with different content: a re-run that
//! would write the same bytes leaves everything as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// Validation rows (choices: learning rate, steps, temperature, reward weights).
    pub val: Vec<usize>,
    /// Test rows (touched only by the final report; empty in a two-way split).
    pub test: Vec<usize>,
}

/// Splits `examples` with validation fraction `val` (0 ≤ val < 1) and `seed` (no test part).
pub fn split(examples: &[UpdateExample], val: f64, seed: u64) -> Result<Split> {
    split_three(examples, val, 0.0, seed)
}

/// Splits `examples` three ways: fractions `val` and `test` of each library (both in [0, 1),
/// their sum below 1), the rest to training; `seed` fixes the draw on every platform.
pub fn split_three(examples: &[UpdateExample], val: f64, test: f64, seed: u64) -> Result<Split> {
    for value in [val, test] {
        if !(0.0..1.0).contains(&value) {
            return Err(DataError::SplitFraction { value });
        }
    }
    if val + test >= 1.0 {
        return Err(DataError::SplitFractions { val, test });
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
    let (mut val_rows, mut test_rows) = (Vec::new(), Vec::new());
    for (key, mut idx) in groups {
        let mut rng = SplitMix64::new(seed ^ fnv1a(&key));
        for i in (1..idx.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            idx.swap(i, j);
        }
        let take_val = (idx.len() as f64 * val).round() as usize;
        let take_test = ((idx.len() as f64 * test).round() as usize).min(idx.len() - take_val);
        val_rows.extend_from_slice(&idx[..take_val]);
        test_rows.extend_from_slice(&idx[take_val..take_val + take_test]);
    }
    val_rows.sort_unstable();
    test_rows.sort_unstable();
    let mut held_out = vec![false; examples.len()];
    for &i in val_rows.iter().chain(&test_rows) {
        held_out[i] = true;
    }
    let train = (0..examples.len()).filter(|&i| !held_out[i]).collect();
    Ok(Split {
        train,
        val: val_rows,
        test: test_rows,
    })
}

/// One written part of a split, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitFile {
    /// `train`, `val` or `test`.
    pub part: String,
    /// File name inside the split directory.
    pub file: String,
    /// Rows in the file.
    pub rows: usize,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
}

/// `split.json`: how a split was drawn and what it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitManifest {
    /// The input as given (path or hub id).
    pub input: String,
    /// Rows in the input.
    pub input_rows: usize,
    /// The seed.
    pub seed: u64,
    /// Validation fraction per library.
    pub val: f64,
    /// Test fraction per library.
    pub test: f64,
    /// The parts written, in the order train, val, test.
    pub files: Vec<SplitFile>,
}

impl SplitManifest {
    /// The manifest's file name inside a split directory.
    pub const FILE: &'static str = "split.json";

    /// Reads `dir/split.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            DataError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}

/// What [`write_split`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitWrite {
    /// The files were written (none existed).
    Written(SplitManifest),
    /// Every file already existed with exactly these bytes: nothing was rewritten.
    Unchanged(SplitManifest),
}

impl SplitWrite {
    /// The manifest, either way.
    pub fn manifest(&self) -> &SplitManifest {
        match self {
            SplitWrite::Written(m) | SplitWrite::Unchanged(m) => m,
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The JSONL bytes of `rows` of `examples`, as [`crate::load::write_jsonl`] writes them.
fn jsonl_bytes(examples: &[UpdateExample], rows: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for &i in rows {
        // Serialising plain strings and options cannot fail.
        out.extend(serde_json::to_vec(&examples[i]).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// Writes `dir/<stem>.{train,val,test}.jsonl` (test only when it has a fraction) and
/// `dir/split.json`. A split is written once: when a part exists with other bytes nothing is
/// written and [`DataError::SplitExists`] names it; when all parts exist with the same bytes
/// they are left alone ([`SplitWrite::Unchanged`]; a missing manifest is added).
pub fn write_split(
    dir: &Path,
    stem: &str,
    input: &str,
    examples: &[UpdateExample],
    split: &Split,
    (val, test, seed): (f64, f64, u64),
) -> Result<SplitWrite> {
    let mut parts: Vec<(&str, &[usize])> = vec![("train", &split.train), ("val", &split.val)];
    if test > 0.0 {
        parts.push(("test", &split.test));
    }
    let mut files = Vec::new();
    let mut bytes = Vec::new();
    for (part, rows) in parts {
        let b = jsonl_bytes(examples, rows);
        files.push(SplitFile {
            part: part.to_string(),
            file: format!("{stem}.{part}.jsonl"),
            rows: rows.len(),
            sha256: sha256_hex(&b),
        });
        bytes.push(b);
    }
    let manifest = SplitManifest {
        input: input.to_string(),
        input_rows: examples.len(),
        seed,
        val,
        test,
        files,
    };
    let mut existing = 0;
    for (f, b) in manifest.files.iter().zip(&bytes) {
        let path: PathBuf = dir.join(&f.file);
        match std::fs::read(&path) {
            Ok(old) if old == *b => existing += 1,
            Ok(_) => return Err(DataError::SplitExists { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DataError::io(&path, e)),
        }
    }
    let manifest_path = dir.join(SplitManifest::FILE);
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| DataError::io(&manifest_path, std::io::Error::other(e)))?;
    if existing == manifest.files.len() {
        if !manifest_path.exists() {
            crate::atomic::write_atomic(&manifest_path, &manifest_bytes)?;
        }
        return Ok(SplitWrite::Unchanged(manifest));
    }
    if existing > 0 || manifest_path.exists() {
        // Part of a split is there: finishing it could mix two draws, so refuse.
        let f = manifest
            .files
            .iter()
            .find(|f| dir.join(&f.file).exists())
            .map(|f| dir.join(&f.file))
            .unwrap_or(manifest_path);
        return Err(DataError::SplitExists { path: f });
    }
    for (f, b) in manifest.files.iter().zip(&bytes) {
        crate::atomic::write_atomic(&dir.join(&f.file), b)?;
    }
    crate::atomic::write_atomic(&manifest_path, &manifest_bytes)?;
    Ok(SplitWrite::Written(manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows per library, libraries `lib0..libk`, every row distinct.
    fn rows(per_lib: &[usize]) -> Vec<UpdateExample> {
        let mut out = Vec::new();
        for (l, &n) in per_lib.iter().enumerate() {
            for i in 0..n {
                out.push(UpdateExample {
                    dependency: Some(if l % 2 == 0 {
                        format!("lib{l}")
                    } else {
                        format!(" LIB{l}")
                    }),
                    old_code: Some(format!("old_{l}_{i}()")),
                    new_code: Some(format!("new_{l}_{i}()")),
                    ..Default::default()
                });
            }
        }
        out
    }

    fn lib(ex: &UpdateExample) -> String {
        dependency_key(ex.dependency.as_deref().unwrap())
    }

    #[test]
    fn three_way_split_is_deterministic_disjoint_and_complete() {
        let ex = rows(&[40, 25, 7, 1, 100]);
        let a = split_three(&ex, 0.1, 0.1, 42).unwrap();
        assert_eq!(a, split_three(&ex, 0.1, 0.1, 42).unwrap());
        assert_ne!(a, split_three(&ex, 0.1, 0.1, 43).unwrap());
        let mut all: Vec<usize> = a
            .train
            .iter()
            .chain(&a.val)
            .chain(&a.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..ex.len()).collect::<Vec<_>>(),
            "disjoint and complete"
        );
        for part in [&a.train, &a.val, &a.test] {
            assert!(part.windows(2).all(|w| w[0] < w[1]), "input order kept");
        }
    }

    #[test]
    fn three_way_split_is_stratified_with_rounded_sizes() {
        let sizes = [40, 25, 7, 1, 100];
        let ex = rows(&sizes);
        let s = split_three(&ex, 0.1, 0.2, 7).unwrap();
        for (l, &n) in sizes.iter().enumerate() {
            let key = dependency_key(&format!("lib{l}"));
            let count = |part: &[usize]| part.iter().filter(|&&i| lib(&ex[i]) == key).count();
            let v = (n as f64 * 0.1).round() as usize;
            let t = ((n as f64 * 0.2).round() as usize).min(n - v);
            assert_eq!(count(&s.val), v, "library {l} validation");
            assert_eq!(count(&s.test), t, "library {l} test");
            assert_eq!(count(&s.train), n - v - t, "library {l} train");
        }
    }

    #[test]
    fn test_fraction_zero_is_the_two_way_split_and_validation_is_stable() {
        let ex = rows(&[40, 25, 7, 100]);
        let two = split(&ex, 0.1, 42).unwrap();
        assert!(two.test.is_empty());
        let three = split_three(&ex, 0.1, 0.1, 42).unwrap();
        // Adding a test part takes it from training only: validation is the same rows.
        assert_eq!(two.val, three.val);
        assert!(three.test.iter().all(|i| two.train.contains(i)));
    }

    #[test]
    fn fractions_are_checked() {
        let ex = rows(&[10]);
        assert!(matches!(
            split_three(&ex, 1.0, 0.0, 1),
            Err(DataError::SplitFraction { .. })
        ));
        assert!(matches!(
            split_three(&ex, 0.1, -0.1, 1),
            Err(DataError::SplitFraction { .. })
        ));
        assert!(matches!(
            split_three(&ex, 0.5, 0.5, 1),
            Err(DataError::SplitFractions { .. })
        ));
    }

    #[test]
    fn split_is_written_once_with_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let ex = rows(&[30, 20]);
        let s = split_three(&ex, 0.1, 0.1, 42).unwrap();
        let fr = (0.1, 0.1, 42);
        let w = write_split(dir.path(), "clean", "clean.jsonl", &ex, &s, fr).unwrap();
        let SplitWrite::Written(m) = w else {
            panic!("first write: {w:?}")
        };
        assert_eq!(m, SplitManifest::load(dir.path()).unwrap());
        assert_eq!(
            m.files.iter().map(|f| f.part.as_str()).collect::<Vec<_>>(),
            ["train", "val", "test"]
        );
        for f in &m.files {
            let bytes = std::fs::read(dir.path().join(&f.file)).unwrap();
            assert_eq!(f.sha256, sha256_hex(&bytes));
            assert_eq!(f.sha256.len(), 64);
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), f.rows);
            // The files load back as the rows they were drawn from.
            let back =
                crate::load::load_file(&dir.path().join(&f.file), Default::default()).unwrap();
            assert_eq!(back.rows.len(), f.rows);
        }
        assert_eq!(
            m.files[0].rows + m.files[1].rows + m.files[2].rows,
            ex.len()
        );
        // The same split again: left alone.
        let again = write_split(dir.path(), "clean", "clean.jsonl", &ex, &s, fr).unwrap();
        assert!(matches!(again, SplitWrite::Unchanged(_)));
        // Another seed would overwrite with other rows: refused, nothing changed.
        let other = split_three(&ex, 0.1, 0.1, 1).unwrap();
        let err = write_split(
            dir.path(),
            "clean",
            "clean.jsonl",
            &ex,
            &other,
            (0.1, 0.1, 1),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::SplitExists { .. }), "{err}");
        assert_eq!(m, SplitManifest::load(dir.path()).unwrap());
    }
}
