//! SmolLM2-135M-Instruct (the real Q4_1 GGUF) against Hugging Face transformers: top-5 next-token
//! log-probabilities of real prompts (ReCode training prompts and a chat), from the committed
//! fixture tests/fixtures/smollm2_transformers_top5.json written by
//! python/bench/make_parity_fixture.py (transformers dequantises the GGUF to float32).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use recode_model::{load_model, CausalLM, ForwardOpts, LogitsMode};
use serde::Deserialize;

/// Allowed |recode − transformers| on a log-probability.
const TOL: f64 = 2e-3;

#[derive(Deserialize)]
struct Fixture {
    top_k: usize,
    prompts: Vec<Prompt>,
}

#[derive(Deserialize)]
struct Prompt {
    name: String,
    text: String,
    input_ids: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    position: usize,
    top_ids: Vec<u32>,
    top_logprobs: Vec<f64>,
}

fn fixture() -> Fixture {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2_transformers_top5.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Log-softmax (in f64) of a row of logits.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x.into()));
    let lse = max
        + logits
            .iter()
            .map(|&x| (f64::from(x) - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&x| f64::from(x) - lse).collect()
}

/// Compares recode's log-probabilities at one position with transformers' top-k: every reference
/// token's log-probability within TOL, and recode's top-k the same ids except for tokens tied
/// (within TOL) with the k-th. Returns the largest |difference| over the reference tokens.
fn compare(what: &str, lp: &[f64], want: &Position, k: usize) -> f64 {
    let mut worst = 0f64;
    for (&id, &w) in want.top_ids.iter().zip(&want.top_logprobs) {
        let d = (lp[id as usize] - w).abs();
        assert!(
            d <= TOL,
            "{what}: token {id}: recode {} vs transformers {w} (|diff| {d})",
            lp[id as usize]
        );
        worst = worst.max(d);
    }
    let mut order: Vec<usize> = (0..lp.len()).collect();
    order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
    let kth = want.top_logprobs[k - 1];
    for &id in &order[..k] {
        assert!(
            want.top_ids.contains(&(id as u32)) || (lp[id] - kth).abs() <= TOL,
            "{what}: recode's top-{k} has token {id} ({}), not in transformers' {:?}",
            lp[id],
            want.top_ids
        );
    }
    worst
}

fn row(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// Log-probabilities at every position of `ids` from one full forward (prefill path).
fn full_forward(model: &CausalLM, ids: &[u32]) -> Vec<Vec<f64>> {
    let logits = model
        .forward(
            &row(ids),
            None,
            None,
            LogitsMode::All,
            ForwardOpts::INFERENCE,
        )
        .unwrap();
    let rows = logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    rows.iter().map(|r| log_softmax(r)).collect()
}

/// Log-probabilities at the last position of `ids` when it is decoded as one step over a KV cache
/// of the rest (generation's path, over the packed Q4_1 weights).
fn decoded_last(model: &CausalLM, ids: &[u32]) -> Vec<f64> {
    let n = ids.len();
    let mut cache = model.new_cache(n + 1);
    let o = ForwardOpts::INFERENCE;
    model
        .forward(
            &row(&ids[..n - 1]),
            None,
            Some(&mut cache),
            LogitsMode::Last,
            o,
        )
        .unwrap();
    let logits = model
        .forward(
            &row(&ids[n - 1..]),
            None,
            Some(&mut cache),
            LogitsMode::Last,
            o,
        )
        .unwrap();
    log_softmax(&logits.flatten_all().unwrap().to_vec1::<f32>().unwrap())
}

#[test]
fn smollm2_tokens_and_top5_logprobs_match_transformers() {
    let fx = fixture();
    let m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
    assert!(m.model.has_packed_weights());
    let mut worst: HashMap<&str, f64> = HashMap::new();
    for p in &fx.prompts {
        // The ids came from transformers' GGUF tokenizer; recode's must give the same.
        assert_eq!(
            m.tokenizer.encode(&p.text).unwrap(),
            p.input_ids,
            "{}: recode's token ids differ from transformers'",
            p.name
        );
        let lps = full_forward(&m.model, &p.input_ids);
        for pos in &p.positions {
            let what = format!("{} position {} (full forward)", p.name, pos.position);
            let d = compare(&what, &lps[pos.position], pos, fx.top_k);
            let w = worst.entry("full forward").or_default();
            *w = w.max(d);
        }
        // Generation's path: the last position decoded over the cache and the packed weights.
        let last = p.positions.last().unwrap();
        assert_eq!(last.position, p.input_ids.len() - 1);
        let lp = decoded_last(&m.model, &p.input_ids);
        let what = format!("{} last position (cached decode)", p.name);
        let d = compare(&what, &lp, last, fx.top_k);
        let w = worst.entry("cached decode").or_default();
        *w = w.max(d);
    }
    eprintln!(
        "max |logprob diff| on transformers' top-{}: {worst:?}",
        fx.top_k
    );
}
