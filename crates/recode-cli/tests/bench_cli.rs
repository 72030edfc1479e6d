//! Smoke runs of every `recode bench …` subcommand through the real binary, at sizes that take
//! seconds: each exits 0 and prints (and writes with `--out`) its JSON report with recode's
//! figures finite and positive. Peer-free (`--no-peer`) runs must carry no peer and no ratio;
//! the light peers (bench data and reward: the dev venv's Python; bench eval: the eval venv's)
//! also run side by side, since CI has their interpreters. The heavy peers (transformers, TRL)
//! are not installed in CI, so bench generate and bench train run peer-free only.
//! Needs scripts/setup.sh (dev venv, model) and `recode eval setup` (eval venv).
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};

use common::{arena_dev, gguf, ok, recode_data, recode_rows, BIN};
use serde_json::Value;

/// Keys a report may only have when a peer ran.
const PEER_KEYS: [&str; 6] = [
    "python",
    "transformers",
    "llamacpp",
    "trl",
    "fresh_python",
    "unguarded_fork",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dev_python() -> String {
    let venv = std::env::var("RECODE_VENV")
        .unwrap_or_else(|_| panic!("RECODE_VENV is not set: run scripts/setup.sh"));
    format!("{venv}/bin/python")
}

/// Runs `recode bench ARGS… --out FILE` and returns the report, after checking that stdout ends
/// with exactly the JSON written to FILE and that the report names the benchmark and its mode.
fn bench(args: &[&str], peer_free: bool) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("report.json");
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend(["--out", file.to_str().unwrap()]);
    if peer_free {
        all.push("--no-peer");
    }
    let out = ok(&all);
    let written = std::fs::read_to_string(&file).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim_end().ends_with(written.trim_end()),
        "stdout does not end with the report:\n{stdout}"
    );
    let report: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(report["bench"].as_str(), Some(args[0]), "{report}");
    assert_eq!(report["peer_free"].as_bool(), Some(peer_free), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.contains("peer-free run (--no-peer)"),
        peer_free,
        "{stderr}"
    );
    if peer_free {
        let map = report.as_object().unwrap();
        let peerish: Vec<&String> = map
            .keys()
            .filter(|k| {
                PEER_KEYS.contains(&k.as_str())
                    || k.starts_with("ratio")
                    || k.contains("_trl")
                    || k.contains("over_")
            })
            .collect();
        assert!(
            peerish.is_empty(),
            "peer-free report has {peerish:?}: {report}"
        );
    }
    report
}

/// The number at JSON pointer `ptr`, which must be finite and > 0.
fn positive(report: &Value, ptr: &str) -> f64 {
    let x = report
        .pointer(ptr)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {ptr}: {report}"));
    assert!(x.is_finite() && x > 0.0, "{ptr} = {x}: {report}");
    x
}

fn count(report: &Value, ptr: &str) -> u64 {
    report
        .pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no count at {ptr}: {report}"))
}

#[test]
fn bench_data_alone_and_against_the_python_peer() {
    // 150 real rows plus two exact copies of row 0.
    let Some(mut rows) = recode_rows(150) else {
        return;
    };
    rows.push(rows[0].clone());
    rows.push(rows[0].clone());
    let distinct: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap().to_string())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rows.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let data = data.to_str().unwrap();

    for peer_free in [true, false] {
        let python = dev_python();
        let mut args = vec!["data", data, "--repeat", "2"];
        if !peer_free {
            args.extend(["--python", &python]);
        }
        let r = bench(&args, peer_free);
        positive(&r, "/recode/seconds");
        positive(&r, "/recode/rows_per_s");
        assert_eq!(count(&r, "/recode/rows"), rows.len() as u64);
        assert_eq!(
            count(&r, "/recode/exact_duplicates"),
            (rows.len() - distinct.len()) as u64
        );
        if !peer_free {
            positive(&r, "/python/seconds");
            assert_eq!(count(&r, "/python/rows"), rows.len() as u64);
            let ratio = positive(&r, "/ratio_recode_over/python");
            let expect =
                r["python"]["seconds"].as_f64().unwrap() / r["recode"]["seconds"].as_f64().unwrap();
            assert!((ratio - expect).abs() <= 1e-9 * expect, "{r}");
        }
    }
}

