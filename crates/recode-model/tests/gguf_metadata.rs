//! GGUF metadata the loader honours or refuses, on GGUF files written here from tiny random
//! models: RoPE scaling (`<arch>.rope.scaling.*`, the `rope_freqs.weight` tensor) checked against
//! the numpy reference (python/reference/model_ref.py, transformers' formulas), and values recode
//! does not implement refused with the key and value named.

mod common;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use common::gguf::{tiny_gguf, GgufSpec};
use common::{expected, load_tiny, make_tiny, make_tiny_with, max_diff_masked};
use recode_model::{
    load_model, CausalLM, ForwardOpts, LoadedModel, LogitsMode, ModelConfig, ModelError,
    RopeScaling,
};

/// f32 model against the f64 reference, as in parity.rs.
const TOL: f64 = 1e-4;

/// Writes `spec` to a temp file and opens it the way `recode` does.
fn load(spec: &GgufSpec) -> Result<LoadedModel, ModelError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    spec.write(&path);
    load_model(path.to_str().unwrap(), DType::F32, &Device::Cpu)
}

fn load_err(spec: &GgufSpec) -> ModelError {
    match load(spec) {
        Ok(_) => panic!("the GGUF file was accepted"),
        Err(e) => e,
    }
}

/// Max |logit - reference| over the reference batch of `dir`.
fn logits_diff(model: &CausalLM, dir: &std::path::Path) -> f64 {
    let (ids, mask, want) = expected(dir);
    let got = model
        .forward(
            &ids,
            Some(&mask),
            None,
            LogitsMode::All,
            ForwardOpts::INFERENCE,
        )
        .unwrap();
    max_diff_masked(&got, &want, &mask)
}

fn reference(dir: &std::path::Path, name: &str) -> Tensor {
    let mut t =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    t.remove(name).unwrap()
}

#[test]
fn llama3_rope_freqs_tensor_matches_transformers_formula() {
    let dir = make_tiny_with("llama", 5, &["--rope-scaling", "llama3", "--seq-len", "40"]);
    let mut spec = tiny_gguf(dir.path());
    // The divisors as llama.cpp's converter computes and stores them (f32).
    spec.tensors.push((
        "rope_freqs.weight".into(),
        reference(dir.path(), "rope_freqs"),
    ));
    let m = load(&spec).unwrap();
    assert!(matches!(
        m.model.config().rope_scaling,
        RopeScaling::FreqFactors { .. }
    ));
    // inv_freq against transformers' llama3 formula; the divisors went through f32.
    let want = reference(dir.path(), "inv_freq").to_vec1::<f64>().unwrap();
    let got = m.model.config().inv_freq();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w, "inv_freq {got:?} vs {want:?}");
    }
    let d = logits_diff(&m.model, dir.path());
    assert!(d < TOL, "GGUF with rope_freqs: max |logit diff| = {d}");
    // The same weights through config.json's `rope_scaling` (llama3).
    let d = logits_diff(&load_tiny(dir.path(), DType::F32), dir.path());
    assert!(
        d < TOL,
        "config.json llama3 scaling: max |logit diff| = {d}"
    );
    // At these positions the scaling matters: without the tensor the logits move far more.
    spec.tensors.retain(|(n, _)| n != "rope_freqs.weight");
    let d = logits_diff(&load(&spec).unwrap().model, dir.path());
    assert!(d > 100.0 * TOL, "rope_freqs changes the logits by only {d}");
}

#[test]
fn linear_rope_scaling_metadata_matches_reference() {
    let dir = make_tiny_with("qwen2", 6, &["--rope-scaling", "linear", "--seq-len", "40"]);
    let factor = 4.0; // model_ref.py's ROPE_SCALINGS["linear"]
                      // The current keys, and the older `rope.scale_linear` with the type left to its default.
    let current = [
        ("qwen2.rope.scaling.type", Value::String("linear".into())),
        ("qwen2.rope.scaling.factor", Value::F32(factor)),
        ("qwen2.rope.scaling.original_context_length", Value::U32(32)),
        ("qwen2.rope.scaling.finetuned", Value::Bool(true)),
    ];
    let legacy = [("qwen2.rope.scale_linear", Value::F32(factor))];
    for keys in [&current[..], &legacy[..]] {
        let mut spec = tiny_gguf(dir.path());
        for (k, v) in keys {
            spec.set(k, v.clone());
        }
        let m = load(&spec).unwrap();
        assert_eq!(
            m.model.config().rope_scaling,
            RopeScaling::Linear {
                factor: factor.into()
            }
        );
        let d = logits_diff(&m.model, dir.path());
        assert!(d < TOL, "{keys:?}: max |logit diff| = {d}");
    }
    let d = logits_diff(&load_tiny(dir.path(), DType::F32), dir.path());
    assert!(
        d < TOL,
        "config.json linear scaling: max |logit diff| = {d}"
    );
    // Type `none` ignores the factor (llama.cpp): the logits are the unscaled model's.
    let mut spec = tiny_gguf(dir.path());
    spec.set("qwen2.rope.scaling.type", Value::String("none".into()));
    spec.set("qwen2.rope.scaling.factor", Value::F32(factor));
    let m = load(&spec).unwrap();
    assert_eq!(m.model.config().rope_scaling, RopeScaling::None);
    let d = logits_diff(&m.model, dir.path());
    assert!(
        d > 100.0 * TOL,
        "linear scaling changes the logits by only {d}"
    );
}

