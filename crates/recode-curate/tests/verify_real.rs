//! `verify` on real releases (PyPI, as in CI; envs and wheels cached under the recode cache),
//! every snippet through the sandbox: the golden pairs of the design doc (snippets written
//! here, `tests/data/golden.jsonl`) get their verdicts, and the negative controls their reasons.
//! Needs root (the sandbox's namespaces), like recode-sandbox's own tests.

use std::path::Path;

use recode_curate::candidate::{read_jsonl, Candidate};
use recode_curate::verify::{row_hash, VerifyOptions};
use recode_curate::{verify, write_outputs};
use recode_venv::EnvManager;

fn opts() -> VerifyOptions {
    VerifyOptions {
        timeout_secs: 5.0,
        memory_bytes: 512 << 20,
        ..VerifyOptions::default()
    }
}

fn packaging(old_code: &str, new_code: &str, change_id: Option<&str>) -> Candidate {
    Candidate {
        dependency: "packaging".into(),
        new_version: "==22.0".into(),
        description: "The code demonstrates how to parse a version.".into(),
        update_info: "LegacyVersion has been removed.".into(),
        old_code: old_code.into(),
        new_code: new_code.into(),
        old_version: "==21.3".into(),
        change_id: change_id.map(str::to_string),
        model: None,
    }
}

const LEGACY_OLD: &str =
    "from packaging.version import LegacyVersion\nprint(LegacyVersion('2021-custom').public)\n";
const LEGACY_NEW: &str = "from packaging.version import Version\nprint(Version('1.0').public)\n";

#[test]
fn golden_pairs_get_their_verdicts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden.jsonl");
    let candidates: Vec<Candidate> = read_jsonl(&path).unwrap();
    let expected: Vec<serde_json::Value> = read_jsonl(&path).unwrap();
    let out = verify(&EnvManager::from_env(), &candidates, &opts(), &()).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&out.report).unwrap());
    for r in &out.rejects {
        eprintln!(
            "rejected {:?}: {} {}",
            r.candidate.change_id, r.reason, r.evidence
        );
    }
    assert!(out.rejects.is_empty(), "every golden pair is accepted");
    assert_eq!(out.rows.len(), candidates.len());
    for ((row, meta), want) in out.rows.iter().zip(&out.meta).zip(&expected) {
        let want = want["expected"].as_str().unwrap();
        assert!(
            meta.verdict.contains(want),
            "{:?}: {} is not {want}",
            meta.change_id,
            meta.verdict
        );
        assert_eq!(meta.row_hash, row_hash(row));
        assert!(row.new_version.as_deref().unwrap().starts_with("=="));
    }
    // The semver module functions still exist in 3.0.2: accepted for the warning they emit there.
    let parse = out
        .meta
        .iter()
        .find(|m| {
            m.change_id
                .as_deref()
                .is_some_and(|c| c.ends_with(":semver.parse"))
        })
        .unwrap();
    assert!(parse.runs["old@new"].starts_with("ok"), "{parse:?}");
    assert!(
        parse.runs["old@new new warnings"].contains("DeprecationWarning"),
        "{parse:?}"
    );
    // Output files: rows with exactly ReCode's six keys, in order.
    let dir = tempfile::tempdir().unwrap();
    write_outputs(dir.path(), &out).unwrap();
    let first = std::fs::read_to_string(dir.path().join("rows.jsonl")).unwrap();
    let line = first.lines().next().unwrap();
    let keys: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            .unwrap()
            .keys()
            .cloned()
            .collect();
    let order: Vec<usize> = recode_data::example::FIELDS
        .iter()
        .map(|f| line.find(&format!("\"{f}\"")).unwrap())
        .collect();
    assert_eq!(keys.len(), 6, "{line}");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "key order: {line}");
    for f in ["rows.meta.jsonl", "rejects.jsonl", "report.json"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
}

