//! Loading ReCode data from JSONL or Parquet, with errors that name file, line and field.
//!
//! Strict loading stops at the first bad row; with `keep_going` every bad row is collected
//! in [`Dataset::errors`] and the good rows are kept, so `recode data stats --keep-going`
//! can list all problems of a file at once.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

pub use crate::dataset::{Dataset, LoadOptions, Row};
use crate::error::{DataError, Result};
use crate::example::{UpdateExample, FIELDS};

/// Loads a `.jsonl`/`.json` (JSON lines) or `.parquet` file by its extension.
pub fn load_file(path: &Path, opts: LoadOptions) -> Result<Dataset> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut ds = match ext.as_str() {
        "parquet" => crate::parquet_io::read_parquet(path, opts)?,
        _ => {
            let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            parse_jsonl(path, &bytes, opts)?
        }
    };
    if ds.rows.is_empty() && ds.errors.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    ds.sources = vec![path.to_path_buf()];
    Ok(ds)
}

/// Parses JSON-lines bytes; blank lines are allowed and ignored.
pub fn parse_jsonl(path: &Path, bytes: &[u8], opts: LoadOptions) -> Result<Dataset> {
    let mut ds = Dataset::default();
    for (idx, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = idx + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(path, line, raw) {
            Ok(example) => ds.rows.push(Row { line, example }),
            Err(e) if opts.keep_going => ds.errors.push(e),
            Err(e) => return Err(e),
        }
    }
    Ok(ds)
}

fn row_error(path: &Path, line: usize, field: Option<&str>, message: String) -> DataError {
    DataError::Row {
        path: path.to_path_buf(),
        line,
        field: field.map(str::to_string),
        message,
    }
}

fn parse_line(path: &Path, line: usize, raw: &[u8]) -> Result<UpdateExample> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        row_error(
            path,
            line,
            None,
            format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        row_error(
            path,
            line,
            None,
            format!("malformed JSON at column {}: {e}", e.column()),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(row_error(
            path,
            line,
            None,
            format!("expected a JSON object, found {}", json_type(&value)),
        ));
    };
    let mut example = UpdateExample::default();
    for name in FIELDS {
        let slot = example.field_mut(name).expect("known field");
        *slot = match map.get(name) {
            None => {
                return Err(row_error(
                    path,
                    line,
                    Some(name),
                    "missing (write null if the value is unknown)".into(),
                ))
            }
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(row_error(
                    path,
                    line,
                    Some(name),
                    format!("expected a string or null, found {}", json_type(other)),
                ))
            }
        };
    }
    Ok(example)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes examples as JSON lines, atomically (temporary file in the same directory, then rename).
pub fn write_jsonl<'a>(
    path: &Path,
    examples: impl IntoIterator<Item = &'a UpdateExample>,
) -> Result<()> {
    crate::atomic::write_with(path, |w| {
        for ex in examples {
            serde_json::to_writer(&mut *w, ex).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}
