//! `recode eval check-refs` end to end on real updates of the development file: the sandboxed
//! executor runs every reference with and without its update, and the verdicts must follow the
//! benchmark's published rules (harness doc §7–§8), not figures taken from this implementation.
//! Needs the eval virtualenv (`recode eval setup`, which `scripts/test.sh` runs first).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The development file, or `None` (the test is skipped, saying so).
fn dev_file() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::CODEUPDATEARENA.shared_or_skip(&checkout)
}

/// Writes the lines of the dev file `dev` whose update id is in `ids` to a temp file, in file
/// order; returns the file and its number of examples. Every id must be found.
fn subset(dev: &std::path::Path, dir: &std::path::Path, ids: &[&str]) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(dev).unwrap();
    let path = dir.join("subset.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    let (mut examples, mut found) = (0, 0);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if ids.contains(&v["update"]["update_id"].as_str().unwrap()) {
            examples += v["prog_syn_examples"].as_array().unwrap().len();
            found += 1;
            writeln!(f, "{line}").unwrap();
        }
    }
    assert_eq!(found, ids.len(), "not every update id is in the dev file");
    (path, examples)
}

fn check_refs(data: &std::path::Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_recode"))
        .args([
            "eval",
            "check-refs",
            "--bench",
            "codeupdatearena",
            "--json",
            "--data",
        ])
        .arg(data)
        .args(["--workers", "2"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-refs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("no JSON line")).unwrap()
}

const FRAGMENTED: [&str; 2] = [
    "[numpy.max]:[add-argument-default_value(s)]:[update-0]:[prog_syn-1]",
    "[sympy.symbols]:[modify-argument-data_type]:[update-0]:[prog_syn-1]",
];

#[test]
fn check_refs_follows_the_benchmark_rules_on_real_updates() {
    let Some(dev) = dev_file() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A rename in the stdlib, a supported-value change, and the two updates holding the doc's
    // fragmented examples (blank lines inside a test: they can never pass in paper mode).
    let ids = [
        "[math.cos]:[modify-function-name]:[update-0]",
        "[re.subn]:[modify-argument-supported_value(s)]:[update-0]",
        "[numpy.max]:[add-argument-default_value(s)]:[update-0]",
        "[sympy.symbols]:[modify-argument-data_type]:[update-0]",
    ];
    let (data, examples) = subset(&dev, dir.path(), &ids);

    let paper = check_refs(&data, &[]);
    assert_eq!(paper["total"], examples as u64, "{paper}");
    // Every reference fails without its update (the update is what the problem tests).
    assert_eq!(paper["fail_without_update"], examples as u64, "{paper}");
    // Paper mode: exactly the fragmented examples fail with the update, with a parse error
    // (indented tail) or `None()` (comment-only tail) as the doc describes.
    let failures = paper["failures"].as_array().unwrap();
    let mut failing: Vec<&str> = failures.iter().map(|f| f["id"].as_str().unwrap()).collect();
    failing.sort();
    assert_eq!(failing, FRAGMENTED.to_vec(), "{paper}");
    assert_eq!(paper["pass_with_update"], (examples - 2) as u64, "{paper}");
    for f in failures {
        assert_eq!(f["kind"], "fails_with_update", "{f}");
        let class = f["error_class"].as_str().unwrap();
        assert!(
            [
                "exception:SyntaxError",
                "exception:IndentationError",
                "exception:TypeError"
            ]
            .contains(&class),
            "unexpected error class {class}: {f}"
        );
    }
    let per_package = paper["per_package"].as_object().unwrap();
    assert_eq!(per_package.len(), 4, "{paper}");
    assert_eq!(
        per_package["math"]["pass_with_update"],
        per_package["math"]["total"]
    );

    // Fixed mode glues the fragments back: every reference passes with its update.
    let fixed = check_refs(&data, &["--fixed-fragments"]);
    assert_eq!(fixed["pass_with_update"], examples as u64, "{fixed}");
    assert_eq!(fixed["fail_without_update"], examples as u64, "{fixed}");
    assert!(fixed["failures"].as_array().unwrap().is_empty(), "{fixed}");
}

#[test]
fn check_refs_names_the_bad_line() {
    let Some(dev) = dev_file() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(dev).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(&path, format!("{first}\n{{\"update\": 3}}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recode"))
        .args(["eval", "check-refs", "--data"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl") && err.contains(":2"), "{err}");
}
