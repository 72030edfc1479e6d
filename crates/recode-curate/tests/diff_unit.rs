//! The diff engine on hand-written snapshots (offline): every change kind and every filter.

use recode_curate::diff::{diff, ChangeKind, DiffContext};
use recode_curate::snapshot::Snapshot;
use serde_json::json;

fn sym(id: &str, paths: &[&str], kind: &str, params: serde_json::Value) -> serde_json::Value {
    json!({"id": id, "paths": paths, "kind": kind, "signature": null, "params": params,
           "warnings": [], "owner": null, "exported": true})
}

fn p(name: &str, kind: &str, default: Option<&str>) -> serde_json::Value {
    json!({"name": name, "kind": kind, "has_default": default.is_some(), "default": default})
}

fn snapshot(symbols: Vec<serde_json::Value>) -> Snapshot {
    serde_json::from_value(json!({"top_level": ["lib"], "python": "3.11.7", "modules": {"lib": null}, "symbols": symbols})).unwrap()
}

fn ctx() -> DiffContext {
    DiffContext {
        dist: "lib".into(),
        old_version: "1.0".into(),
        new_version: "2.0".into(),
        python: "3.11.7".into(),
    }
}

#[test]
fn every_kind_and_filter() {
    let pk = "POSITIONAL_OR_KEYWORD";
    let mut member = sym(
        "lib.core:Gone.method",
        &["lib.Gone.method", "lib.core.Gone.method"],
        "method",
        json!([p("self", pk, None)]),
    );
    member["owner"] = json!("lib.core:Gone");
    let mut deprecated_new = sym("lib.core:old_api", &["lib.old_api"], "function", json!([]));
    deprecated_new["warnings"] = json!([{"category": "DeprecationWarning", "message": "old_api is deprecated", "in_library": true}]);
    let mut helper = sym(
        "lib._compat:iteritems",
        &["lib.core.iteritems"],
        "function",
        json!([p("d", pk, None)]),
    );
    helper["exported"] = json!(false);
    let old = snapshot(vec![
        // Removed, with a re-export that must collapse into it.
        sym(
            "lib.core:Gone",
            &["lib.Gone", "lib.core.Gone"],
            "class",
            json!([]),
        ),
        member,
        // Renamed by name similarity (case and underscores ignored).
        sym(
            "lib.core:resultcallback",
            &["lib.core.resultcallback"],
            "function",
            json!([p("f", pk, None)]),
        ),
        // An alias whose name disappears: a rename to the object's main path.
        sym(
            "lib.core:infixNotation",
            &["lib.infixNotation", "lib.operatorPrecedence"],
            "function",
            json!([p("base", pk, None)]),
        ),
        // Parameter changes.
        sym(
            "lib.core:f",
            &["lib.f"],
            "function",
            json!([
                p("a", pk, None),
                p("b", pk, Some("None")),
                p("old", "KEYWORD_ONLY", Some("1")),
                p("_Ctx__self", pk, None)
            ]),
        ),
        sym(
            "lib.core:g",
            &["lib.g"],
            "function",
            json!([p("x", pk, Some("1"))]),
        ),
        sym(
            "lib.core:wrapped",
            &["lib.wrapped"],
            "function",
            json!([
                p("args", "VAR_POSITIONAL", None),
                p("kwargs", "VAR_KEYWORD", None)
            ]),
        ),
        sym("lib.core:old_api", &["lib.old_api"], "function", json!([])),
        sym("lib.core:T", &["lib.T"], "typevar", json!(null)),
        helper,
    ]);
    let new = snapshot(vec![
        sym(
            "lib.core:result_callback",
            &["lib.core.result_callback"],
            "function",
            json!([p("f", pk, None)]),
        ),
        sym(
            "lib.helpers:infix_notation",
            &["lib.helpers.infix_notation", "lib.infixNotation"],
            "function",
            json!([p("base", pk, None)]),
        ),
        sym(
            "lib.core:f",
            &["lib.f"],
            "function",
            json!([
                p("a", pk, None),
                p("b", pk, None),
                p("new", "KEYWORD_ONLY", Some("1")),
                p("extra", "KEYWORD_ONLY", Some("True"))
            ]),
        ),
        sym(
            "lib.core:g",
            &["lib.g"],
            "function",
            json!([p("x", pk, Some("2"))]),
        ),
        sym(
            "lib.core:wrapped",
            &["lib.wrapped"],
            "function",
            json!([p("rrule", pk, None)]),
        ),
        deprecated_new,
        sym("lib.core:added", &["lib.added"], "function", json!([])),
        sym("lib.core:T", &["lib.T"], "typevar", json!(null)),
    ]);
    let (changes, filtered) = diff(&old, &new, &ctx());
    let got: Vec<String> = changes.iter().map(|c| c.id.clone()).collect();
    let want = [
        "lib@1.0..2.0:removed:lib.core.Gone",
        "lib@1.0..2.0:added:lib.added",
        "lib@1.0..2.0:renamed:lib.core.resultcallback>lib.core.result_callback",
        "lib@1.0..2.0:renamed:lib.operatorPrecedence>lib.helpers.infix_notation",
        "lib@1.0..2.0:param_added:lib.f:extra",
        "lib@1.0..2.0:param_renamed:lib.f:old>new",
        "lib@1.0..2.0:default_changed:lib.f:b",
        "lib@1.0..2.0:default_changed:lib.g:x",
        "lib@1.0..2.0:deprecated:lib.old_api",
    ];
    for w in want {
        assert!(got.contains(&w.to_string()), "missing {w} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let gone = changes
        .iter()
        .find(|c| c.kind == ChangeKind::Removed)
        .unwrap();
    assert_eq!(gone.aliases, vec!["lib.Gone".to_string()]);
    let dep = changes
        .iter()
        .find(|c| c.kind == ChangeKind::Deprecated)
        .unwrap();
    assert_eq!(dep.evidence.warnings[0].message, "old_api is deprecated");
    for f in [
        "typevar",
        "name_mangled_param",
        "member_of_removed_class",
        "private_helper",
        "opaque_signature",
    ] {
        assert!(
            filtered.get(f).copied().unwrap_or(0) > 0,
            "filter {f}: {filtered:?}"
        );
    }
}
