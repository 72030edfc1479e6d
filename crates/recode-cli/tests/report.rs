//! `recode report`: training curves from metrics.jsonl (RL and SFT shapes) and evaluation
//! comparisons, checked on data the tests generate.

use std::collections::BTreeMap;
mod common;

use std::path::Path;

use common::{ok, recode};

use recode_eval::run::{GroupScores, Summary};
use recode_report::fmt_value;
use recode_rl::advantage::FilterStats;
use recode_rl::sft::SftMetrics;
use recode_rl::trainer::{RolloutMetrics, StepTiming};
use recode_rl::{StepMetrics, ValidationMetrics};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The chart (its `<figure>` and `<svg>`) whose aria-label is `title`.
fn chart<'a>(html: &'a str, title: &str) -> &'a str {
    let start = html
        .find(&format!("aria-label=\"{title}\""))
        .unwrap_or_else(|| panic!("no chart {title:?}"));
    let end = start + html[start..].find("</svg>").unwrap();
    &html[start..end]
}

/// The colour `series` is drawn in: the fill of its legend swatch (the `<rect>` just before
/// the legend's `<text>` naming it).
fn series_color<'a>(svg: &'a str, series: &str) -> &'a str {
    let name = format!(">\n{series}\n</text>");
    let swatch = svg
        .match_indices(&name)
        .filter_map(|(at, _)| {
            let text = svg[..at].rfind("<text")?;
            let rect = svg[..text].rfind("<rect")?;
            svg[rect..text]
                .ends_with("/>\n")
                .then_some(&svg[rect..text])
        })
        .find(|r| !r.contains("<text"))
        .unwrap_or_else(|| panic!("no legend entry {series:?}"));
    let fill = swatch.find("fill=\"").unwrap() + "fill=\"".len();
    &swatch[fill..fill + 7]
}

/// Number of points of the polyline of `series` in `svg` (data lines are 2 px wide).
fn polyline_points(svg: &str, series: &str) -> usize {
    let key = format!(
        "stroke=\"{}\" stroke-width=\"2\" points=\"",
        series_color(svg, series)
    );
    let at = svg
        .find(&key)
        .unwrap_or_else(|| panic!("no polyline {series:?}"));
    let pts = &svg[at + key.len()..];
    pts[..pts.find('"').unwrap()].split_whitespace().count()
}

fn validation(step: u64) -> ValidationMetrics {
    let x = step as f64;
    ValidationMetrics {
        num_prompts: 8,
        reward_components: BTreeMap::from([
            ("format".into(), (0.2 + 0.07 * x).min(1.0)),
            ("es_star".into(), 0.3 + 0.02 * x),
        ]),
        indicators: BTreeMap::from([
            ("format_ok".into(), (0.1 * x).min(1.0)),
            ("exact_match".into(), 0.01 * x * x),
        ]),
        completion_len_mean: 100.0 - x,
        samples: vec![],
    }
}

fn rl_step(step: u64) -> StepMetrics {
    let x = step as f64;
    StepMetrics {
        step,
        lr: 5e-5 * (1.0 - x / 20.0),
        loss: 0.5 / x - 0.01,
        rollout: RolloutMetrics {
            reward_mean: 0.1 + 0.05 * x,
            reward_std: 0.3 / x.sqrt(),
            reward_components: BTreeMap::from([
                ("format".into(), (x / 9.0).min(1.0)),
                ("es_star".into(), x.sqrt() / 3.0),
            ]),
            indicators: BTreeMap::from([
                ("format_ok".into(), x / 9.0),
                ("syntax_ok".into(), (0.5 + x / 18.0).min(1.0)),
                ("exact_match".into(), (x / 9.0).powi(2)),
            ]),
            completion_len_mean: 200.0 - 3.0 * x,
            truncated_fraction: 0.5 / x,
            filter: FilterStats {
                gen_batches: 1 + step as usize % 3,
                groups_seen: 4 * (1 + step as usize % 3),
                groups_kept: 4,
            },
            generated_tokens: 1000 + 10 * step as usize,
        },
        kl: 1e-3 * x,
        clip_fraction: 0.02 * x,
        dual_clip_fraction: 0.001 * x,
        entropy: 1.5 - 0.05 * x,
        abs_log_ratio: 0.01 * x,
        grad_norm: 2.0 / x,
        num_completions: 16,
        timing: StepTiming {
            generate_s: 10.0 + x,
            score_s: 0.1 * x,
            learn_s: 5.0 + 0.5 * x,
            tokens_per_s: 100.0 + 2.0 * x,
        },
        validation: step.is_multiple_of(3).then(|| validation(step)),
    }
}

