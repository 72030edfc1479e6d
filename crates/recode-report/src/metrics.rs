//! Reading a run directory's `metrics.jsonl` and `validation_start.json` as JSON objects (not
//! the trainer's structs, so RL and SFT lines, older runs and `null` values all plot), and
//! turning fields into [`Series`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ReportError;
use crate::line::Series;

/// One metrics record: its step and the JSON object.
pub type Row = (u64, Value);

/// A training run directory as read for a report.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Its `metrics.jsonl`, one row per step in step order.
    pub rows: Vec<Row>,
    /// Its `validation_start.json` (greedy validation before the first step), if present.
    pub start: Option<Value>,
}

impl RunData {
    /// Reads `dir/metrics.jsonl` and, if present, `dir/validation_start.json`.
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        if !dir.is_dir() {
            return Err(ReportError::NoRunDirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(RunData {
            dir: dir.to_path_buf(),
            rows: load_metrics(&dir.join("metrics.jsonl"))?,
            start: load_start(&dir.join("validation_start.json"))?,
        })
    }

    /// Validation points: step 0 from `validation_start.json`, then the steps where it ran.
    pub fn validation(&self) -> Vec<Row> {
        validation_points(&self.rows, self.start.as_ref())
    }
}

/// Parses one JSON object of `path` (`line` for JSONL files).
fn parse_object(path: &Path, line: Option<usize>, text: &str) -> Result<Value, ReportError> {
    let v: Value = serde_json::from_str(text).map_err(|source| ReportError::InvalidJson {
        path: path.to_path_buf(),
        line,
        source,
    })?;
    if !v.is_object() {
        return Err(ReportError::NotAnObject {
            path: path.to_path_buf(),
            line,
        });
    }
    Ok(v)
}

/// Reads `metrics.jsonl`: one JSON object with an integer `step` per non-blank line; a step
/// written twice (a resumed run) keeps its last line. Errors name `file:line`.
pub fn load_metrics(path: &Path) -> Result<Vec<Row>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v = parse_object(path, Some(i + 1), line)?;
        let Some(step) = v.get("step").and_then(Value::as_u64) else {
            return Err(ReportError::MissingStep {
                path: path.to_path_buf(),
                line: i + 1,
            });
        };
        rows.insert(step, v);
    }
    if rows.is_empty() {
        return Err(ReportError::NoMetrics {
            path: path.to_path_buf(),
        });
    }
    Ok(rows.into_iter().collect())
}

/// `validation_start.json` (greedy validation before the first step), if present.
pub fn load_start(path: &Path) -> Result<Option<Value>, ReportError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    parse_object(path, None, &text).map(Some)
}

/// The value at a dotted path such as `rollout.filter.groups_kept`.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

/// The number at a dotted path.
pub fn num(v: &Value, path: &str) -> Option<f64> {
    get(v, path).and_then(Value::as_f64)
}

/// A series of `f(row)` over the rows where it is defined.
pub fn series(rows: &[Row], name: &str, f: impl Fn(&Value) -> Option<f64>) -> Series {
    let points = rows
        .iter()
        .filter_map(|(step, v)| f(v).map(|y| (*step as f64, y)))
        .collect();
    Series::new(name, points)
}

/// A series of the number at `path`.
pub fn field(rows: &[Row], name: &str, path: &str) -> Series {
    series(rows, name, |v| num(v, path))
}

/// One series per key of the objects at `path` (e.g. each reward component).
pub fn per_key(rows: &[Row], path: &str) -> Vec<Series> {
    let keys: BTreeSet<&String> = rows
        .iter()
        .filter_map(|(_, v)| get(v, path).and_then(Value::as_object))
        .flat_map(|m| m.keys())
        .collect();
    keys.into_iter()
        .map(|k| {
            series(rows, &pretty(k), |v| {
                get(v, path).and_then(|m| m.get(k))?.as_f64()
            })
        })
        .collect()
}

/// Display names of the rewarder's components and indicators.
fn pretty(key: &str) -> String {
    match key {
        "es_star" => "ES*".into(),
        "em_star" => "EM*".into(),
        "es" => "ES".into(),
        "em" => "EM".into(),
        k => k.replace('_', " "),
    }
}

/// Validation points: step 0 from validation_start.json, then the steps where it ran
/// (records over zero prompts carry no figures).
pub fn validation_points(rows: &[Row], start: Option<&Value>) -> Vec<Row> {
    start
        .map(|v| (0, v.clone()))
        .into_iter()
        .chain(
            rows.iter()
                .filter_map(|(s, v)| Some((*s, v.get("validation")?.clone()))),
        )
        .filter(|(_, v)| v.is_object() && num(v, "num_prompts") != Some(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            load_metrics(&path).unwrap_err()
        };
        let at = |line: usize| format!("{}:{line}", path.display());
        let e = err("{\"step\": 1}\n\n{\"step\": 2,\n");
        assert!(matches!(e, ReportError::InvalidJson { line: Some(3), .. }));
        assert_eq!(e.to_string(), format!("{}: invalid JSON", at(3)));
        assert!(std::error::Error::source(&e).is_some());
        let e = err("[1]\n");
        assert_eq!(e.to_string(), format!("{}: expected a JSON object", at(1)));
        let e = err("{\"step\": 1}\n{\"loss\": 1}\n");
        assert!(matches!(e, ReportError::MissingStep { line: 2, .. }));
        assert!(matches!(err("\n"), ReportError::NoMetrics { .. }));
        // A resumed run writes a step twice: the last line wins; rows are in step order.
        std::fs::write(
            &path,
            "{\"step\": 2, \"a\": 1}\n{\"step\": 1}\n{\"step\": 2, \"a\": 3}\n",
        )
        .unwrap();
        let rows = load_metrics(&path).unwrap();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(num(&rows[1].1, "a"), Some(3.0));
        let missing = dir.path().join("nope");
        assert!(matches!(
            RunData::load(&missing),
            Err(ReportError::NoRunDirectory { .. })
        ));
    }
}