#[test]
fn bench_reward_alone_and_against_the_python_references() {
    // The pairs come from python/tests/test_reward_parity.py, which reads the ReCode data.
    if recode_data().is_none() {
        return;
    }
    let root = repo_root();
    let python = dev_python();
    let base = [
        "reward",
        "--pairs",
        "300",
        "--reference-pairs",
        "40",
        "--python",
        &python,
        "--repo",
        root.to_str().unwrap(),
    ];
    // Peer-free, with the HTTP part bounded to a few requests.
    let mut args = base.to_vec();
    args.extend([
        "--http-seconds",
        "2",
        "--http-clients",
        "2",
        "--http-batch",
        "16",
        "--http-max-requests",
        "20",
    ]);
    let r = bench(&args, true);
    assert!(count(&r, "/pairs") >= 300, "{r}");
    for k in [
        "one_thread_s",
        "one_thread_pairs_per_s",
        "all_cores_s",
        "all_cores_pairs_per_s",
    ] {
        positive(&r, &format!("/recode/{k}"));
    }
    positive(&r, "/recode/parallel_speedup");
    let requests = count(&r, "/recode/http/requests");
    assert!((1..=20).contains(&requests), "{r}");
    assert_eq!(count(&r, "/recode/http/errors"), 0, "{r}");
    positive(&r, "/recode/http/items_per_s");
    positive(&r, "/recode/http/p50_ms");

    // Against the paper reference and rapidfuzz (dev venv); no HTTP part.
    let mut args = base.to_vec();
    args.extend(["--http-seconds", "0"]);
    let r = bench(&args, false);
    assert!(r["recode"].get("http").is_none(), "{r}");
    positive(&r, "/python/paper_reference_s");
    positive(&r, "/python/rapidfuzz_s");
    assert_eq!(count(&r, "/python/paper_reference_pairs_timed"), 40);
    let ratio = positive(&r, "/ratio_recode_over/paper_reference");
    let expect = r["python"]["paper_reference_s"].as_f64().unwrap()
        / r["recode"]["one_thread_s"].as_f64().unwrap();
    assert!((ratio - expect).abs() <= 1e-9 * expect, "{r}");
    positive(&r, "/ratio_recode_over/rapidfuzz");
}

#[test]
fn bench_eval_alone_and_against_the_python_runners() {
    let Some(data) = arena_dev() else {
        return;
    };
    let data = data.to_str().unwrap();
    for peer_free in [true, false] {
        let r = bench(
            &["eval", "--data", data, "--limit", "2", "--workers", "2"],
            peer_free,
        );
        let programs = count(&r, "/programs");
        assert!(
            programs >= 4,
            "2 examples, each with and without its update: {r}"
        );
        positive(&r, "/recode/programs_per_s");
        positive(&r, "/recode/seconds");
        // Reference solutions pass with their update (and are expected to fail without).
        let passed = count(&r, "/recode/passed");
        assert!(passed > 0 && passed < programs, "{r}");
        if !peer_free {
            for peer in ["fresh_python", "unguarded_fork"] {
                positive(&r, &format!("/{peer}/programs_per_s"));
                assert_eq!(
                    count(&r, &format!("/{peer}/same_pass_fail_as_recode")),
                    programs,
                    "{peer} disagrees with recode: {r}"
                );
                positive(&r, &format!("/ratio_recode_over/{peer}"));
            }
        }
    }
}

#[test]
fn bench_generate_peer_free() {
    let model = gguf();
    let r = bench(
        &[
            "generate",
            "--model",
            &model,
            "--batch",
            "2",
            "--new-tokens",
            "6",
            "--repeats",
            "2",
        ],
        true,
    );
    let runs = r["recode"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(runs.len(), 2, "{r}");
    // Each run is timed twice; the reported rate is the median of the two.
    for run in runs {
        for key in ["prefill_tok_s", "decode_tok_s"] {
            let each: Vec<f64> = run["repeats"][key]
                .as_array()
                .unwrap_or_else(|| panic!("{r}"))
                .iter()
                .filter_map(|v| v.as_f64())
                .collect();
            assert_eq!(each.len(), 2, "{r}");
            let median = run[key].as_f64().unwrap();
            assert!(
                (median - (each[0] + each[1]) / 2.0).abs() < 1e-9 * median,
                "{r}"
            );
        }
    }
    // eos is ignored, so each run generates exactly batch x new tokens.
    assert_eq!(count(&r, "/recode/0/generated_tokens"), 2 * 6);
    assert_eq!(count(&r, "/recode/1/generated_tokens"), 6);
    for i in 0..2 {
        positive(&r, &format!("/recode/{i}/prefill_tok_s"));
        positive(&r, &format!("/recode/{i}/decode_tok_s"));
        assert!(count(&r, &format!("/recode/{i}/prompt_tokens")) > 0);
    }
    positive(&r, "/recode_peak_rss_bytes");
}

#[test]
fn bench_train_peer_free() {
    let model = gguf();
    let Some(data) = recode_data() else {
        return;
    };
    let r = bench(
        &[
            "train",
            "--model",
            &model,
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "2",
            "--num-generations",
            "2",
            "--max-completion-length",
            "8",
            "--lora-r",
            "2",
        ],
        true,
    );
    let steps = r["recode"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(steps.len(), 2, "{r}");
    for k in [
        "step_s",
        "generate_s",
        "learn_s",
        "wall_s",
        "peak_rss_bytes",
    ] {
        positive(&r, &format!("/recode/{k}"));
    }
    // step_s is the mean of the steps after the warm-up one.
    let second = steps[1].as_f64().unwrap();
    assert!(
        (r["recode"]["step_s"].as_f64().unwrap() - second).abs() < 1e-12,
        "{r}"
    );
}

#[test]
fn a_missing_peer_environment_points_to_no_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["bench", "generate", "--batch", "1", "--new-tokens", "2"])
        .env("RECODE_BENCH_VENV", tmp.path().join("absent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no peer environment"), "{stderr}");
    assert!(stderr.contains("--no-peer"), "{stderr}");
}

#[test]
fn one_new_token_cannot_time_the_peers_decoding() {
    let out = std::process::Command::new(BIN)
        .args(["bench", "generate", "--batch", "1", "--new-tokens", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--new-tokens: must be at least 2 when peers run"),
        "{stderr}"
    );
}
