//! `recode reward score` end to end: one pair, JSONL input with both key shapes, `--mode`,
//! `--reward`, `--threads`, and errors naming file:line:field. Expected values come from the
//! `recode_reward` library, not literals.

use recode_reward::{Mode, RewardBreakdown, RewardKind};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_recode");

fn recode(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run recode")
}

fn rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "recode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Asserts one output row against the library's breakdown and total over `kinds`.
fn check(row: &serde_json::Value, index: usize, want: &RewardBreakdown, kinds: &[RewardKind]) {
    let f = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{k} in {row}"));
    assert_eq!(row["index"], index as u64, "{row}");
    assert_eq!(f("format"), want.format, "{row}");
    assert_eq!(f("em_star"), want.em_star, "{row}");
    assert_eq!(f("es_star"), want.es_star, "{row}");
    assert_eq!(f("similarity"), want.similarity, "{row}");
    assert_eq!(row["has_code_block"], want.has_code_block, "{row}");
    assert_eq!(row["syntax_ok"], want.syntax_ok, "{row}");
    assert_eq!(row["exact_match"], want.exact_match, "{row}");
    assert_eq!(f("total"), want.total_of(kinds), "{row}");
}

/// A well-formed completion whose answer is `code`.
fn answer_block(code: &str) -> String {
    format!(" plan</think>\n<answer>\n```python\n{code}\n```\n</answer>")
}

/// Varied pairs: exact, near, broken syntax, no block, bad format, a paper/fixed difference.
fn cases() -> Vec<(String, String)> {
    let target = "import jax.numpy as jnp\nx = jnp.unstack(a)";
    vec![
        (answer_block(target), target.to_string()),
        (
            answer_block("import jax.numpy as jnp\nx = jnp.split(a)"),
            target.to_string(),
        ),
        (answer_block("def f(:\n    pass"), target.to_string()),
        ("no code here".to_string(), target.to_string()),
        (
            format!("<think>nested</think>{}", answer_block(target)),
            target.to_string(),
        ),
        (
            answer_block("s = 'it''s'  # don't\ny = 2"),
            "s = 'it''s'\ny = 2".to_string(),
        ),
        (answer_block("x = 'é日本🙂'"), "x = 'é日本'".to_string()),
    ]
}

#[test]
fn one_pair_matches_the_library() {
    for (completion, target) in cases() {
        let out = recode(&[
            "reward",
            "score",
            "--completion",
            &completion,
            "--target",
            &target,
        ]);
        let got = rows(&out);
        assert_eq!(got.len(), 1);
        let want = recode_reward::score(&completion, &target, Mode::Paper);
        check(&got[0], 0, &want, &RewardKind::TRAINING);
    }
}

