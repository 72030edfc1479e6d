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
        sdist: false,
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

#[test]
fn every_doc_pair_yields_three_changes_and_click_has_changelog_evidence() {
    let mgr = EnvManager::from_env();
    for (dist, old, new) in [
        ("packaging", "21.3", "22.0"),
        ("jinja2", "3.0.3", "3.1.4"),
        ("semver", "2.13.0", "3.0.2"),
        ("click", "7.1.2", "8.1.7"),
        ("pyparsing", "2.4.7", "3.1.2"),
        ("markdown", "3.3.7", "3.4.1"),
    ] {
        let mut o = opts(dist, old, new);
        o.sdist = dist == "click";
        let (changes, report) = mine(&mgr, &o).unwrap();
        eprintln!(
            "{dist} {old} -> {new}: {} changes {:?} ({:.1} s)",
            changes.len(),
            report.changes_by_kind,
            report.seconds_total
        );
        assert!(changes.len() >= 3, "{dist}: {changes:#?}");
        if dist == "click" {
            let by_id = |id: &str| {
                changes
                    .iter()
                    .find(|c| c.id == id)
                    .unwrap_or_else(|| panic!("{id}"))
            };
            let gone = by_id("click@7.1.2..8.1.7:removed:click.termui.get_terminal_size");
            assert!(
                gone.evidence
                    .changelog
                    .iter()
                    .any(|l| l.contains("``get_terminal_size`` is removed")),
                "{gone:#?}"
            );
            let renamed = by_id("click@7.1.2..8.1.7:renamed:click.core.MultiCommand.resultcallback>click.core.MultiCommand.result_callback");
            assert!(
                renamed
                    .evidence
                    .changelog
                    .iter()
                    .any(|l| l.contains("renamed to ``result_callback``")),
                "{renamed:#?}"
            );
            assert!(
                report
                    .changelog_files
                    .iter()
                    .any(|f| f.ends_with("CHANGES.rst")),
                "{report:?}"
            );
        }
        if dist == "pyparsing" {
            assert!(changes.iter().any(|c| c.id == "pyparsing@2.4.7..3.1.2:renamed:pyparsing.operatorPrecedence>pyparsing.helpers.infix_notation"));
            assert!(
                report
                    .import_errors
                    .keys()
                    .any(|k| k == "new:pyparsing.diagram"),
                "optional railroad recorded: {report:?}"
            );
        }
    }
}

#[test]
fn a_version_that_does_not_exist_fails_fast_and_names_it() {
    let t = std::time::Instant::now();
    let err = mine(
        &EnvManager::from_env(),
        &opts("packaging", "21.3", "99.0.1"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, recode_curate::CurateError::NoSuchVersion { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("packaging 99.0.1 is not on the package index"),
        "{msg}"
    );
    assert!(
        msg.contains("for Python 3.") && msg.contains(", …"),
        "lists the versions that exist: {msg}"
    );
    assert!(
        t.elapsed().as_secs() < 60,
        "no interpreter-by-interpreter attempts: {:?}",
        t.elapsed()
    );
}

#[test]
fn module_option_restricts_the_snapshot_and_a_typo_is_an_error() {
    let mgr = EnvManager::from_env();
    let mut o = opts("packaging", "21.3", "22.0");
    o.modules = vec!["packaging.version".into()];
    let (changes, _) = mine(&mgr, &o).unwrap();
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["packaging@21.3..22.0:removed:packaging.version.LegacyVersion"]
    );
    o.modules = vec!["packaging.versoin".into()];
    let msg = mine(&mgr, &o).unwrap_err().to_string();
    assert!(
        msg.contains("--module packaging.versoin imports in neither version"),
        "{msg}"
    );
}
