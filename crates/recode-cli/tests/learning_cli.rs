//! The learning run's CLI pieces: `recode data split --test` (three parts and a manifest,
//! written once) and `recode report results` (the Markdown page from artifacts, missing stages
//! shown as not run).

mod common;

use common::{ok, recode};

fn row(lib: &str, i: usize) -> String {
    serde_json::json!({
        "dependency": lib, "new_version": "==2.0.0", "description": "d",
        "update_info": "f was renamed to g", "old_code": format!("x = f({i})"),
        "new_code": format!("x = g({i})"),
    })
    .to_string()
}

#[test]
fn split_with_test_part_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data.jsonl");
    let text: String = (0..30)
        .map(|i| row("numpy", i) + "\n")
        .chain((0..20).map(|i| row("pandas", i) + "\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("split");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let args = ["data", "split", i, "--val", "0.1", "--test", "0.2", "-o", o];
    let first = String::from_utf8(ok(&args).stdout).unwrap();
    assert!(first.contains("written"), "{first}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let rows: Vec<u64> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .collect();
    // numpy 30: 3 val, 6 test; pandas 20: 2 val, 4 test.
    assert_eq!(rows, [35, 5, 10]);
    for part in ["train", "val", "test"] {
        assert!(out.join(format!("data.{part}.jsonl")).is_file());
    }
    // Again with the same arguments: unchanged; with another seed: refused.
    let again = String::from_utf8(ok(&args).stdout).unwrap();
    assert!(again.contains("unchanged"), "{again}");
    let other = recode(&[&args[..], &["--seed", "7"]].concat());
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("different content"), "{err}");
}

#[test]
fn report_results_writes_a_page_with_missing_stages() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("results");
    std::fs::create_dir_all(&res).unwrap();
    let page = dir.path().join("docs/results.md");
    ok(&[
        "report",
        "results",
        res.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(&page).unwrap();
    assert!(md.contains("| SFT | not run yet |"), "{md}");
    let missing = recode(&["report", "results", "/nonexistent/results"]);
    assert!(!missing.status.success());
}

/// `docs/results.md` is what `recode report results results/learning` makes of the committed
/// artifacts: nobody edits a number by hand, and a new stage's artifacts come with the page.
#[test]
fn committed_results_page_regenerates_from_committed_artifacts() {
    let root = common::checkout();
    let committed = root.join("docs/results.md");
    let committed = std::fs::read_to_string(&committed)
        .unwrap_or_else(|e| panic!("{}: {e}", committed.display()));
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("results.md");
    let out = std::process::Command::new(common::BIN)
        .current_dir(&root)
        .args(["report", "results", "results/learning", "-o"])
        .arg(&fresh)
        .output()
        .expect("run recode");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        page == committed,
        "docs/results.md differs from `recode report results results/learning`: regenerate it \
         with `recode report results results/learning -o docs/results.md`"
    );
}
