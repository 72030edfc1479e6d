//! Finite-difference gradient checks of every trainable tensor (base weights and LoRA/DoRA adapters)
//! through `token_logprobs`, plus adapter merge/unmerge, enable/disable and PEFT save/load.

mod common;

use candle_core::{DType, Tensor, Var};
use common::*;
use recode_model::{AdapterConfig, AdapterKind, CausalLM, ForwardOpts, LogitsMode};

fn all_targets() -> Vec<String> {
    recode_model::model::PROJECTIONS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn adapter_cfg(kind: AdapterKind) -> AdapterConfig {
    AdapterConfig {
        kind,
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        target_modules: all_targets(),
        use_rslora: false,
    }
}

/// Weighted sum of token log-probs: a scalar loss touching every parameter.
fn loss(model: &CausalLM, ids: &Tensor, mask: &Tensor, w: &Tensor, grad: bool) -> Tensor {
    let opts = ForwardOpts {
        grad,
        train: false,
        use_adapters: true,
    };
    let lp = model
        .token_logprobs(ids, Some(mask), 0.7, false, opts)
        .unwrap();
    (lp.logprobs * w).unwrap().sum_all().unwrap()
}

fn check_grads(arch: &str, kind: AdapterKind) {
    let dir = make_tiny(arch, 11);
    let (ids, mask, _) = expected(dir.path());
    let mut model = load_tiny(dir.path(), DType::F64);
    model.add_adapters(&adapter_cfg(kind), 1).unwrap();
    model.set_dora_detach_norm(false);
    randomise_b(&model);
    let mut vars: Vec<(String, Var)> = model.adapter_vars();
    vars.extend(model.make_base_trainable().unwrap());
    let (b, t) = ids.dims2().unwrap();
    let w = Tensor::randn(0.0f64, 1.0, (b, t - 1), &candle_core::Device::Cpu)
        .unwrap()
        .mul(
            &mask
                .narrow(1, 1, t - 1)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap(),
        )
        .unwrap()
        // Padding query positions attend to nothing real: their outputs are unused garbage.
        .mul(
            &mask
                .narrow(1, 0, t - 1)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap(),
        )
        .unwrap();
    let l = loss(&model, &ids, &mask, &w, true);
    let grads = l.backward().unwrap();
    let eps = 1e-5;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{arch} {kind:?}: no gradient for {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let n = g.len();
        // Three elements per tensor: first, middle and the one with the largest gradient.
        let big = (0..n)
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        for idx in [0, n / 2, big] {
            let orig = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let eval = |delta: f64| {
                let mut p = orig.clone();
                p[idx] += delta;
                var.set(&Tensor::from_vec(p, var.dims(), var.device()).unwrap())
                    .unwrap();
                loss(&model, &ids, &mask, &w, false)
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig, var.dims(), var.device()).unwrap())
                .unwrap();
            let tol = 1e-5 + 1e-4 * fd.abs().max(g[idx].abs());
            if (fd - g[idx]).abs() >= tol {
                failures.push(format!(
                    "{name}[{idx}]: backprop {} vs finite difference {fd}",
                    g[idx]
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{arch} {kind:?}:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 3 * vars.len());
}

#[test]
fn llama_lora_and_base_gradients_match_finite_differences() {
    check_grads("llama", AdapterKind::Lora);
}

#[test]
fn qwen2_dora_and_base_gradients_match_finite_differences() {
    check_grads("qwen2", AdapterKind::Dora);
}

fn logits(model: &CausalLM, ids: &Tensor, mask: &Tensor, o: ForwardOpts) -> Tensor {
    model
        .forward(ids, Some(mask), None, LogitsMode::All, o)
        .unwrap()
}

fn maxdiff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn adapters_merge_disable_and_peft_round_trip() {
    for kind in [AdapterKind::Lora, AdapterKind::Dora] {
        let dir = make_tiny("qwen2", 2);
        let (ids, mask, _) = expected(dir.path());
        let mut model = load_tiny(dir.path(), DType::F32);
        let base = logits(&model, &ids, &mask, ForwardOpts::INFERENCE);
        let cfg = adapter_cfg(kind);
        model.add_adapters(&cfg, 5).unwrap();
        // Fresh adapters are the identity.
        assert!(maxdiff(&logits(&model, &ids, &mask, ForwardOpts::INFERENCE), &base) < 1e-5);
        randomise_b(&model);
        let adapted = logits(&model, &ids, &mask, ForwardOpts::INFERENCE);
        assert!(
            maxdiff(&adapted, &base) > 1e-2,
            "{kind:?}: adapter has no effect"
        );
        // Disabled adapters give the base model (the KL reference).
        assert!(maxdiff(&logits(&model, &ids, &mask, ForwardOpts::REFERENCE), &base) < 1e-6);
        // Merge gives the same function; disable still gives the base; unmerge restores.
        model.merge_adapters().unwrap();
        assert!(
            maxdiff(
                &logits(&model, &ids, &mask, ForwardOpts::INFERENCE),
                &adapted
            ) < 1e-4
        );
        assert!(maxdiff(&logits(&model, &ids, &mask, ForwardOpts::REFERENCE), &base) < 1e-6);
        model.unmerge_adapters().unwrap();
        assert!(
            maxdiff(
                &logits(&model, &ids, &mask, ForwardOpts::INFERENCE),
                &adapted
            ) < 1e-5
        );
        // PEFT layout round trip into a fresh model.
        let out = tempfile::tempdir().unwrap();
        model.save_adapters(out.path(), &cfg, "tiny").unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["use_dora"], kind == AdapterKind::Dora);
        let saved = candle_core::safetensors::load(
            out.path().join("adapter_model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert!(saved.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"));
        assert_eq!(
            saved.contains_key(
                "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"
            ),
            kind == AdapterKind::Dora
        );
        let mut fresh = load_tiny(dir.path(), DType::F32);
        let loaded = fresh.load_adapters(out.path()).unwrap();
        assert_eq!(loaded, cfg);
        assert!(
            maxdiff(
                &logits(&fresh, &ids, &mask, ForwardOpts::INFERENCE),
                &adapted
            ) < 1e-6
        );
    }
}
