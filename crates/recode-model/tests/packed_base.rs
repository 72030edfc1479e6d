//! A GGUF model keeps its frozen projections only in their packed blocks (QLoRA-style): the
//! dequantised blocks are bit for bit the dense weights they replace, and log-probabilities and
//! adapter gradients are the same with the base released as with it kept dense.

mod common;

use candle_core::{DType, Device, Tensor};
use recode_model::weights::load_gguf;
use recode_model::{load_model, AdapterConfig, AdapterKind, CausalLM, ForwardOpts};

#[test]
fn dequantised_blocks_are_the_dense_weights() {
    let g = load_gguf(
        std::path::Path::new(&common::gguf_path()),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert!(g.packed.len() >= 7 * 30, "{} packed", g.packed.len());
    for (name, p) in &g.packed {
        let dense = g.tensors[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let blocks = p.dequantize();
        assert_eq!(blocks.len(), dense.len(), "{name}");
        let differ = dense
            .iter()
            .zip(&blocks)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "{name}: {differ} values differ");
    }
}

/// LoRA on every projection with random `B`, so adapter and base paths both matter.
fn with_lora(model: &mut CausalLM) -> Vec<(String, candle_core::Var)> {
    let cfg = AdapterConfig {
        kind: AdapterKind::Lora,
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"]
            .map(String::from)
            .to_vec(),
        use_rslora: false,
    };
    model.add_adapters(&cfg, 11).unwrap();
    common::randomise_b(model);
    model.adapter_vars()
}

/// (log-probs, gradient of every adapter variable) of a weighted sum over a 2 x 40 batch.
fn logprobs_and_grads(
    model: &CausalLM,
    vars: &[(String, candle_core::Var)],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let ids: Vec<u32> = (0..80u32).map(|i| (i * 613 + 17) % 49152).collect();
    let ids = Tensor::from_vec(ids, (2, 40), &Device::Cpu).unwrap();
    let lp = model
        .token_logprobs(&ids, None, 0.7, false, ForwardOpts::TRAIN)
        .unwrap()
        .logprobs;
    let w = Tensor::arange(0f32, 78.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 39))
        .unwrap()
        .affine(0.01, -0.3)
        .unwrap();
    let grads = (&lp * w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = common::var_grads::<f32>(&grads, vars);
    (lp.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g)
}

#[test]
fn released_base_gives_the_dense_values_and_gradients() {
    let m = load_model(&common::gguf_path(), DType::F32, &Device::Cpu).unwrap();
    let mut released = m.model;
    // load_model released the base already: nothing left to free.
    assert_eq!(released.release_dense_base(), 0);
    let vars = with_lora(&mut released);
    // The clone shares the adapter variables; its base is dense again.
    let mut dense = released.clone();
    dense.clear_packed_weights().unwrap();
    assert!(!dense.has_packed_weights() && released.has_packed_weights());
    let mut again = dense.clone();
    let packed = load_gguf(
        std::path::Path::new(&common::gguf_path()),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
    .packed;
    again.attach_packed_weights(packed).unwrap();
    // 30 layers x 3.54 M projection weights of 4 bytes.
    assert_eq!(again.release_dense_base(), 30 * 3_538_944 * 4);
    drop(again);

    let (lp_r, g_r) = logprobs_and_grads(&released, &vars);
    let (lp_d, g_d) = logprobs_and_grads(&dense, &vars);
    // Same values, same products (dequantised blocks through the same gemm): exactly equal.
    assert_eq!(lp_r, lp_d);
    for ((name, _), (a, b)) in vars.iter().zip(g_r.iter().zip(&g_d)) {
        assert_eq!(a, b, "{name}");
    }
    // The gradients are not all zero (the comparison above means something).
    assert!(g_r.iter().flatten().any(|v| v.abs() > 1e-6));

    // Merging reads the released base; unmerging releases it again.
    released.merge_adapters().unwrap();
    dense.merge_adapters().unwrap();
    let merged = released.named_parameters().unwrap();
    let want = dense.named_parameters().unwrap();
    assert_eq!(merged.len(), released.parameter_count());
    for ((n, a), (_, b)) in merged.iter().zip(&want) {
        let (a, b) = (a.flatten_all().unwrap(), b.flatten_all().unwrap());
        assert_eq!(
            a.to_vec1::<f32>().unwrap(),
            b.to_vec1::<f32>().unwrap(),
            "{n}"
        );
    }
    released.unmerge_adapters().unwrap();
    assert_eq!(released.release_dense_base(), 0);
}
