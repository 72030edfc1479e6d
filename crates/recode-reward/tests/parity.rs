//! Paper mode vs the independent Python reference (`python/reference/reward_paper.py`) on
//! thousands of completions generated from the real ReCode data set; agreement to 1e-12.

use recode_reward::{score, Mode};
use std::path::PathBuf;
use std::process::Command;

fn venv_python() -> PathBuf {
    let venv =
        std::env::var("RECODE_VENV").unwrap_or_else(|_| "/root/.cache/recode/venv-dev".into());
    let py = PathBuf::from(venv).join("bin/python");
    assert!(
        py.exists(),
        "{} not found: run scripts/setup.sh to create the dev venv (or set RECODE_VENV)",
        py.display()
    );
    py
}

#[test]
fn paper_mode_matches_python_reference() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The Python generator draws its cases from the ReCode training data in ../shared.
    if recode_data::datasets::RECODE_TRAIN
        .shared_or_skip(&root)
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("cases.jsonl");
    let n = std::env::var("RECODE_PARITY_N").unwrap_or_else(|_| "4000".into());
    let status = Command::new(venv_python())
        .arg(root.join("python/tests/test_reward_parity.py"))
        .args(["--out", out.to_str().unwrap(), "--n", &n])
        .status()
        .expect("run the Python reference");
    assert!(
        status.success(),
        "the Python case generator failed (see stderr above)"
    );
    let text = std::fs::read_to_string(&out).expect("read cases");
    let mut mismatches = Vec::new();
    let mut count = 0;
    let mut stats = [0usize; 3];
    for (line_no, line) in text.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        let completion = row["completion"].as_str().unwrap();
        let target = row["target"].as_str().unwrap();
        let r = &row["reference"];
        let got = score(completion, target, Mode::Paper);
        count += 1;
        stats[0] += usize::from(got.format > 0.0);
        stats[1] += usize::from(got.syntax_ok);
        stats[2] += usize::from(got.exact_match);
        let num = |k: &str| r[k].as_f64().unwrap();
        let flag = |k: &str| r[k].as_bool().unwrap();
        let ok = (num("format") - got.format).abs() <= 1e-12
            && (num("em_star") - got.em_star).abs() <= 1e-12
            && (num("es_star") - got.es_star).abs() <= 1e-12
            && (num("similarity") - got.similarity).abs() <= 1e-12
            && flag("has_code_block") == got.has_code_block
            && flag("syntax_ok") == got.syntax_ok
            && flag("exact_match") == got.exact_match;
        if !ok {
            mismatches.push(format!(
                "line {}: completion={completion:?}\ntarget={target:?}\nreference={r}\nrust={got:?}",
                line_no + 1
            ));
        }
    }
    eprintln!(
        "parity: {count} cases, format ok {}, syntax ok {}, exact {}, mismatches {}",
        stats[0],
        stats[1],
        stats[2],
        mismatches.len()
    );
    assert!(count >= 1000, "too few cases: {count}");
    // The generator must exercise every branch.
    assert!(stats.iter().all(|&s| s > 50 && s < count), "{stats:?}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first ones:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(5)].join("\n\n")
    );
}
