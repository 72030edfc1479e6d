//! Dataset construction end to end through the CLI (PyPI, the sandbox, the real SmolLM2):
//! `recode data mine` on packaging 21.3 -> 22.0, `recode data synth` through a real
//! `recode serve model` on 127.0.0.1, `recode data verify` on its candidates plus hand-written
//! ones, `recode data stats` on the rows (no nulls, no bare versions, no syntax errors) and
//! `recode train` for 2 steps on them.

mod common;

use common::{gguf, ok, start_model_server};
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn mine_synth_verify_stats_train() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    // mine
    ok(&[
        "data",
        "mine",
        "--dist",
        "packaging",
        "--old",
        "21.3",
        "--new",
        "22.0",
        "-o",
        &p("changes.jsonl"),
        "--report",
        &p("mine.json"),
    ]);
    let changes = lines(dir.path().join("changes.jsonl").as_path());
    let ids: Vec<&str> = changes.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&"packaging@21.3..22.0:removed:packaging.version.LegacyVersion"),
        "{ids:?}"
    );
    assert!(ids.contains(&"packaging@21.3..22.0:param_added:packaging.utils.canonicalize_version:strip_trailing_zero"), "{ids:?}");

    // synth through the small model served on loopback (its verified rate may be 0)
    let (_server, url, _log) = start_model_server(&gguf(), "smollm2");
    ok(&[
        "data",
        "synth",
        &p("changes.jsonl"),
        "--endpoint",
        &url,
        "--model",
        "smollm2",
        "--kind",
        "removed",
        "--limit",
        "1",
        "-n",
        "2",
        "--max-tokens",
        "96",
        "-o",
        &p("candidates.jsonl"),
        "--report",
        &p("synth.json"),
    ]);
    let synth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("synth.json")).unwrap())
            .unwrap();
    assert_eq!(synth["requests"], 2);
    eprintln!("synth through SmolLM2: {synth}");
    let synthesised = lines(dir.path().join("candidates.jsonl").as_path());
    let unparsable = lines(dir.path().join("candidates.rejects.jsonl").as_path());
    assert_eq!(
        synthesised.len() + unparsable.len(),
        2,
        "one line per answer"
    );
    for c in &synthesised {
        assert_eq!(c["model"], "smollm2");
        assert_eq!(c["old_version"], "==21.3");
    }
    for r in &unparsable {
        assert_eq!(r["reason"], "parse");
    }

    // verify: the model's candidates and two hand-written ones (a good pair and one that runs
    // on both versions)
    let mut all = std::fs::read_to_string(dir.path().join("candidates.jsonl")).unwrap();
    let hand = |old: &str, new: &str| {
        serde_json::json!({
            "dependency": "packaging", "new_version": "==22.0",
            "description": "The code demonstrates how to canonicalize a version.",
            "update_info": "canonicalize_version now accepts strip_trailing_zero.",
            "old_code": old, "new_code": new, "old_version": "==21.3",
        })
        .to_string()
            + "\n"
    };
    let old =
        "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0'))\n";
    all += &hand(
        old,
        &old.replace("'1.0.0')", "'1.0.0', strip_trailing_zero=False)"),
    );
    all += &hand(old, &old.replace("'1.0.0'", "'2.0.0'"));
    std::fs::write(dir.path().join("all.jsonl"), all).unwrap();
    let out = ok(&["data", "verify", &p("all.jsonl"), "-o", &p("verified")]);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("verified/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["candidates"], synthesised.len() + 2);
    assert!(report["accepted"].as_u64().unwrap() >= 1);
    assert!(report["rejected"]["not_discriminating"].as_u64().unwrap() >= 1);
    let rows = lines(dir.path().join("verified/rows.jsonl").as_path());
    let meta = lines(dir.path().join("verified/rows.meta.jsonl").as_path());
    assert_eq!(rows.len(), meta.len());
    assert!(meta.iter().any(|m| m["verdict"] == "additive"));

    // stats: no nulls, no bare versions, no syntax errors
    let stats: Value =
        serde_json::from_slice(&ok(&["data", "stats", &p("verified/rows.jsonl"), "--json"]).stdout)
            .unwrap();
    assert_eq!(stats["missing_version_prefix"], 0);
    assert_eq!(stats["old_code_syntax_errors"], 0);
    assert_eq!(stats["new_code_syntax_errors"], 0);
    for (k, v) in stats["null_fields"].as_object().unwrap() {
        assert_eq!(v, 0, "null {k}");
    }

    // train 2 steps on the verified rows
    let (model, data, run) = (gguf(), p("verified/rows.jsonl"), p("run"));
    let mut train = vec![
        "train",
        "--algo",
        "grpo",
        "--model",
        &model,
        "--data",
        &data,
        "--output",
        &run,
        "--quiet",
        "--val-fraction",
        "0",
    ];
    for kv in [
        "max_steps=2",
        "max_prompt_length=48",
        "use_dora=false",
        "lora_r=4",
        "lora_alpha=8",
        "gradient_accumulation_steps=1",
        "num_generations=4",
        "per_device_train_batch_size=4",
        "max_completion_length=8",
        "eval_steps=0",
        "save_steps=2",
    ] {
        train.extend(["--set", kv]);
    }
    ok(&train);
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    assert!(dir.path().join("run/checkpoint-2").exists());
}