#[test]
fn rope_freqs_compose_with_linear_factor() {
    // ggml divides each angle by its factor, then scales by 1 / linear factor.
    let dir = make_tiny_with("llama", 8, &["--rope-scaling", "llama3"]);
    let freqs = reference(dir.path(), "rope_freqs");
    let mut spec = tiny_gguf(dir.path());
    spec.tensors
        .push(("rope_freqs.weight".into(), freqs.clone()));
    spec.set("llama.rope.scaling.factor", Value::F32(2.0));
    let m = load(&spec).unwrap();
    let want: Vec<f64> = reference(dir.path(), "inv_freq")
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .map(|f| f / 2.0)
        .collect();
    for (g, w) in m.model.config().inv_freq().iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w, "{g} vs {w}");
    }
}

#[test]
fn no_op_rope_metadata_is_accepted() {
    let dir = make_tiny("llama", 9);
    for (key, value) in [
        ("llama.rope.scaling.type", Value::String("linear".into())),
        ("llama.rope.scaling.factor", Value::F32(1.0)),
        ("llama.rope.scaling.factor", Value::F32(0.0)),
        ("llama.rope.scaling.attn_factor", Value::F32(1.0)),
        ("llama.rope.scaling.type", Value::String("none".into())),
    ] {
        let mut spec = tiny_gguf(dir.path());
        spec.set(key, value.clone());
        let m = load(&spec).unwrap();
        assert_eq!(m.model.config().rope_scaling, RopeScaling::None, "{key}");
        let d = logits_diff(&m.model, dir.path());
        assert!(d < TOL, "{key} = {value:?}: max |logit diff| = {d}");
    }
}

/// Asserts `e` is `Unsupported` for `key` = `value`, its message names both, and the supported
/// values mention `supported`.
fn assert_unsupported(e: &ModelError, key: &str, value: &str, supported: &str) {
    let msg = e.to_string();
    match e {
        ModelError::Unsupported {
            key: k,
            value: v,
            supported: s,
        } => {
            assert_eq!((k.as_str(), v.as_str()), (key, value), "{msg}");
            assert!(s.contains(supported), "{msg}");
        }
        other => panic!("expected Unsupported for {key}, got {other}"),
    }
    assert!(msg.contains(key) && msg.contains(value), "{msg}");
}

#[test]
fn unsupported_rope_metadata_is_refused() {
    let dir = make_tiny("llama", 10);
    let cases = [
        (
            "llama.rope.scaling.type",
            Value::String("yarn".into()),
            "yarn",
            "linear",
        ),
        (
            "llama.rope.scaling.type",
            Value::String("longrope".into()),
            "longrope",
            "none",
        ),
        (
            "llama.rope.scaling.attn_factor",
            Value::F32(0.5),
            "0.5",
            "1",
        ),
        ("llama.rope.dimension_count", Value::U32(4), "4", "8"),
        (
            "llama.rope.scaling.factor",
            Value::F32(-2.0),
            "-2",
            "positive",
        ),
        (
            "llama.rope.scaling.yarn_log_multiplier",
            Value::F32(0.1),
            "0.1",
            "llama.rope.scaling.type",
        ),
    ];
    for (key, v, value, supported) in cases {
        let mut spec = tiny_gguf(dir.path());
        spec.set(key, v);
        assert_unsupported(&load_err(&spec), key, value, supported);
    }
}

#[test]
fn bad_or_unknown_gguf_tensors_are_refused() {
    let dir = make_tiny("llama", 11);
    let bad = [
        ("rope_freqs.weight", vec![1f32, 2.0, 4.0], "3 values"),
        (
            "rope_freqs.weight",
            vec![1f32, 2.0, 0.0, 4.0],
            "not a positive",
        ),
        ("blk.0.attn_q_norm.weight", vec![1f32; 8], "not a tensor of"),
    ];
    for (name, values, reason) in bad {
        let mut spec = tiny_gguf(dir.path());
        let t = Tensor::new(values.as_slice(), &Device::Cpu).unwrap();
        spec.tensors.push((name.into(), t));
        match load_err(&spec) {
            ModelError::GgufTensor { name: n, reason: r } => {
                assert_eq!(n, name);
                assert!(r.contains(reason), "{name}: {r}");
            }
            other => panic!("{name}: expected GgufTensor, got {other}"),
        }
    }
}

#[test]
fn unknown_or_missing_pre_tokenizer_is_refused() {
    let dir = make_tiny("qwen2", 12);
    let mut spec = tiny_gguf(dir.path());
    spec.set("tokenizer.ggml.pre", Value::String("tekken".into()));
    let e = load_err(&spec);
    for name in recode_model::tokenizer::SUPPORTED_GGUF_PRE {
        assert_unsupported(&e, "tokenizer.ggml.pre", "tekken", name);
    }
    spec.remove("tokenizer.ggml.pre");
    assert_unsupported(&load_err(&spec), "tokenizer.ggml.pre", "<missing>", "qwen2");
    // Every supported name loads.
    for name in recode_model::tokenizer::SUPPORTED_GGUF_PRE {
        spec.set("tokenizer.ggml.pre", Value::String(name.into()));
        assert!(load(&spec).is_ok(), "{name}");
    }
}

#[test]
fn unsupported_config_json_rope_type_is_refused() {
    let mut v: serde_json::Value = serde_json::from_str(
        r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 2}"#,
    )
    .unwrap();
    v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    let e = ModelConfig::from_hf_value(&v, std::path::Path::new("config.json")).unwrap_err();
    assert_unsupported(&e, "config.json: rope_scaling.rope_type", "yarn", "llama3");
}
