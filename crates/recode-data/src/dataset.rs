//! The loaded form of ReCode data: rows with their line numbers, the bad rows met, and the
//! loading options (shared by the JSONL and Parquet readers).

use std::path::PathBuf;

use crate::error::DataError;
use crate::example::UpdateExample;

/// A row together with the 1-based line (JSONL) or row number (Parquet) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Where the row is in its file, for messages.
    pub line: usize,
    /// The record itself.
    pub example: UpdateExample,
}

/// The rows of one or more files, plus the bad rows met when loading with `keep_going`.
#[derive(Debug, Default)]
pub struct Dataset {
    /// Files the rows came from, in order.
    pub sources: Vec<PathBuf>,
    /// Good rows in file order.
    pub rows: Vec<Row>,
    /// Bad rows (only filled with `keep_going`; strict loading returns the first as `Err`).
    pub errors: Vec<DataError>,
}

impl Dataset {
    /// The examples without their line numbers.
    pub fn examples(&self) -> impl Iterator<Item = &UpdateExample> {
        self.rows.iter().map(|r| &r.example)
    }
}

/// How to react to bad rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Collect bad rows instead of failing on the first.
    pub keep_going: bool,
}
