//! `recode report results`: the learning run's Markdown page, built from fixture artifacts
//! written here (not real results), its numbers checked by hand.

use std::path::Path;

use recode_report::results::{results_markdown, TestScores};
use serde_json::json;

fn write_lines(path: &Path, lines: &[serde_json::Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A validation record of `recode sft`/`train` (what eval-test commits per model).
fn validation(index: usize, es: f64, edit: f64, exact: bool, truncated: bool) -> serde_json::Value {
    json!({
        "index": index,
        "completion": "…",
        "completion_tokens": 10,
        "truncated": truncated,
        "reward_components": {"format": 1.0, "es_star": es, "edit_es_star": edit},
        "indicators": {"format_ok": 1.0, "syntax_ok": 1.0,
                       "exact_match": if exact { 1.0 } else { 0.0 }, "unchanged": 0.0},
    })
}

/// A `recode reward score` row (the copy baseline).
fn reward_row(index: usize, es: f64) -> serde_json::Value {
    json!({"index": index, "es_star": es, "edit_es_star": -1.5, "exact_match": false,
           "format": 1.0, "has_code_block": true, "syntax_ok": true, "unchanged": true})
}

/// The line of the table whose first cell is `label` under the heading starting with `section`.
fn row<'a>(md: &'a str, section: &str, label: &str, against: Option<&str>) -> &'a str {
    let at = md
        .find(section)
        .unwrap_or_else(|| panic!("no section {section}"));
    md[at..]
        .lines()
        .find(|l| {
            l.starts_with(&format!("| {label} |"))
                && against.is_none_or(|a| l.contains(&format!("| {a} |")))
        })
        .unwrap_or_else(|| panic!("no row {label} {against:?} in\n{md}"))
}

