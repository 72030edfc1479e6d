//! The `UpdateExample` record: one API migration (old code → new code) with its update note.

use serde::{Deserialize, Serialize};

/// The columns of a ReCode training row, in file order.
pub const FIELDS: [&str; 6] = [
    "dependency",
    "new_version",
    "description",
    "update_info",
    "old_code",
    "new_code",
];

/// One API-update example as stored in ReCode's JSONL (`zjunlp/ReCode-Train-Data`).
///
/// Every field may be `null` in real data (e.g. 21 rows have no `update_info`), so all are
/// optional here; [`crate::clean`] decides which absences disqualify a row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct UpdateExample {
    /// Library name as written in the data (`PyTorch`, `pandas`, `Seaborn`, …).
    pub dependency: Option<String>,
    /// Version that introduced the update, usually `==X.Y.Z`.
    pub new_version: Option<String>,
    /// What the code does (not used in the prompt).
    pub description: Option<String>,
    /// The update note shown to the model inside `<doc>`.
    pub update_info: Option<String>,
    /// Code written against the old API (prompt input).
    pub old_code: Option<String>,
    /// Code migrated to the new API (reward target).
    pub new_code: Option<String>,
}

impl UpdateExample {
    /// The value of a column by name (`None` for null or unknown columns).
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "dependency" => self.dependency.as_deref(),
            "new_version" => self.new_version.as_deref(),
            "description" => self.description.as_deref(),
            "update_info" => self.update_info.as_deref(),
            "old_code" => self.old_code.as_deref(),
            "new_code" => self.new_code.as_deref(),
            _ => None,
        }
    }

    /// Mutable access to a column by name (`None` for unknown columns).
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "dependency" => Some(&mut self.dependency),
            "new_version" => Some(&mut self.new_version),
            "description" => Some(&mut self.description),
            "update_info" => Some(&mut self.update_info),
            "old_code" => Some(&mut self.old_code),
            "new_code" => Some(&mut self.new_code),
            _ => None,
        }
    }

    /// The version without its `==` prefix (`==0.4.38` → `0.4.38`; `2.0.0` stays).
    pub fn version(&self) -> Option<&str> {
        self.new_version.as_deref().map(canonical_version)
    }
}

/// Canonical form of a version string: surrounding whitespace and a leading `==` removed.
///
/// The published prompt code drops two characters blindly, which turns `0.4.38` into `4.38`
/// for the 96 rows written without `==`; recode strips the operator only when present.
pub fn canonical_version(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix("==").map(str::trim).unwrap_or(v)
}

/// Key under which spellings of one library are grouped (`Seaborn`/`seaborn` → `seaborn`).
pub fn dependency_key(name: &str) -> String {
    name.trim().to_lowercase()
}
