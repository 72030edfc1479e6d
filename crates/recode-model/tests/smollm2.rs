//! Real-model tests on SmolLM2-135M-Instruct (Q4_1 GGUF from scripts/setup.sh).

mod common;

use candle_core::{DType, Device, Tensor};
use recode_model::{
    generate, load_model, AdapterConfig, AdapterKind, ForwardOpts, LogitsMode, SamplingParams,
};

fn chat(user: &str) -> String {
    format!("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

#[test]
fn gguf_tokenizer_round_trips_and_keeps_special_tokens() {
    let m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
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
    let m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
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

#[test]
fn unmerged_lora_over_packed_weights_equals_merged_dense() {
    // Rollouts decode LoRA unmerged over the packed Q4 base; validation, eval and `recode
    // merge` fold it into dense weights. Both must be the same function.
    let mut m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
    assert!(m.model.has_packed_weights());
    let cfg = AdapterConfig {
        kind: AdapterKind::Lora,
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: recode_model::model::PROJECTIONS.map(String::from).to_vec(),
        use_rslora: false,
    };
    m.model.add_adapters(&cfg, 3).unwrap();
    common::randomise_b(&m.model);
    let ids = m.tokenizer.encode(&chat("Name three colours.")).unwrap();
    let n = ids.len();
    let row = |from: usize, to: usize| {
        Tensor::new(&ids[from..to], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    };
    // Prefill all but the last token, then one decode step (1 row: the packed path).
    let last = |model: &recode_model::CausalLM| {
        let mut cache = model.new_cache(n + 1);
        let o = ForwardOpts::INFERENCE;
        model
            .forward(&row(0, n - 1), None, Some(&mut cache), LogitsMode::Last, o)
            .unwrap();
        model
            .forward(&row(n - 1, n), None, Some(&mut cache), LogitsMode::Last, o)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let base = {
        let mut plain = m.model.clone();
        plain.remove_adapters().unwrap();
        last(&plain)
    };
    let unmerged = last(&m.model);
    let mut merged_model = m.model.clone();
    merged_model.merge_adapters().unwrap();
    let merged = last(&merged_model);
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(diff(&unmerged, &base) > 0.1, "the adapter changes nothing");
    let d = diff(&unmerged, &merged);
    assert!(
        d < 2e-3,
        "unmerged (packed) vs merged (dense) logits differ by {d}"
    );
}
