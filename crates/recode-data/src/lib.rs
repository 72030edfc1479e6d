//! ReCode API-update data: the stage every other one reads from.
//!
//! - [`example::UpdateExample`]: the six-column record (`dependency`, `new_version`,
//!   `description`, `update_info`, `old_code`, `new_code`).
//! - [`dataset`]: the loaded rows ([`Dataset`], [`Row`]) and [`LoadOptions`].
//! - [`load`](mod@load): JSONL/Parquet loading whose errors name file, line and field; `keep_going`
//!   collects all bad rows. [`hub::resolve`] also accepts a Hugging Face dataset id.
//! - [`datasets`]: the public data sets behind the defaults and where they are found
//!   (variable, `../shared`, cache, hub id); tests skip, saying which, when theirs is absent.
//! - [`stats`]: the validation report (duplicates, identical pairs, nulls, version prefixes,
//!   Python syntax via the reward crate's parser, token-length percentiles).
//! - [`clean`], [`split`]: cleaning with switchable rules; deterministic stratified splits.
//! - [`template`], [`prompt`]: the exact ReCode training prompt through ChatML or a model's
//!   own Jinja chat template, with `continue_final_message` semantics.
//! - [`export`]: verl Parquet and TRL JSONL for scale-out training.
//!
//! Dependency note: this crate uses `recode-reward` for the Python parser and the code
//! normalisation, so "valid" and "identical" mean exactly what the reward means.

pub mod atomic;
pub mod clean;
pub mod dataset;
pub mod datasets;
pub mod error;
pub mod example;
pub mod export;
pub mod hub;
pub mod load;
pub mod parquet_io;
pub mod prompt;
pub mod split;
pub mod stats;
pub mod template;

pub use error::{DataError, Result};
pub use example::UpdateExample;
pub use load::{load_file, Dataset, LoadOptions, Row};
pub use template::{ChatMessage, ChatTemplate, Ending};

/// Loads every file behind `spec` (a path or a hub dataset id) into one dataset.
pub fn load(spec: &str, opts: LoadOptions) -> Result<Dataset> {
    let mut all = Dataset::default();
    for path in hub::resolve(spec)? {
        let ds = load_file(&path, opts)?;
        all.sources.extend(ds.sources);
        all.rows.extend(ds.rows);
        all.errors.extend(ds.errors);
    }
    Ok(all)
}