fn write_input(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pairs.jsonl");
    let mut text = String::new();
    for (i, (c, t)) in cases().iter().enumerate() {
        // Alternate the two key shapes, with a blank line in between that must be skipped.
        let row = if i % 2 == 0 {
            serde_json::json!({ "completion": c, "target": t, "extra": i })
        } else {
            serde_json::json!({ "solution_str": c, "ground_truth": t })
        };
        text.push_str(&row.to_string());
        text.push('\n');
        if i == 2 {
            text.push('\n');
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn jsonl_both_key_shapes_modes_rewards_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    let input = input.to_str().unwrap();
    let pairs = cases();
    let runs: [(&[&str], Mode, Vec<RewardKind>); 4] = [
        (&[], Mode::Paper, RewardKind::TRAINING.to_vec()),
        (
            &["--mode", "fixed"],
            Mode::Fixed,
            RewardKind::TRAINING.to_vec(),
        ),
        (
            &["--reward", "format,es_star", "--threads", "2"],
            Mode::Paper,
            RewardKind::parse_list("format,es_star").unwrap(),
        ),
        (
            &["--mode", "fixed", "--reward", "em_star", "--threads", "2"],
            Mode::Fixed,
            vec![RewardKind::EmStar],
        ),
    ];
    for (extra, mode, kinds) in runs {
        let mut args = vec!["reward", "score", "--input", input];
        args.extend_from_slice(extra);
        let out = recode(&args);
        let got = rows(&out);
        assert_eq!(got.len(), pairs.len(), "{extra:?}");
        for (i, ((c, t), row)) in pairs.iter().zip(&got).enumerate() {
            check(row, i, &recode_reward::score(c, t, mode), &kinds);
        }
        // Summary statistics on stderr for --input.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("scored {} rows", pairs.len())),
            "{err}"
        );
    }
    // The two modes really differ on this set (otherwise --mode would be untested).
    let differs = pairs.iter().any(|(c, t)| {
        recode_reward::score(c, t, Mode::Paper) != recode_reward::score(c, t, Mode::Fixed)
    });
    assert!(differs, "cases must include a paper/fixed difference");

    // --output writes the same rows to a file.
    let out_path = dir.path().join("out.jsonl");
    let out = recode(&[
        "reward",
        "score",
        "--input",
        input,
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(written.lines().count(), pairs.len());
}

#[test]
fn bad_lines_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::json!({ "completion": "x", "target": "y" }).to_string();
    let bad_rows = [
        (
            serde_json::json!({ "completion": "x" }).to_string(),
            "target",
        ),
        (
            serde_json::json!({ "solution_str": 3, "ground_truth": "y" }).to_string(),
            "solution_str",
        ),
        ("{not json".to_string(), "invalid JSON"),
    ];
    for (bad, field) in bad_rows {
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, format!("{good}\n{good}\n{bad}\n{good}\n")).unwrap();
        let out = recode(&["reward", "score", "--input", path.to_str().unwrap()]);
        assert!(!out.status.success(), "bad row {bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}:3", path.display());
        assert!(err.contains(&at), "{err} should name {at}");
        assert!(err.contains(field), "{err} should name {field}");
    }
    // Neither --input nor a pair; conflicting --input with --completion.
    assert!(!recode(&["reward", "score"]).status.success());
    let out = recode(&[
        "reward",
        "score",
        "--input",
        "x.jsonl",
        "--completion",
        "c",
        "--target",
        "t",
    ]);
    assert!(!out.status.success());
    // A missing file is an error naming it.
    let out = recode(&["reward", "score", "--input", "/nonexistent/p.jsonl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/p.jsonl"));
}

#[test]
fn old_code_adds_the_edit_score_and_edit_es_star_sums_it() {
    let old = "import jax.numpy as jnp\nx = jnp.split(a)";
    let target = "import jax.numpy as jnp\nx = jnp.unstack(a)";
    let completions = [
        answer_block(old),
        answer_block(target),
        answer_block("x = 1"),
        "none".to_string(),
    ];
    let edit = recode_reward::PreparedEdit::new(
        old,
        &recode_reward::PreparedTarget::new(target, Mode::Paper),
    );
    // One pair by flags: a copy of the old code is flagged and scored by its (empty) edit.
    let got = rows(&recode(&[
        "reward",
        "score",
        "--completion",
        &completions[0],
        "--target",
        target,
        "--old",
        old,
        "--reward",
        "format,edit_es_star",
    ]));
    let want = edit.score(&completions[0]);
    assert!(want.unchanged);
    assert_eq!(got[0]["unchanged"], true);
    assert_eq!(got[0]["edit_es_star"].as_f64(), Some(want.edit_es_star));
    let format = recode_reward::score(&completions[0], target, Mode::Paper).format;
    assert_eq!(got[0]["total"].as_f64(), Some(format + want.edit_es_star));

    // JSONL: rows with old_code get the edit fields, a row without it does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edits.jsonl");
    let mut text = String::new();
    for c in &completions {
        text.push_str(
            &serde_json::json!({ "completion": c, "target": target, "old_code": old }).to_string(),
        );
        text.push('\n');
    }
    text.push_str(&serde_json::json!({ "completion": "x", "target": target }).to_string());
    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    let out = recode(&["reward", "score", "--input", path.to_str().unwrap()]);
    let got = rows(&out);
    for (c, row) in completions.iter().zip(&got) {
        let want = edit.score(c);
        assert_eq!(
            row["edit_es_star"].as_f64(),
            Some(want.edit_es_star),
            "{row}"
        );
        assert_eq!(
            row["edit_similarity"].as_f64(),
            Some(want.similarity),
            "{row}"
        );
        assert_eq!(row["unchanged"], want.unchanged, "{row}");
    }
    assert!(got[4].get("edit_es_star").is_none(), "{}", got[4]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rows with old_code 4"), "{err}");
    assert!(
        err.contains("unchanged (copy of the old code) 25.0%"),
        "{err}"
    );

    // Summing edit_es_star needs the old code on every row: the error names the line.
    let out = recode(&[
        "reward",
        "score",
        "--input",
        path.to_str().unwrap(),
        "--reward",
        "edit_es_star",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:5", path.display());
    assert!(err.contains(&at) && err.contains("old_code"), "{err}");
}