fn write_lines<T: serde::Serialize>(path: &Path, items: &[T]) {
    let text: String = items
        .iter()
        .map(|m| serde_json::to_string(m).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

const RL_CHARTS: [&str; 18] = [
    "reward (total)",
    "reward components (mean)",
    "indicators (rate)",
    "loss",
    "learning rate",
    "KL to reference",
    "clip fraction",
    "entropy",
    "policy drift",
    "gradient norm (before clipping)",
    "response length",
    "truncated responses",
    "kept groups (dynamic sampling)",
    "throughput",
    "step time",
    "validation reward components",
    "validation indicators",
    "validation response length",
];

#[test]
fn rl_run_report_plots_every_curve() {
    let dir = tempfile::tempdir().unwrap();
    let steps = 9u64;
    let metrics: Vec<StepMetrics> = (1..=steps).map(rl_step).collect();
    write_lines(&dir.path().join("metrics.jsonl"), &metrics);
    std::fs::write(
        dir.path().join("validation_start.json"),
        serde_json::to_string_pretty(&validation(0)).unwrap(),
    )
    .unwrap();
    ok(&["report", "train", s(dir.path())]);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
    assert_eq!(html.matches("<svg").count(), RL_CHARTS.len());
    for title in RL_CHARTS {
        chart(&html, title);
    }
    assert!(!html.contains("aria-label=\"trained tokens per step\""));
    let n = steps as usize;
    assert_eq!(polyline_points(chart(&html, "KL to reference"), "KL"), n);
    let total = chart(&html, "reward (total)");
    assert_eq!(polyline_points(total, "mean ± std"), n);
    assert_eq!(total.matches("<polygon").count(), 1, "std band");
    let comps = chart(&html, "reward components (mean)");
    assert_eq!(polyline_points(comps, "ES*"), n);
    assert_eq!(polyline_points(comps, "format"), n);
    let ind = chart(&html, "indicators (rate)");
    for k in ["format ok", "syntax ok", "exact match"] {
        assert_eq!(polyline_points(ind, k), n);
    }
    let time = chart(&html, "step time");
    for k in ["generate", "score", "learn", "total"] {
        assert_eq!(polyline_points(time, k), n);
    }
    // generate, score, learn and total: no SFT step time line.
    assert_eq!(time.matches("stroke-width=\"2\"").count(), 4);
    // Validation: step 0 from validation_start.json, then every third step.
    let val_points = 1 + metrics.iter().filter(|m| m.validation.is_some()).count();
    let val = chart(&html, "validation reward components");
    assert_eq!(polyline_points(val, "ES*"), val_points);
    let val = chart(&html, "validation indicators");
    assert_eq!(polyline_points(val, "exact match"), val_points);
    // Summary table: first vs last KL, and validation ES* from step 0.
    let (kl1, kl_n) = (metrics[0].kl, metrics[n - 1].kl);
    assert!(html.contains(&format!(
        "<td>KL to reference</td><td>KL</td><td>1</td><td>{}</td><td>{steps}</td><td>{}</td>",
        fmt_value(kl1),
        fmt_value(kl_n)
    )));
    let es0 = validation(0).reward_components["es_star"];
    assert!(html.contains(&format!(
        "<td>validation reward components</td><td>ES*</td><td>0</td><td>{}</td>",
        fmt_value(es0)
    )));
    // Kept-groups fraction of step 1.
    let f = &metrics[0].rollout.filter;
    assert!(html.contains(&format!(
        "<td>kept groups (dynamic sampling)</td><td>kept</td><td>1</td><td>{}</td>",
        fmt_value(f.groups_kept as f64 / f.groups_seen as f64)
    )));
}

#[test]
fn sft_run_report_with_shorthand_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let steps = 5u64;
    let metrics: Vec<SftMetrics> = (1..=steps)
        .map(|step| {
            let x = step as f64;
            SftMetrics {
                step,
                lr: 1e-4,
                loss: 2.0 / x,
                grad_norm: 1.0 + 1.0 / x,
                tokens: 300 + 7 * step as usize,
                step_s: 1.5 + 0.1 * x,
                // Step 3 validated over zero prompts (no held-out split): not plotted.
                validation: match step {
                    3 => Some(ValidationMetrics::default()),
                    s if s == steps => Some(validation(s)),
                    _ => None,
                },
            }
        })
        .collect();
    write_lines(&dir.path().join("metrics.jsonl"), &metrics);
    let out = dir.path().join("sub/sft.html");
    ok(&["report", s(dir.path()), "-o", s(&out)]);
    let html = std::fs::read_to_string(&out).unwrap();
    let expected = [
        "loss",
        "learning rate",
        "gradient norm (before clipping)",
        "throughput",
        "step time",
        "trained tokens per step",
        "validation reward components",
        "validation indicators",
        "validation response length",
    ];
    assert_eq!(html.matches("<svg").count(), expected.len());
    for title in expected {
        chart(&html, title);
    }
    assert!(html.contains("<dd>SFT</dd>"));
    let n = steps as usize;
    assert_eq!(polyline_points(chart(&html, "loss"), "loss"), n);
    assert_eq!(
        polyline_points(chart(&html, "throughput"), "trained tokens/s"),
        n
    );
    assert_eq!(polyline_points(chart(&html, "step time"), "step"), n);
    // No validation_start.json: validation has only the step it ran at.
    let val = chart(&html, "validation indicators");
    assert_eq!(polyline_points(val, "format ok"), 1);
    let len = chart(&html, "validation response length");
    assert_eq!(polyline_points(len, "mean"), 1);
    assert!(!dir.path().join("report.html").exists());
}

#[test]
fn bad_metrics_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let good: Vec<String> = (1..=3)
        .map(|i| serde_json::to_string(&rl_step(i)).unwrap())
        .collect();
    // A blank line still counts: the truncated record is on line 5.
    let text = format!(
        "{}\n{}\n\n{}\n{{\"step\": 4, \"loss\": \n",
        good[0], good[1], good[2]
    );
    std::fs::write(&path, text).unwrap();
    let out = recode(&["report", "train", s(dir.path())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5: invalid JSON", path.display())),
        "{err}"
    );
    std::fs::write(&path, format!("{}\n{{\"loss\": 1.0}}\n", good[0])).unwrap();
    let err =
        String::from_utf8_lossy(&recode(&["report", "train", s(dir.path())]).stderr).into_owned();
    assert!(
        err.contains(&format!("{}:2: no integer `step` field", path.display())),
        "{err}"
    );
    assert!(!dir.path().join("report.html").exists());
    let missing = dir.path().join("nope");
    let err = String::from_utf8_lossy(&recode(&["report", s(&missing)]).stderr).into_owned();
    assert!(err.contains("no such run directory"), "{err}");
}

fn summary(pass1: f64, packages: &[(&str, f64)]) -> Summary {
    let g = |v: f64| GroupScores {
        examples: 3,
        pass_at_1: Some(v),
        pass_at_5: Some((v * 1.2).min(100.0)),
        upass_at_1: Some(v * 0.5),
        pass_old_at_1: Some(100.0 - v),
    };
    Summary {
        bench: "codeupdatearena".into(),
        generator: "smol".into(),
        n: 5,
        overall: g(pass1),
        candidates: 15,
        per_package: packages
            .iter()
            .map(|(k, v)| (k.to_string(), g(*v)))
            .collect(),
        per_update_type: BTreeMap::from([("modify-output-semantics".into(), g(pass1))]),
        error_classes: BTreeMap::new(),
        extraction: BTreeMap::new(),
        settings: serde_json::Value::Null,
        exec_secs: 1.0,
    }
}

#[test]
fn compare_and_single_eval_reports() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("base"), root.path().join("trained"));
    let (pa, pb) = (40.0, 55.5);
    let sa = summary(pa, &[("numpy", 30.0), ("pandas", 50.0)]);
    let sb = summary(pb, &[("numpy", 60.0), ("torch", 80.0)]);
    for (dir, sum) in [(&a, &sa), (&b, &sb)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(sum).unwrap(),
        )
        .unwrap();
    }
    let out = root.path().join("cmp.html");
    ok(&["report", "compare", s(&a), s(&b), "-o", s(&out)]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains(&format!(
        "{pb:.1} <span class=\"up\">({:+.1})</span>",
        pb - pa
    )));
    assert!(html.contains("<td>base</td>") && html.contains("<td>trained</td>"));
    // pass@1 and UPass@1 per package, and the same per update type.
    assert_eq!(html.matches("<svg").count(), 4);
    // Bars in both charts: per package numpy ×2, pandas ×1, torch ×1; per update type ×2.
    assert_eq!(html.matches("<rect").count(), 2 * 4 + 2 * 2);
    assert!(html.contains(">\ntorch\n</text>"), "category labels");

    // summary.json paths with explicit labels.
    let out2 = root.path().join("cmp2.html");
    ok(&[
        "report",
        "compare",
        s(&b.join("summary.json")),
        s(&a.join("summary.json")),
        "--labels",
        "after,before",
        "-o",
        s(&out2),
    ]);
    let html = std::fs::read_to_string(&out2).unwrap();
    assert!(html.contains(&format!(
        "{pa:.1} <span class=\"down\">({:+.1})</span>",
        pa - pb
    )));
    assert!(html.contains("<td>before</td>"));
    let bad = recode(&["report", "compare", s(&a), s(&b), "--labels", "x"]);
    assert!(!bad.status.success());

    ok(&["report", "eval", s(&a)]);
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(html.contains(&format!(
        "<td>base</td><td>codeupdatearena</td><td>smol</td><td>5</td><td>3</td><td>{pa:.1}</td>"
    )));
    assert!(
        !html.contains("class=\"up\""),
        "a single run has no differences"
    );
    let err =
        String::from_utf8_lossy(&recode(&["report", "eval", s(root.path())]).stderr).into_owned();
    assert!(err.contains("summary.json"), "{err}");
}

