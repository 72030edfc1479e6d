//! `recode generate` flags on the real SmolLM2-135M-Instruct GGUF: `--raw` with special tokens
//! equals the chat-templated prompt, `--logprobs` follows the OpenAI completions layout, `-n`
//! with a seed is reproducible, stop strings cut the text, `--input` JSONL errors name the line.

mod common;

use std::process::Command;

use common::{gguf, ok, BIN};
use serde_json::Value;

/// Runs `recode generate --json …` and returns one JSON object per completion.
fn generate(args: &[&str]) -> Vec<Value> {
    let model = gguf();
    let mut all = vec!["generate", "--model", &model, "--json"];
    all.extend_from_slice(args);
    let out = ok(&all);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

#[test]
fn raw_prompt_with_special_tokens_equals_the_chat_template() {
    let q = "List two fruits.";
    let templated = generate(&["--prompt", q, "--max-new-tokens", "12"]);
    let raw_text = format!(
        "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
    );
    let raw = generate(&["--raw", "--prompt", &raw_text, "--max-new-tokens", "12"]);
    assert_eq!(raw[0]["prompt_token_ids"], templated[0]["prompt_token_ids"]);
    assert_eq!(raw[0]["text"], templated[0]["text"]);
    // `<|im_start|>` is one special token, not its characters.
    let ids = raw[0]["prompt_token_ids"].as_array().unwrap();
    assert!(
        ids.len() < raw_text.len() / 3,
        "special tokens were split: {ids:?}"
    );
}

#[test]
fn logprobs_follow_the_openai_layout() {
    let c = &generate(&[
        "--prompt",
        "Say hello.",
        "--max-new-tokens",
        "8",
        "--logprobs",
        "3",
    ])[0];
    let lp = &c["logprobs"];
    let tokens = lp["tokens"].as_array().unwrap();
    let token_lp = lp["token_logprobs"].as_array().unwrap();
    let top = lp["top_logprobs"].as_array().unwrap();
    let n = c["token_ids"].as_array().unwrap().len();
    assert_eq!((tokens.len(), token_lp.len(), top.len()), (n, n, n));
    for i in 0..n {
        let alts = top[i].as_object().unwrap();
        assert!(!alts.is_empty() && alts.len() <= 3, "{alts:?}");
        let chosen = token_lp[i].as_f64().unwrap();
        assert!(chosen <= 0.0);
        // Greedy: the chosen token is the most likely one, listed with the same log-prob.
        let best = alts
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            (best - chosen).abs() < 1e-6,
            "step {i}: {chosen} vs top {best}"
        );
        let piece = tokens[i].as_str().unwrap();
        assert!((alts[piece].as_f64().unwrap() - chosen).abs() < 1e-6);
    }
}

#[test]
fn n_samples_with_a_seed_repeat_and_stop_strings_cut() {
    let args = [
        "--prompt",
        "Write a short poem about the sea.",
        "-n",
        "3",
        "--temperature",
        "1.0",
        "--seed",
        "9",
        "--max-new-tokens",
        "16",
    ];
    let a = generate(&args);
    let b = generate(&args);
    assert_eq!(a.len(), 3);
    let texts = |v: &[Value]| v.iter().map(|c| c["text"].clone()).collect::<Vec<_>>();
    assert_eq!(texts(&a), texts(&b), "same seed, different samples");
    let distinct: std::collections::BTreeSet<String> =
        a.iter().map(|c| c["text"].to_string()).collect();
    assert!(
        distinct.len() > 1,
        "3 samples at temperature 1 are all equal: {distinct:?}"
    );

    // A stop string: the text ends before it and the completion reports `stop`.
    let full = generate(&[
        "--prompt",
        "Count from 1 to 10, separated by commas.",
        "--max-new-tokens",
        "40",
    ]);
    let text = full[0]["text"].as_str().unwrap();
    assert!(text.contains('5'), "unexpected answer {text:?}");
    let cut = generate(&[
        "--prompt",
        "Count from 1 to 10, separated by commas.",
        "--max-new-tokens",
        "40",
        "--stop",
        "5",
    ]);
    let cut_text = cut[0]["text"].as_str().unwrap();
    assert!(!cut_text.contains('5'), "{cut_text:?}");
    assert!(
        text.starts_with(cut_text),
        "{cut_text:?} is not a prefix of {text:?}"
    );
    assert_eq!(cut[0]["finish_reason"], "stop");
}

#[test]
fn input_jsonl_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompts.jsonl");
    std::fs::write(&path, "{\"prompt\": \"hi\"}\n{\"messages\": 3}\n").unwrap();
    let out = Command::new(BIN)
        .args(["generate", "--model", &gguf(), "--input"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prompts.jsonl:2") && err.contains("messages"),
        "{err}"
    );
}
