//! Candidate rows (ReCode's six keys + `old_version`, optional `change_id`, `model`), the
//! distribution-name table for ReCode's display names, and JSONL reading/writing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CurateError, Result};

/// A migration pair to verify, in ReCode's key order, then `old_version` and provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Distribution (PyPI name) or one of ReCode's display names.
    pub dependency: String,
    /// `==Y`.
    pub new_version: String,
    /// One sentence: "The code demonstrates how to …".
    pub description: String,
    /// 1–2 sentences of release-note prose.
    pub update_info: String,
    /// Code using the old API (runs on the old version).
    pub old_code: String,
    /// Code using the new API (runs on the new version).
    pub new_code: String,
    /// `==X`.
    pub old_version: String,
    /// The mined change it illustrates (enables the off-target check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
    /// The model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// ReCode's display names and the PyPI distributions they stand for.
const DISPLAY_NAMES: [(&str, &str); 10] = [
    ("pytorch", "torch"),
    ("scikit-learn", "scikit-learn"),
    ("sklearn", "scikit-learn"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("matplotlib", "matplotlib"),
    ("seaborn", "seaborn"),
    ("jax", "jax"),
    ("scrapy", "scrapy"),
    ("pandas", "pandas"),
];

/// The PyPI distribution of a `dependency` value (display names mapped, others kept).
pub fn distribution(dependency: &str) -> String {
    let key = dependency.trim().to_lowercase();
    DISPLAY_NAMES
        .iter()
        .find(|(d, _)| *d == key)
        .map(|(_, dist)| dist.to_string())
        .unwrap_or_else(|| dependency.trim().to_string())
}

/// A version without its `==`.
pub fn bare_version(v: &str) -> &str {
    recode_data::example::canonical_version(v)
}

/// Reads a JSONL file of `T`; blank lines skipped; errors name file and line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let f = std::fs::File::open(path).map_err(|e| CurateError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| CurateError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| CurateError::Input {
            path: path.to_path_buf(),
            line: i + 1,
            source: e,
        })?);
    }
    Ok(out)
}

/// Writes `items` as JSONL atomically (a temporary sibling renamed into place).
pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    recode_data::atomic::write_with(path, |w| {
        for item in items {
            serde_json::to_writer(&mut *w, item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .map_err(|e| CurateError::io(path, std::io::Error::other(e.to_string())))
}
