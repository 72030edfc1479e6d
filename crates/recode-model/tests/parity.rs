//! Logit parity against the independent numpy reference (python/reference/model_ref.py), and KV-cache
//! decoding against the full-sequence forward, on tiny random Llama and Qwen2 models.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use recode_model::{AdapterConfig, AdapterKind, ForwardOpts, LogitsMode};

fn parity(arch: &str) {
    let dir = make_tiny(arch, 7);
    let (ids, mask, want) = expected(dir.path());
    let model = load_tiny(dir.path(), DType::F32);
    for opts in [
        ForwardOpts::INFERENCE,
        ForwardOpts {
            train: false,
            ..ForwardOpts::TRAIN
        },
    ] {
        let got = model
            .forward(&ids, Some(&mask), None, LogitsMode::All, opts)
            .unwrap();
        let d = max_diff_masked(&got, &want, &mask);
        assert!(d < 1e-4, "{arch} {opts:?}: max |logit diff| = {d}");
    }
}

#[test]
fn llama_logits_match_numpy_reference() {
    parity("llama");
}

#[test]
fn qwen2_logits_match_numpy_reference() {
    parity("qwen2");
}

/// Prefill part of each (left-padded) row, then decode the rest token by token with the cache:
/// every step's logits must equal the full forward's at that position. With `adapter`, adapters
/// (random B) on every projection: decode steps add them with the raw-row kernel (DoRA with the
/// row scale frozen by `for_generation`), the full forward with tensor ops.
fn kv_cache_equals_full(arch: &str, adapter: Option<AdapterKind>) {
    let dir = make_tiny(arch, 3);
    let (ids, mask, _) = expected(dir.path());
    let mut model = load_tiny(dir.path(), DType::F32);
    if let Some(kind) = adapter {
        let cfg = AdapterConfig {
            kind,
            r: 3,
            alpha: 6.0,
            dropout: 0.0,
            target_modules: recode_model::model::PROJECTIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            use_rslora: false,
        };
        model.add_adapters(&cfg, 11).unwrap();
        randomise_b(&model);
    }
    let full = model
        .forward(
            &ids,
            Some(&mask),
            None,
            LogitsMode::All,
            ForwardOpts::INFERENCE,
        )
        .unwrap();
    let frozen = model.for_generation().unwrap();
    let model = frozen.as_ref();
    let t = ids.dim(1).unwrap();
    let pre = 7; // every row has real tokens within the prefill
    let mut cache = model.new_cache(4); // small capacity: exercises growth
    let mut steps = vec![model
        .forward(
            &ids.narrow(1, 0, pre).unwrap(),
            Some(&mask.narrow(1, 0, pre).unwrap()),
            Some(&mut cache),
            LogitsMode::All,
            ForwardOpts::INFERENCE,
        )
        .unwrap()];
    for i in pre..t {
        steps.push(
            model
                .forward(
                    &ids.narrow(1, i, 1).unwrap(),
                    None,
                    Some(&mut cache),
                    LogitsMode::Last,
                    ForwardOpts::INFERENCE,
                )
                .unwrap(),
        );
    }
    let inc = Tensor::cat(&steps, 1).unwrap();
    let d = max_diff_masked(&inc, &full, &mask);
    assert!(d < 1e-4, "{arch} {adapter:?}: cached vs full max diff {d}");
}

#[test]
fn llama_kv_cache_decoding_equals_full_forward() {
    kv_cache_equals_full("llama", None);
    kv_cache_equals_full("llama", Some(AdapterKind::Lora));
    kv_cache_equals_full("llama", Some(AdapterKind::Dora));
}

#[test]
fn qwen2_kv_cache_decoding_equals_full_forward() {
    kv_cache_equals_full("qwen2", None);
    kv_cache_equals_full("qwen2", Some(AdapterKind::Lora));
    kv_cache_equals_full("qwen2", Some(AdapterKind::Dora));
}

/// A left-padded row must give the same logits as the same tokens alone.
#[test]
fn left_padding_does_not_change_logits() {
    let dir = make_tiny("qwen2", 5);
    let (ids, mask, _) = expected(dir.path());
    let model = load_tiny(dir.path(), DType::F32);
    let batch = model
        .forward(
            &ids,
            Some(&mask),
            None,
            LogitsMode::All,
            ForwardOpts::INFERENCE,
        )
        .unwrap();
    let row = ids.narrow(0, 2, 1).unwrap().narrow(1, 6, 3).unwrap();
    let alone = model
        .forward(&row, None, None, LogitsMode::All, ForwardOpts::INFERENCE)
        .unwrap();
    let from_batch = batch.narrow(0, 2, 1).unwrap().narrow(1, 6, 3).unwrap();
    let d = (alone - from_batch)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "padding changed logits by {d}");
}
