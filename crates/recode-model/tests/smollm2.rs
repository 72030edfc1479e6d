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

#[test]
fn raw_decode_steps_equal_the_tensor_path() {
    // With packed weights, decode steps run every layer on raw buffers (the fused plan); without
    // them the tensor path runs. Same function up to summation order: batch 2 with left padding,
    // several steps, with the LoRA adapter and without it (the KL reference pass).
    let mut m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
    let cfg = AdapterConfig {
        kind: AdapterKind::Lora,
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
            .map(String::from)
            .to_vec(),
        use_rslora: false,
    };
    m.model.add_adapters(&cfg, 5).unwrap();
    common::randomise_b(&m.model);
    let mut dense = m.model.clone();
    dense.clear_packed_weights().unwrap();
    assert!(m.model.has_packed_weights() && !dense.has_packed_weights());
    let prompts = [
        m.tokenizer.encode(&chat("Name three colours.")).unwrap(),
        m.tokenizer
            .encode(&chat("Write a haiku about the sea, please."))
            .unwrap(),
    ];
    let (ids, mask) =
        recode_model::generate::left_pad(&prompts, m.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let steps: [[u32; 2]; 5] = [[28, 906], [314, 72], [1010, 28], [5, 9], [400, 401]];
    let run = |model: &recode_model::CausalLM, o: ForwardOpts| -> Vec<Vec<f32>> {
        let mut cache = model.new_cache(ids.dim(1).unwrap() + steps.len());
        let mut out = vec![model
            .forward(&ids, Some(&mask), Some(&mut cache), LogitsMode::Last, o)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()];
        for s in &steps {
            let t = Tensor::new(&s[..], &Device::Cpu)
                .unwrap()
                .unsqueeze(1)
                .unwrap();
            let lg = model
                .forward(&t, None, Some(&mut cache), LogitsMode::Last, o)
                .unwrap();
            out.push(lg.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        out
    };
    for o in [ForwardOpts::INFERENCE, ForwardOpts::REFERENCE] {
        let (raw, tensor) = (run(&m.model, o), run(&dense, o));
        for (step, (a, b)) in raw.iter().zip(&tensor).enumerate() {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(
                d < 2e-3,
                "{o:?} step {step}: raw vs tensor logits differ by {d}"
            );
        }
    }
}

/// Samples fanned out from one prefill decode the same whether they share the prompt's cached
/// positions ([`KvCache::share_rows`], what `generate` does for n > 1) or each hold a copy
/// ([`KvCache::select_rows`]): the logits of every step have the same bits, on the raw decode
/// path (f32) and on the tensor path (f64) alike.
#[test]
fn shared_prompt_positions_decode_like_copies() {
    let m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
    let prompts = [
        chat("Write a haiku about rust."),
        chat("What is 2 + 2? Answer briefly, please."),
    ];
    let rows: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| m.tokenizer.encode(p).unwrap())
        .collect();
    let (ids, mask) = recode_model::left_pad(&rows, m.tokenizer.pad_id(), &Device::Cpu).unwrap();
    let n = 3;
    let run = |model: &recode_model::CausalLM| {
        let mut cache = model.new_cache(ids.dim(1).unwrap() + 8);
        model
            .forward(
                &ids,
                Some(&mask),
                Some(&mut cache),
                LogitsMode::Last,
                ForwardOpts::INFERENCE,
            )
            .unwrap();
        let mut shared = cache.clone();
        shared.share_rows(n).unwrap();
        let fanned: Vec<usize> = (0..rows.len() * n).map(|r| r / n).collect();
        cache.select_rows(&fanned).unwrap();
        // Different tokens per row, then a row dropped (as when a sample finishes).
        for step in 0..6u32 {
            if step == 3 {
                let keep = [0, 2, 3, 5];
                shared.select_rows(&keep).unwrap();
                cache.select_rows(&keep).unwrap();
            }
            let b = cache.batch_size();
            let tok: Vec<u32> = (0..b as u32).map(|r| 100 + 37 * r + 11 * step).collect();
            let tok = Tensor::from_vec(tok, (b, 1), &Device::Cpu).unwrap();
            let step_logits = |c: &mut recode_model::KvCache| {
                model
                    .forward(
                        &tok,
                        None,
                        Some(c),
                        LogitsMode::Last,
                        ForwardOpts::INFERENCE,
                    )
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                step_logits(&mut shared),
                step_logits(&mut cache),
                "step {step}"
            );
        }
    };
    run(&m.model);
    // In f64 decoding takes the tensor path (the raw kernels are f32).
    let m64 = load_model(&common::gguf_path(), DType::F64, &Device::Cpu).unwrap();
    run(&m64.model);
}
