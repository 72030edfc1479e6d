//! `recode serve model` on the real SmolLM2-135M-Instruct GGUF as a real process on 127.0.0.1:
//! OpenAI chat completions that agree with `recode generate`, errors that name the field, and
//! the endpoint path of `recode eval run` producing pass@k from it (CodeUpdateArena subset,
//! sandboxed scoring). Needs scripts/setup.sh (model) and `recode eval setup` (eval venv).
#![cfg(unix)]

mod common;

use std::process::Command;

use common::{gguf, start_model_server, BIN};
use serde_json::{json, Value};

fn post(url: &str, body: Value) -> (u16, Value) {
    match ureq::post(url).send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

const QUESTION: &str = "What is the capital of France? Answer in one sentence.";

#[test]
fn chat_completions_match_generate_and_feed_eval_run() {
    let Some(data) = common::arena_dev() else {
        return;
    };
    let model = gguf();
    let (_server, base, _stderr) = start_model_server(&model, "smollm2");
    let url = format!("{base}/v1/chat/completions");

    let models: Value = ureq::get(&format!("{base}/v1/models"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(models["data"][0]["id"], "smollm2", "{models}");

    // Greedy: coherent English, and the same text `recode generate` gives for the same prompt.
    let (code, reply) = post(
        &url,
        json!({"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}],
               "temperature": 0, "max_tokens": 24}),
    );
    assert_eq!(code, 200, "{reply}");
    let text = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Paris"), "not a coherent answer: {text:?}");
    let usage = &reply["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10, "{reply}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    let out = Command::new(BIN)
        .args(["generate", "--model", &model, "--prompt", QUESTION])
        .args(["--temperature", "0", "--max-new-tokens", "24", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        local["text"].as_str().unwrap(),
        text,
        "server and generate disagree"
    );

    // n samples with a seed: n choices, reproducible; a tiny limit reports `length`.
    let ask = json!({"model": "smollm2", "messages": [{"role": "user", "content": "Write a haiku."}],
                     "temperature": 1.0, "n": 3, "seed": 11, "max_tokens": 6});
    let (_, a) = post(&url, ask.clone());
    let (_, b) = post(&url, ask);
    assert_eq!(a["choices"].as_array().unwrap().len(), 3, "{a}");
    assert_eq!(a["choices"], b["choices"], "same seed, different samples");
    assert!(a["choices"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["finish_reason"] == "length"));

    // Errors name the field; the wrong model is a 404; bad JSON a 400.
    let (code, err) = post(
        &url,
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": 5}),
    );
    assert_eq!(code, 422);
    assert!(
        err["error"].as_str().unwrap().contains("temperature"),
        "{err}"
    );
    let (code, _) = post(
        &url,
        json!({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(code, 404);
    let bad = ureq::post(&url)
        .set("Content-Type", "application/json")
        .send_string("{not json");
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))), "{bad:?}");

    // The endpoint path of `recode eval run`: pass@k for SmolLM2 on a CodeUpdateArena subset.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("eval");
    let out = Command::new(BIN)
        .args([
            "eval",
            "run",
            "--bench",
            "codeupdatearena",
            "--endpoint",
            &base,
        ])
        .args([
            "--model",
            "smollm2",
            "--limit",
            "2",
            "-n",
            "2",
            "--max-new-tokens",
            "64",
        ])
        .args(["--concurrency", "2", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "eval run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let p1 = summary["pass@1"]
        .as_f64()
        .unwrap_or_else(|| panic!("{summary}"));
    assert!((0.0..=1.0).contains(&p1), "{summary}");
    // One result and one cached generation per (problem, sample), every one from the endpoint.
    let results = std::fs::read_to_string(out_dir.join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 4, "{results}");
    let gens = std::fs::read_to_string(out_dir.join("generations.jsonl")).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    for line in gens.lines() {
        let g: Value = serde_json::from_str(line).unwrap();
        assert!(!g["completion"].as_str().unwrap().is_empty(), "{g}");
        assert!(g["generator"].as_str().unwrap().contains(&base), "{g}");
        keys.insert((g["id"].to_string(), g["sample"].as_u64().unwrap()));
    }
    assert_eq!(keys.len(), 4, "{gens}");
}
