//! `mine` on real releases from PyPI (network, as in CI; envs cached under the recode cache).

use std::time::Duration;

use recode_curate::{mine, ChangeKind, MineOptions};
use recode_venv::EnvManager;

fn opts(dist: &str, old: &str, new: &str) -> MineOptions {
    MineOptions {
        dist: dist.into(),
        old: old.into(),
        new: new.into(),
        modules: vec![],
        python: None,
        snapshot_timeout: Duration::from_secs(120),
    }
}

#[test]
fn packaging_21_3_to_22_0() {
    let (changes, report) =
        mine(&EnvManager::from_env(), &opts("packaging", "21.3", "22.0")).unwrap();
    for c in &changes {
        eprintln!("{}", c.id);
    }
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    let legacy = changes
        .iter()
        .find(|c| c.kind == ChangeKind::Removed && c.symbol == "packaging.version.LegacyVersion")
        .expect("LegacyVersion removed");
    assert_eq!(legacy.symbol_kind, "class");
    assert!(legacy
        .aliases
        .contains(&"packaging.specifiers.LegacyVersion".to_string()));
    let strip = changes
        .iter()
        .find(|c| c.param.as_deref() == Some("strip_trailing_zero"))
        .expect("strip_trailing_zero added");
    assert_eq!(strip.kind, ChangeKind::ParamAdded);
    assert_eq!(strip.symbol, "packaging.utils.canonicalize_version");
    assert!(strip
        .new_signature
        .as_deref()
        .unwrap()
        .contains("strip_trailing_zero: bool = True"));
    // Re-exports collapse: one change per canonical id and kind.
    let ids: std::collections::BTreeSet<_> = changes.iter().map(|c| &c.id).collect();
    assert_eq!(ids.len(), changes.len());
    // Members of the removed class are not listed one by one.
    assert!(!changes
        .iter()
        .any(|c| c.symbol.starts_with("packaging.version.LegacyVersion.")));
    assert!(
        report
            .filtered
            .get("member_of_removed_class")
            .copied()
            .unwrap_or(0)
            > 0
    );
}
