//! The public data sets recode's defaults use, and where they are found on this machine.
//!
//! The order is `scripts/resolve-data.sh`'s (the scripts run it before anything is built; a
//! unit test keeps the two tables equal):
//! 1. the data set's variable (`RECODE_DATA`, `RECODE_ARENA`);
//! 2. its copy under `$RECODE_SHARED`, else `../shared` beside the checkout (`data/…`);
//! 3. the copy the scripts downloaded into `$RECODE_CACHE/data/<hub id>/` (default
//!    `~/.cache/recode`);
//! 4. its Hugging Face hub id, downloaded once into the hub cache by [`crate::hub::resolve`].
//!
//! Tests use only (2), through [`shared_or_skip`]: their expectations are about those exact
//! files, so a test whose data set is absent says which one and is skipped. [`GITCHAMELEON`]
//! is read only from a local copy.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// One public data set: its names and homes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSet {
    /// Its name in `scripts/resolve-data.sh` (`recode`, `arena`).
    pub name: &'static str,
    /// What it is, for messages.
    pub what: &'static str,
    /// The environment variable that points at a local copy.
    pub var: &'static str,
    /// Its file under the shared folder's `data/`.
    pub shared: &'static str,
    /// Its Hugging Face dataset id.
    pub hub_id: &'static str,
    /// The data file in that dataset (the one `scripts/resolve-data.sh` downloads).
    pub hub_file: &'static str,
}

/// ReCode's training data (`api_update.jsonl`; MIT).
pub const RECODE_TRAIN: DataSet = DataSet {
    name: "recode",
    what: "ReCode training data",
    var: "RECODE_DATA",
    shared: "recode/api_update.jsonl",
    hub_id: "zjunlp/ReCode-Train-Data",
    hub_file: "recode-train-data.jsonl",
};

/// CodeUpdateArena (MIT): the development part under `../shared`, the whole benchmark (one
/// example a line) on the hub.
pub const CODEUPDATEARENA: DataSet = DataSet {
    name: "arena",
    what: "CodeUpdateArena",
    var: "RECODE_ARENA",
    shared: "codeupdatearena/arena-dev.jsonl",
    hub_id: "leo-liuzy/CodeUpdateArena",
    hub_file: "arena-ungrouped.jsonl",
};

/// Every data set above.
pub const ALL: [DataSet; 2] = [RECODE_TRAIN, CODEUPDATEARENA];

/// A data set read only from a local copy (no variable of its own, no download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDataSet {
    /// What it is, for messages.
    pub what: &'static str,
    /// Its file or folder under the shared folder's `data/`.
    pub shared: &'static str,
}

/// GitChameleon 2.0 (Apache-2.0): a folder (`dataset.jsonl`, tests), which `recode gitchameleon`
/// takes as `--data DIR`.
pub const GITCHAMELEON: LocalDataSet = LocalDataSet {
    what: "GitChameleon 2.0",
    shared: "gitchameleon",
};

impl LocalDataSet {
    /// For tests: as [`DataSet::shared_or_skip`].
    pub fn shared_or_skip(&self, checkout: &Path) -> Option<PathBuf> {
        shared_or_skip(checkout, self.shared, self.what)
    }
}