#[test]
fn runs_report_overlays_validation_of_several_runs() {
    let dir = tempfile::tempdir().unwrap();
    // An SFT-like run validated at step 0 (validation_start.json) and every third step, and
    // an RL run of 7 steps; both get their own line in every chart.
    let (a, b) = (dir.path().join("sft"), dir.path().join("grpo"));
    for (run, steps) in [(&a, 9u64), (&b, 7)] {
        std::fs::create_dir_all(run).unwrap();
        let rows: Vec<StepMetrics> = (1..=steps).map(rl_step).collect();
        write_lines(&run.join("metrics.jsonl"), &rows);
    }
    std::fs::write(
        a.join("validation_start.json"),
        serde_json::to_string(&validation(0)).unwrap(),
    )
    .unwrap();
    let out = dir.path().join("runs.html");
    ok(&[
        "report",
        "runs",
        s(&a),
        s(&b),
        "--labels",
        "SFT,GRPO",
        "-o",
        s(&out),
    ]);
    let html = std::fs::read_to_string(&out).unwrap();
    // Validation at steps 0, 3, 6, 9 for SFT (4 points) and 3, 6 for GRPO (2 points).
    let es = chart(&html, "validation ES*");
    assert_eq!(polyline_points(es, "SFT"), 4);
    assert_eq!(polyline_points(es, "GRPO"), 2);
    let em = chart(&html, "validation exact match");
    assert_eq!(polyline_points(em, "SFT"), 4);
    assert_eq!(
        polyline_points(chart(&html, "rollout reward (mean)"), "GRPO"),
        7
    );
    // The first-vs-last table has a row per run: SFT's ES* goes 0.3 → 0.3 + 0.02·9 = 0.48.
    let row = html
        .split("<tr>")
        .find(|r| r.contains("validation ES*") && r.contains("<td>SFT</td>"))
        .expect("no SFT row for validation ES*");
    assert!(
        row.contains("<td>0.3000</td>") && row.contains("<td>0.4800</td>"),
        "{row}"
    );
    // Mismatched labels are an error naming the counts.
    let bad = recode(&[
        "report",
        "runs",
        s(&a),
        s(&b),
        "--labels",
        "x",
        "-o",
        s(&out),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 entries for 2 run directories"));
}

#[test]
fn runs_report_compares_last_validations_prompt_by_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("sft"), dir.path().join("rl"));
    // Per prompt (ES*, exact): the RL run gains exact matches on prompts 0 and 1, loses one on
    // prompt 2, and every ES* moves by +0.25 except prompt 2 (−1.0).
    let base: Vec<(f64, bool)> = vec![(1.0, false), (0.5, false), (2.0, true), (0.0, false)];
    let rl: Vec<(f64, bool)> = vec![(1.25, true), (0.75, true), (1.0, false), (0.25, false)];
    for (run, step, rows) in [(&a, 30u64, &base), (&b, 10, &rl)] {
        std::fs::create_dir_all(run.join("validation")).unwrap();
        write_lines(&run.join("metrics.jsonl"), &[rl_step(1)]);
        // An earlier validation file that must not be the one compared.
        std::fs::write(run.join("validation/step-2.jsonl"), "not read\n").unwrap();
        let lines: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, (es, em))| {
                // The base copies the old code on prompt 3; the RL run's prompt 2 is cut at
                // the length limit and misses the format.
                let (copy, cut) = (step == 30 && i == 3, step == 10 && i == 2);
                serde_json::json!({
                    "index": i, "completion": "", "completion_tokens": 1, "truncated": cut,
                    "reward_components": {"format": 1.0, "es_star": es},
                    "indicators": {"exact_match": if *em { 1.0 } else { 0.0 },
                        "unchanged": if copy { 1.0 } else { 0.0 },
                        "format_ok": if cut { 0.0 } else { 1.0 }},
                })
                .to_string()
            })
            .collect();
        std::fs::write(
            run.join(format!("validation/step-{step}.jsonl")),
            lines.join("\n") + "\n",
        )
        .unwrap();
    }
    let out = dir.path().join("runs.html");
    let stdout = ok(&["report", "runs", s(&a), s(&b), "-o", s(&out)]).stdout;
    let text = String::from_utf8_lossy(&stdout).into_owned();
    // Each run's last validation in one line: mean ES* (1+0.5+2+0)/4 and (1.25+0.75+1+0.25)/4.
    assert!(
        text.contains(
            "sft: step 30: ES* 0.8750, exact match 1/4, 1 copies of the old code, format 4/4, \
             truncated 0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "rl: step 10: ES* 0.8125, exact match 2/4, 0 copies of the old code, format 3/4, \
             truncated 1"
        ),
        "{text}"
    );
    // Mean difference (0.25·3 − 1.0)/4 = −0.0625; exact 2 vs 1 with +2 −1: McNemar
    // 2·P(X ≤ 1 | n = 3) = 2·4/8 = 1.
    assert!(
        text.contains("rl vs sft: step 10 vs step 30 on 4 prompts: ES* -0.0625"),
        "{text}"
    );
    assert!(
        text.contains("exact match 2 vs 1 (+2 -1, McNemar p = 1.000)"),
        "{text}"
    );
    // The bootstrap interval brackets the mean and stays within the per-prompt extremes.
    let interval = text.split("bootstrap ").nth(1).unwrap();
    let ends: Vec<f64> = interval
        .split(')')
        .next()
        .unwrap()
        .split(" to ")
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(ends[0] <= -0.0625 && -0.0625 <= ends[1], "{ends:?}");
    assert!(ends[0] >= -1.0 && ends[1] <= 0.25, "{ends:?}");
    assert!(std::fs::read_to_string(&out).unwrap().contains("rl vs sft"));
    // A malformed line of the compared file is an error naming file and line.
    std::fs::write(b.join("validation/step-10.jsonl"), "{\"index\": 0}\n").unwrap();
    let bad = recode(&["report", "runs", s(&a), s(&b), "-o", s(&out)]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(
        err.contains("step-10.jsonl:1") && err.contains("es_star"),
        "{err}"
    );
}
