//! Real-model tests on SmolLM2-135M-Instruct (Q4_1 GGUF from scripts/setup.sh).

use candle_core::{DType, Device};
use recode_model::{generate, load_model, ForwardOpts, SamplingParams};

fn gguf_path() -> String {
    let p = std::env::var("RECODE_SMOLLM2_GGUF")
        .unwrap_or_else(|_| "/root/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    assert!(
        std::path::Path::new(&p).exists(),
        "SmolLM2 GGUF not found at {p}: run scripts/setup.sh (or set RECODE_SMOLLM2_GGUF)"
    );
    p
}

fn chat(user: &str) -> String {
    format!("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

#[test]
fn gguf_tokenizer_round_trips_and_keeps_special_tokens() {
    let m = load_model(&gguf_path(), DType::F32, &Device::Cpu).unwrap();
    let tok = &m.tokenizer;
    assert_eq!(tok.vocab_size(), 49152);
    for s in [
        "Hello, world!",
        "def add(a, b):\n    return a + b\n",
        "  indented\ttabs and ünïcödé 123456",
    ] {
        let ids = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), s);
    }
    let start = tok.token_to_id("<|im_start|>").expect("im_start in vocab");
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids[0], start);
    assert_eq!(*ids.last().unwrap(), tok.token_to_id("<|im_end|>").unwrap());
    assert!(tok
        .eos_ids()
        .contains(&tok.token_to_id("<|im_end|>").unwrap()));
    let tpl = tok.chat_template.as_deref().expect("chat template in GGUF");
    assert!(tpl.contains("<|im_start|>"), "{tpl}");
    // Digits are split individually by SmolLM2's pre-tokenizer.
    assert_eq!(tok.encode("123").unwrap().len(), 3);
}

#[test]
fn greedy_python_function_is_coherent() {
    let m = load_model(&gguf_path(), DType::F32, &Device::Cpu).unwrap();
    let prompt = m
        .tokenizer
        .encode(&chat(
            "Write a Python function that returns the sum of two numbers.",
        ))
        .unwrap();
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 60,
        ..Default::default()
    };
    let (out, _) = generate(
        &m.model,
        &m.tokenizer,
        &[prompt],
        &params,
        ForwardOpts::INFERENCE,
        None,
    )
    .unwrap();
    let text = &out[0].text;
    eprintln!("{text}");
    assert!(text.contains("def "), "no `def` in: {text}");
    assert!(!text.contains('\u{FFFD}'), "garbage in: {text}");
    assert!(out[0]
        .token_logprobs
        .iter()
        .all(|l| l.is_finite() && *l <= 0.0));
}