#[test]
fn negative_controls_are_rejected_with_their_reason() {
    let id = "packaging@21.3..22.0:removed:packaging.version.LegacyVersion";
    let cases: Vec<(&str, Candidate)> = vec![
        ("accepted", packaging(LEGACY_OLD, LEGACY_NEW, Some(id))),
        ("new_broken", packaging(LEGACY_NEW, LEGACY_OLD, None)),
        (
            "identical",
            packaging(LEGACY_OLD, &format!("{LEGACY_OLD}# same\n"), None),
        ),
        (
            "syntax",
            packaging(
                LEGACY_OLD,
                "from packaging.version import Version\nprint(Version('1.0'\n",
                None,
            ),
        ),
        (
            "timeout",
            packaging(
                "import packaging.version\nwhile True:\n    pass\n",
                LEGACY_NEW,
                None,
            ),
        ),
        // Unbounded allocation ends at the memory limit, rejected the same way.
        (
            "timeout",
            packaging(
                "import packaging.version\nx = []\nwhile True:\n    x.append(' ' * 10**7)\n",
                LEGACY_NEW,
                None,
            ),
        ),
        (
            "not_discriminating",
            packaging(
                "from packaging.version import Version\nprint(Version('1.0'))\n",
                "from packaging.version import Version\nprint(Version('1.0').public)\n",
                None,
            ),
        ),
        // Leaving before the last line is not having run: no completion marker.
        (
            "old_broken",
            packaging(
                &format!("import os\nos._exit(0)\n{LEGACY_NEW}"),
                LEGACY_NEW.replace("public", "base_version").as_str(),
                None,
            ),
        ),
        (
            "old_broken",
            packaging(
                &format!("import sys\nsys.exit(0)\n{LEGACY_OLD}"),
                LEGACY_NEW,
                None,
            ),
        ),
        (
            "off_target",
            packaging(
                LEGACY_NEW.replace("public", "release").as_str(),
                LEGACY_NEW,
                Some(id),
            ),
        ),
        ("duplicate", packaging(LEGACY_OLD, LEGACY_NEW, Some(id))),
    ];
    let candidates: Vec<Candidate> = cases.iter().map(|(_, c)| c.clone()).collect();
    let out = verify(&EnvManager::from_env(), &candidates, &opts(), &()).unwrap();
    for r in &out.rejects {
        eprintln!("{}: {}", r.reason, r.evidence);
    }
    assert_eq!(out.rows.len(), 1, "only the good pair: {:?}", out.meta);
    assert_eq!(out.rows[0].old_code.as_deref(), Some(LEGACY_OLD));
    assert_eq!(out.meta[0].verdict, "breaking");
    let mut got: Vec<(String, String)> = out
        .rejects
        .iter()
        .map(|r| {
            let i = candidates.iter().position(|c| *c == r.candidate).unwrap();
            (cases[i].0.to_string(), r.reason.clone())
        })
        .collect();
    // The duplicate is the same candidate as the accepted one: match it by reason.
    for (want, reason) in &mut got {
        if reason == "duplicate" {
            *want = "duplicate".into();
        }
    }
    for (want, reason) in &got {
        assert_eq!(want, reason);
    }
    assert_eq!(got.len(), cases.len() - 1);
    let timeouts: Vec<&str> = out
        .rejects
        .iter()
        .filter(|r| r.reason == "timeout")
        .map(|r| r.evidence.as_str())
        .collect();
    assert!(
        timeouts.iter().all(|e| e.starts_with("old@old")),
        "{timeouts:?}"
    );
    assert!(
        timeouts.iter().any(|e| e.contains("timeout"))
            && timeouts.iter().any(|e| e.contains("memory_limit")),
        "{timeouts:?}"
    );
    let exited = out
        .rejects
        .iter()
        .find(|r| r.candidate.old_code.contains("sys.exit"))
        .unwrap();
    assert!(
        exited.evidence.contains("SystemExit"),
        "{}",
        exited.evidence
    );
    assert_eq!(out.report.rejected["timeout"], 2);
    assert_eq!(out.report.accepted, 1);
}

#[test]
fn an_old_interpreter_runs_in_the_sandbox_with_python_pinned() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden.jsonl");
    let candidates: Vec<Candidate> = read_jsonl::<Candidate>(&path)
        .unwrap()
        .into_iter()
        .filter(|c| c.dependency == "packaging")
        .collect();
    assert_eq!(candidates.len(), 3);
    let opts = VerifyOptions {
        python: Some("3.7".into()),
        ..opts()
    };
    let out = verify(&EnvManager::from_env(), &candidates, &opts, &()).unwrap();
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert!(
        out.meta.iter().all(|m| m.python.starts_with("3.7.")),
        "{:?}",
        out.meta
    );
    assert!(out.report.pairs[0].python.starts_with("3.7."));
}