/// `data/<rel>` under the shared folder (see [`shared_dir`]) when present; else `None` after
/// printing, past the test harness's capture, that the running test is skipped for want of
/// `what`. Under `CI=true` a missing copy fails the test instead: CI always has `../shared`.
pub fn shared_or_skip(checkout: &Path, rel: &str, what: &str) -> Option<PathBuf> {
    let path = shared_dir(checkout).join("data").join(rel);
    if path.exists() {
        return Some(path);
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let why = format!(
        "{test} needs {what} ({} absent: place ../shared beside the checkout or set \
         RECODE_SHARED; README, section Data)",
        path.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
    None
}

/// The shared folder: `$RECODE_SHARED`, else `../shared` beside `checkout`.
pub fn shared_dir(checkout: &Path) -> PathBuf {
    std::env::var_os("RECODE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| checkout.join("../shared"))
}

impl DataSet {
    /// Its copy in the shared folder (see [`shared_dir`]), whether present or not.
    pub fn shared_path(&self, checkout: &Path) -> PathBuf {
        shared_dir(checkout).join("data").join(self.shared)
    }

    /// What a default stands for, in the order of the module docs: a local file, or the hub id
    /// ([`crate::hub::resolve`] and [`crate::load()`] accept both). A variable naming a missing
    /// file is an error, never a silent fallback.
    pub fn default_spec(&self, checkout: &Path) -> Result<String> {
        if let Some(given) = std::env::var_os(self.var) {
            let path = PathBuf::from(&given);
            return if path.is_file() {
                Ok(path.to_string_lossy().into_owned())
            } else {
                Err(DataError::MissingDataFile {
                    var: self.var,
                    path,
                    what: self.what,
                })
            };
        }
        let cache = std::env::var_os("RECODE_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/recode")))
            .map(|c| c.join("data").join(self.hub_id).join(self.hub_file));
        let local = [Some(self.shared_path(checkout)), cache];
        Ok(local
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.hub_id.to_string()))
    }

    /// The local file a default stands for ([`Self::default_spec`], a hub id fetched once).
    pub fn default_file(&self, checkout: &Path) -> Result<PathBuf> {
        let spec = self.default_spec(checkout)?;
        let mut files = crate::hub::resolve(&spec).map_err(|e| DataError::DefaultUnreachable {
            what: self.what,
            var: self.var,
            source: Box::new(e),
        })?;
        files.truncate(1);
        files.pop().ok_or_else(|| DataError::DefaultEmpty {
            what: self.what,
            spec,
        })
    }

    /// For tests: its copy in the shared folder, or `None` once the running test has said it is
    /// skipped and which data set it needs (see [`shared_or_skip`]).
    pub fn shared_or_skip(&self, checkout: &Path) -> Option<PathBuf> {
        shared_or_skip(checkout, self.shared, self.what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts' table, which resolves the same data sets before anything is built.
    const SCRIPT: &str = include_str!("../../../scripts/resolve-data.sh");

    #[test]
    fn the_scripts_resolve_the_same_data_sets() {
        for ds in ALL {
            let first = format!(
                "ds_var={} ds_what=\"{}\" ds_shared={}",
                ds.var, ds.what, ds.shared
            );
            let second = format!("ds_hub_id={} ds_hub_file={}", ds.hub_id, ds.hub_file);
            let case = format!("\n    {})\n      {first}\n      {second} ;;", ds.name);
            assert!(
                SCRIPT.contains(&case),
                "scripts/resolve-data.sh lacks:{case}"
            );
        }
    }

    #[test]
    fn a_variable_naming_a_missing_file_is_an_error() {
        // RECODE_DATA is not set while the unit tests run; a private variable stands in.
        let ds = DataSet {
            var: "RECODE_TEST_DATASETS_MISSING",
            ..RECODE_TRAIN
        };
        std::env::set_var(ds.var, "/surely/not/here.jsonl");
        let e = ds.default_spec(Path::new(".")).unwrap_err().to_string();
        assert!(
            e.contains("RECODE_TEST_DATASETS_MISSING=/surely/not/here.jsonl"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.jsonl");
        std::fs::write(&file, "{}\n").unwrap();
        std::env::set_var(ds.var, &file);
        assert_eq!(ds.default_spec(dir.path()).unwrap(), file.to_string_lossy());
        std::env::remove_var(ds.var);
        // Nothing local (a checkout with no shared folder, an empty cache): the hub id.
        let ds = DataSet {
            hub_file: "surely-not-cached.jsonl",
            ..ds
        };
        if std::env::var_os("RECODE_SHARED").is_none() {
            assert_eq!(ds.default_spec(dir.path()).unwrap(), ds.hub_id);
        }
    }
}