/// The `[low, high]` after `mean` in `cell` text, as numbers.
fn interval_after(line: &str, mean: &str) -> (f64, f64) {
    let at = line
        .find(mean)
        .unwrap_or_else(|| panic!("{mean} not in {line}"))
        + mean.len();
    let rest = line[at..].trim_start();
    let inner = &rest[1..rest.find(']').unwrap()];
    let (a, b) = inner.split_once(',').unwrap();
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

#[test]
fn results_page_from_fixture_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Ten test prompts. SFT: exact on prompts 0 and 1 only; GRPO: exact on 0, 2..=9 (gains 8
    // on 2..=9, loses prompt 1) -> McNemar b = 8, c = 1: p = 2 · (1 + 9) / 512.
    let sft: Vec<_> = (0..10)
        .map(|i| validation(i, 0.5, 0.0, i < 2, i == 9))
        .collect();
    let grpo: Vec<_> = (0..10)
        .map(|i| validation(i, 0.5 + 0.05 * i as f64, 0.1, i != 1, false))
        .collect();
    // Records out of order are paired by index.
    let mut grpo_shuffled = grpo.clone();
    grpo_shuffled.reverse();
    let copy: Vec<_> = (0..10).map(|i| reward_row(i, 0.8)).collect();
    write_lines(&d.join("test/sft.jsonl"), &sft);
    write_lines(&d.join("test/grpo-after-sft.jsonl"), &grpo_shuffled);
    write_lines(&d.join("test/copy.jsonl"), &copy);
    std::fs::write(
        d.join("split.json"),
        json!({"input": "clean.jsonl", "input_rows": 100, "seed": 42, "val": 0.05, "test": 0.1,
               "files": [{"part": "test", "file": "clean.test.jsonl", "rows": 10,
                          "sha256": "ab".repeat(32)}]})
        .to_string(),
    )
    .unwrap();
    write_lines(
        &d.join("arena/base/results.jsonl"),
        &(0..4)
            .map(|i| json!({"id": format!("p{i}"), "sample": 0, "with_update": {"passed": i == 0}}))
            .collect::<Vec<_>>(),
    );
    write_lines(
        &d.join("arena/sft/results.jsonl"),
        &(0..4)
            .map(|i| json!({"id": format!("p{i}"), "sample": 0, "with_update": {"passed": i < 3}}))
            .collect::<Vec<_>>(),
    );
    std::fs::create_dir_all(d.join("stages")).unwrap();
    std::fs::write(
        d.join("stages/sft.json"),
        json!({"stage": "sft", "expected_seconds": 3600, "wall_seconds": 3540.0,
               "finished_utc": "2026-12-06T12:00:00Z",
               "commands": ["recode sft --data train.jsonl --set max_steps=300"]})
        .to_string(),
    )
    .unwrap();

    // SFT's steps: one of them was stopped for 1000 s; the median ignores it.
    std::fs::create_dir_all(d.join("runs/sft")).unwrap();
    write_lines(
        &d.join("runs/sft/metrics.jsonl"),
        &[5.0, 6.0, 1000.0, 7.0]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut r = json!({"step": i + 1, "loss": 1.0, "step_s": s});
                if i == 3 {
                    r["validation"] = json!({"num_prompts": 72,
                        "reward_components": {"es_star": 0.8, "format": 1.0},
                        "indicators": {"exact_match": 0.25, "format_ok": 1.0, "unchanged": 0.5}});
                }
                r
            })
            .collect::<Vec<_>>(),
    );

    // GRPO's steps time their phases: 10 + 1 + 20 = 31 s and 12 + 1 + 20 = 33 s.
    std::fs::create_dir_all(d.join("runs/grpo-after-sft")).unwrap();
    write_lines(
        &d.join("runs/grpo-after-sft/metrics.jsonl"),
        &[10.0, 12.0]
            .iter()
            .enumerate()
            .map(|(i, g)| {
                json!({"step": i + 1, "loss": 0.0,
                       "timing": {"generate_s": g, "score_s": 1.0, "learn_s": 20.0, "tokens_per_s": 99.0}})
            })
            .collect::<Vec<_>>(),
    );
    std::fs::write(
        d.join("stages/grpo.json"),
        json!({"stage": "grpo", "expected_seconds": 100, "wall_seconds": 70, "partial": false})
            .to_string(),
    )
    .unwrap();

    std::fs::write(
        d.join("stages/eval-test.json"),
        json!({"stage": "eval-test", "expected_seconds": 100, "wall_seconds": 50, "partial": true})
            .to_string(),
    )
    .unwrap();

    let scores = TestScores::load(&d.join("test/grpo-after-sft.jsonl")).unwrap();
    assert_eq!(scores.index, (0..10).collect::<Vec<u64>>());

    let md = results_markdown(d).unwrap();
    // Test table: means and counts by hand.
    let s = row(&md, "## Test split", "SFT", None);
    assert!(
        s.contains("| 10 | 0.5000 | 2/10 (20.0%) | 0.0000 | 100.0% | 10.0% |"),
        "{s}"
    );
    let g = row(&md, "## Test split", "GRPO after SFT", None);
    // ES* mean 0.5 + 0.05 · 4.5 = 0.725.
    assert!(g.contains("| 0.7250 | 9/10 (90.0%) | 0.1000 |"), "{g}");
    let c = row(&md, "## Test split", "copy the old code", None);
    assert!(c.contains("| 0.8000 | 0/10 (0.0%) | -1.5000 |"), "{c}");
    assert!(row(&md, "## Test split", "base (no training)", None).contains("not run yet"));
    assert!(row(&md, "## Test split", "DAPO after SFT", None).contains("not run yet"));

    // Paired: GRPO vs SFT, ΔES* +0.225 inside its interval, McNemar on (8, 1).
    let p = row(&md, "### Paired", "GRPO after SFT", Some("SFT"));
    let (lo, hi) = interval_after(p, "+0.2250");
    assert!(lo <= 0.225 && 0.225 <= hi && lo < hi, "{p}");
    assert!(lo > 0.0, "every difference is ≥ 0: {p}");
    assert!(p.contains("| +8 / −1 |"), "{p}");
    let mcnemar = 2.0 * (1.0 + 9.0) / 512.0;
    assert!(p.contains(&format!("| {mcnemar:.4} |")), "{p}");
    // Against copying: ΔES* 0.725 − 0.8 and Δedit 0.1 − (−1.5), both in their intervals.
    let p = row(
        &md,
        "### Paired",
        "GRPO after SFT",
        Some("copy the old code"),
    );
    let (lo, hi) = interval_after(p, "-0.0750");
    assert!(lo <= -0.075 && -0.075 <= hi, "{p}");
    let (lo, hi) = interval_after(p, "+1.6000");
    assert_eq!(
        (lo, hi),
        (1.6, 1.6),
        "a constant difference has a zero-width interval"
    );
    assert!(p.contains("| +9 / −0 |"), "{p}");
    // 9 gains, no loss: 2 · (1/2)^9.
    assert!(p.contains(&format!("| {:.4} |", 2.0 / 512.0)), "{p}");
    assert!(row(&md, "### Paired", "DAPO after SFT", Some("SFT")).contains("not run yet"));
    // Verdict, from the same comparisons: GRPO gains exact matches against both (p 0.039 and
    // 0.0039 < 0.05) but its ES* is below copying's (−0.075), so it beats both only there.
    assert!(
        md.contains(
            "**Aim:** on ES\\*, no RL run beats both SFT and copying; on edit_es_star, GRPO \
             after SFT beats both; on exact match, GRPO after SFT beats both."
        ),
        "{md}"
    );
    assert!(
        md.contains("- **GRPO after SFT** vs SFT: ES\\* higher (+0.2250 ["),
        "{md}"
    );

    // Arena: base 1/4 = 25%, SFT 3/4 = 75%, +50 points against base.
    let a = row(&md, "## CodeUpdateArena", "SFT", None);
    let (lo, hi) = interval_after(a, "75.0");
    assert!(lo <= 75.0 && 75.0 <= hi, "{a}");
    let (lo, hi) = interval_after(a, "+50.0");
    assert!(lo <= 50.0 && 50.0 <= hi, "{a}");
    assert!(row(&md, "## CodeUpdateArena", "base", None).contains("| 4 | 25.0 ["));
    assert!(row(&md, "## CodeUpdateArena", "best RL", None).contains("not run yet"));

    // Split hashes, stage times, commands; missing stages say so.
    assert!(md.contains(&format!(
        "| test | `clean.test.jsonl` | 10 | `{}` |",
        "ab".repeat(32)
    )));
    // Validation: SFT's step 4, no edit score; DAPO not run.
    assert!(
        md.contains("| sft | 4 | 0.8000 | 25.0% | – | 100.0% | 50.0% |"),
        "{md}"
    );
    assert!(md.contains("| dapo-after-sft | not run yet |"), "{md}");
    // Training time: 4 steps × median (6 + 7) / 2.
    assert!(
        row(&md, "## Stages", "sft", None).contains("| 60 min | 59 min | 26 s (4 × 6.5 s) |"),
        "{md}"
    );
    assert!(
        row(&md, "## Stages", "grpo", None).contains("| 70 s | 64 s (2 × 32.0 s) |"),
        "{md}"
    );
    assert!(row(&md, "## Stages", "dapo", None).contains("not run yet"));
    assert!(!row(&md, "## Stages", "grpo", None).contains("partial"));
    assert!(
        row(&md, "## Stages", "eval-test", None)
            .contains("| 50 s (partial: a model was not run yet) |"),
        "{md}"
    );
    assert!(md.contains("recode sft --data train.jsonl --set max_steps=300"));
    // The same artifacts give the same page (seeded bootstrap).
    assert_eq!(md, results_markdown(d).unwrap());
}

#[test]
fn empty_directory_gives_a_page_of_missing_stages() {
    let dir = tempfile::tempdir().unwrap();
    let md = results_markdown(dir.path()).unwrap();
    assert!(md.contains("## Split\n\nnot run yet"));
    assert!(row(&md, "## Test split", "SFT", None).contains("not run yet"));
    assert!(row(&md, "## Stages", "eval-test", None).contains("not run yet"));
}
