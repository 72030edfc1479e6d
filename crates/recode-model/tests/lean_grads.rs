//! The memory-lean training kernels and layer-wise activation checkpointing give the gradients of
//! plain candle autograd (tiny random Llama / Qwen2 configs in f64), including adapter dropout,
//! whose masks the checkpoint recomputation replays.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use recode_model::{AdapterConfig, AdapterKind, CausalLM, ForwardOpts};

fn adapter_cfg(kind: AdapterKind, dropout: f32) -> AdapterConfig {
    adapter_on(kind, dropout, &recode_model::model::PROJECTIONS)
}

fn adapter_on(kind: AdapterKind, dropout: f32, targets: &[&str]) -> AdapterConfig {
    AdapterConfig {
        kind,
        r: 2,
        alpha: 4.0,
        dropout,
        target_modules: targets.iter().map(|s| s.to_string()).collect(),
        use_rslora: false,
    }
}

/// Per-token weights for the loss, zero where the position or its target is padding.
fn loss_weights(mask: &Tensor) -> Tensor {
    let (b, t) = mask.dims2().unwrap();
    let m = mask.to_dtype(DType::F64).unwrap();
    Tensor::randn(0.0f64, 1.0, (b, t - 1), &Device::Cpu)
        .unwrap()
        .mul(&m.narrow(1, 1, t - 1).unwrap())
        .unwrap()
        .mul(&m.narrow(1, 0, t - 1).unwrap())
        .unwrap()
}

/// A tiny random `arch` model in f64 with LoRA (random B) on every projection, and its adapter
/// variables (the temp dir must outlive the model's use).
fn tiny_lora(arch: &str, seed: u64) -> (tempfile::TempDir, CausalLM, Vec<(String, Var)>) {
    let dir = make_tiny(arch, seed);
    let mut model = load_tiny(dir.path(), DType::F64);
    model
        .add_adapters(&adapter_cfg(AdapterKind::Lora, 0.0), 3)
        .unwrap();
    randomise_b(&model);
    let vars = model.adapter_vars();
    (dir, model, vars)
}

/// `[B, T]` f64: 1 from column `start` on, 0 before (the completion part of each row).
fn from_column(b: usize, t: usize, start: usize) -> Tensor {
    Tensor::arange(0u32, t as u32, &Device::Cpu)
        .unwrap()
        .ge(start as u32)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .broadcast_as((b, t))
        .unwrap()
        .contiguous()
        .unwrap()
}

/// (loss, log-probs, gradient of every var) for one forward/backward.
fn run(
    model: &CausalLM,
    ids: &Tensor,
    mask: &Tensor,
    w: &Tensor,
    vars: &[(String, Var)],
    o: ForwardOpts,
) -> (f64, Vec<f64>, Vec<Vec<f64>>) {
    let lp = model
        .token_logprobs(ids, Some(mask), 0.7, false, o)
        .unwrap()
        .logprobs;
    let loss = (&lp * w).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = var_grads::<f64>(&grads, vars);
    let lp = (lp * w.ne(0.0).unwrap().to_dtype(DType::F64).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    (loss.to_scalar::<f64>().unwrap(), lp, g)
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> (f64, f64) {
    let mut worst = 0.0f64;
    let mut scale = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs());
            scale = scale.max(p.abs());
        }
    }
    (worst, scale)
}

fn compare(arch: &str, kind: AdapterKind, full: bool) {
    compare_on(arch, kind, full, &recode_model::model::PROJECTIONS)
}

fn compare_on(arch: &str, kind: AdapterKind, full: bool, targets: &[&str]) {
    let dir = make_tiny(arch, 21);
    let (ids, mask, _) = expected(dir.path());
    let mut model = load_tiny(dir.path(), DType::F64);
    model
        .add_adapters(&adapter_on(kind, 0.0, targets), 3)
        .unwrap();
    model.set_dora_detach_norm(false);
    randomise_b(&model);
    let mut vars = model.adapter_vars();
    if full {
        vars.extend(model.make_base_trainable().unwrap());
    }
    let w = loss_weights(&mask);
    let o = ForwardOpts::TRAIN;
    let what = format!("{arch} {kind:?} full={full}");

    model.set_lean_kernels(false);
    let (l_ref, lp_ref, g_ref) = run(&model, &ids, &mask, &w, &vars, o);
    // Entropies: the composed head (gradient forward, plain kernels) vs the chunked one.
    let keep = w.ne(0.0).unwrap().to_dtype(DType::F64).unwrap();
    let entropy = |model: &CausalLM, o: ForwardOpts| -> Vec<f64> {
        let e = model
            .token_logprobs(&ids, Some(&mask), 0.7, true, o)
            .unwrap()
            .entropy
            .unwrap();
        (e * &keep)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let e_ref = entropy(&model, o);
    model.set_lean_kernels(true);
    let (l_lean, lp_lean, g_lean) = run(&model, &ids, &mask, &w, &vars, o);
    model.set_activation_checkpointing(true);
    let (l_ck, lp_ck, g_ck) = run(&model, &ids, &mask, &w, &vars, o);
    let e_ck = entropy(&model, o);
    model.set_activation_checkpointing(false);
    let e_inf = entropy(&model, ForwardOpts::INFERENCE);
    for (e, mode) in [(e_ck, "checkpointed"), (e_inf, "inference")] {
        let (d, scale) = max_diff(std::slice::from_ref(&e_ref), &[e]);
        assert!(
            scale > 0.1 && d < 1e-9,
            "{what}: {mode} entropy differs by {d}"
        );
    }

    assert!((l_ref - l_lean).abs() < 1e-9, "{what}: lean loss");
    assert!((l_ref - l_ck).abs() < 1e-9, "{what}: checkpointed loss");
    let (d, _) = max_diff(std::slice::from_ref(&lp_ref), &[lp_lean]);
    assert!(d < 1e-9, "{what}: lean log-probs differ by {d}");
    let (d, _) = max_diff(&[lp_ref], &[lp_ck]);
    assert!(d < 1e-9, "{what}: checkpointed log-probs differ by {d}");
    let (d, scale) = max_diff(&g_ref, &g_lean);
    assert!(scale > 1e-3, "{what}: trivial gradients");
    assert!(d < 1e-5, "{what}: lean gradients differ by {d}");
    let (d, _) = max_diff(&g_ref, &g_ck);
    assert!(d < 1e-5, "{what}: checkpointed gradients differ by {d}");
}

#[test]
fn llama_lora_lean_and_checkpointed_gradients_equal_autograd() {
    compare("llama", AdapterKind::Lora, false);
}

#[test]
fn qwen2_lora_lean_and_checkpointed_gradients_equal_autograd() {
    compare("qwen2", AdapterKind::Lora, false);
}

/// Adapters on the attention only: the frozen MLP runs as one fused lean node.
#[test]
fn attention_lora_with_fused_frozen_mlp_equals_autograd() {
    for arch in ["llama", "qwen2"] {
        compare_on(
            arch,
            AdapterKind::Lora,
            false,
            &["q_proj", "k_proj", "v_proj", "o_proj"],
        );
    }
}

#[test]
fn qwen2_dora_lean_and_checkpointed_gradients_equal_autograd() {
    compare("qwen2", AdapterKind::Dora, false);
}

#[test]
fn llama_full_finetune_lean_and_checkpointed_gradients_equal_autograd() {
    compare("llama", AdapterKind::Lora, true);
}

/// With dropout the masks are a function of the dropout seed: the checkpointed backward replays
/// them (same gradients as without checkpointing), and the gradients match finite differences of
/// the loss under the same masks.
#[test]
fn adapter_dropout_is_replayed_by_checkpointing() {
    for kind in [AdapterKind::Lora, AdapterKind::Dora] {
        let dir = make_tiny("llama", 8);
        let (ids, mask, _) = expected(dir.path());
        let mut model = load_tiny(dir.path(), DType::F64);
        model.add_adapters(&adapter_cfg(kind, 0.3), 4).unwrap();
        // The true derivative (PEFT's detached DoRA norm is not what finite differences see).
        model.set_dora_detach_norm(false);
        randomise_b(&model);
        let vars = model.adapter_vars();
        let w = loss_weights(&mask);
        let o = ForwardOpts::TRAIN;
        let mut eval = |ckpt: bool| {
            model.set_activation_checkpointing(ckpt);
            model.set_dropout_seed(Some(99));
            run(&model, &ids, &mask, &w, &vars, o)
        };
        let (l_plain, _, g_plain) = eval(false);
        let (l_ck, _, g_ck) = eval(true);
        assert!((l_plain - l_ck).abs() < 1e-9, "{kind:?}: loss");
        let (d, _) = max_diff(&g_plain, &g_ck);
        assert!(
            d < 1e-5,
            "{kind:?}: checkpointed dropout gradients differ by {d}"
        );

        // Dropout is active: a different seed gives a different loss.
        model.set_dropout_seed(Some(100));
        let (l_other, _, _) = run(&model, &ids, &mask, &w, &vars, o);
        assert!(
            (l_other - l_plain).abs() > 1e-6,
            "{kind:?}: dropout inactive"
        );

        // Finite differences under the same masks (seed reset before every loss).
        model.set_activation_checkpointing(true);
        let loss_at = |model: &mut CausalLM| {
            model.set_dropout_seed(Some(99));
            let lp = model
                .token_logprobs(&ids, Some(&mask), 0.7, false, o)
                .unwrap()
                .logprobs;
            (lp * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        for (vi, (name, var)) in vars.iter().enumerate().step_by(5) {
            let orig = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let g = &g_ck[vi];
            let idx = (0..g.len())
                .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                .unwrap();
            let mut at = |delta: f64| {
                let mut p = orig.clone();
                p[idx] += delta;
                var.set(&Tensor::from_vec(p, var.dims(), var.device()).unwrap())
                    .unwrap();
                loss_at(&mut model)
            };
            let eps = 1e-5;
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig, var.dims(), var.device()).unwrap())
                .unwrap();
            let tol = 1e-6 + 1e-4 * fd.abs().max(g[idx].abs());
            assert!(
                (fd - g[idx]).abs() < tol,
                "{kind:?} {name}[{idx}]: backprop {} vs finite difference {fd}",
                g[idx]
            );
        }
    }
}

/// Scoring only some positions (`scored_logprobs`, what RL does with the completion mask) gives
/// the full pass's values there, zeros elsewhere, and the gradient of the same masked loss, with
/// the lean kernels (which skip the unscored positions in the output projection) and without.
#[test]
fn scored_positions_give_the_masked_values_and_gradients() {
    let (dir, mut model, vars) = tiny_lora("llama", 23);
    let (ids, mask, _) = expected(dir.path());
    let (b, t) = ids.dims2().unwrap();
    // Score the second half of each row only (like a completion after its prompt).
    let score = (from_column(b, t, t / 2) * mask.to_dtype(DType::F64).unwrap()).unwrap();
    let w = (loss_weights(&mask) * score.narrow(1, 1, t - 1).unwrap()).unwrap();
    let o = ForwardOpts::TRAIN;
    for lean in [false, true] {
        model.set_lean_kernels(lean);
        let (_, lp_full, g_full) = run(&model, &ids, &mask, &w, &vars, o);
        let out = model
            .scored_logprobs(&ids, Some(&mask), Some(&score), 0.7, true, o)
            .unwrap();
        let loss = (&out.logprobs * &w).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Vec<f64>> = vars
            .iter()
            .map(|(_, v)| {
                let g = grads.get(v.as_tensor()).unwrap();
                g.flatten_all().unwrap().to_vec1::<f64>().unwrap()
            })
            .collect();
        let lp: Vec<f64> = out.logprobs.flatten_all().unwrap().to_vec1().unwrap();
        let keep: Vec<f64> = w
            .ne(0.0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let unscored: Vec<f64> = score
            .narrow(1, 1, t - 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, &v) in lp.iter().enumerate() {
            if unscored[i] == 0.0 {
                assert_eq!(v, 0.0, "lean={lean}: unscored position {i} is {v}");
            } else if keep[i] != 0.0 {
                assert!((v - lp_full[i]).abs() < 1e-12, "lean={lean}: position {i}");
            }
        }
        let (d, scale) = max_diff(&g_full, &g);
        assert!(
            scale > 1e-6 && d < 1e-10 * scale.max(1.0),
            "lean={lean}: gradients differ by {d}"
        );
        let e = out.entropy.unwrap();
        let e0 = (e
            * (score
                .narrow(1, 1, t - 1)
                .unwrap()
                .affine(-1.0, 1.0)
                .unwrap()))
        .unwrap();
        assert_eq!(
            e0.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            0.0
        );
    }
}

/// Rows that share a prompt (and the first tokens after it), as a group of rollouts does: running
/// the shared prefix once gives the log-probs, entropies and gradients of the plain pass, with the
/// lean and the plain kernels, and the same log-probs in the graph-free reference pass.
#[test]
fn shared_prefix_gives_the_plain_values_and_gradients() {
    for arch in ["llama", "qwen2"] {
        let (_dir, mut model, vars) = tiny_lora(arch, 29);
        let vocab = model.config().vocab_size as u64;
        // 4 rows: 20 prompt tokens and 2 completion tokens in common, then 9 of their own.
        let (b, prompt, common, t) = (4usize, 20usize, 22usize, 31usize);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab) as u32
        };
        let shared: Vec<u32> = (0..common).map(|_| next()).collect();
        let mut ids = Vec::with_capacity(b * t);
        for _ in 0..b {
            ids.extend_from_slice(&shared);
            ids.extend((common..t).map(|_| next()));
        }
        let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu).unwrap();
        let score = from_column(b, t, prompt);
        let w = (Tensor::randn(0.0f64, 1.0, (b, t - 1), &Device::Cpu).unwrap()
            * score.narrow(1, 1, t - 1).unwrap())
        .unwrap();
        let pass = |model: &CausalLM, o: ForwardOpts| {
            let out = model
                .scored_logprobs(&ids, None, Some(&score), 0.7, true, o)
                .unwrap();
            let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let (lp, ent) = (flat(&out.logprobs), flat(out.entropy.as_ref().unwrap()));
            let grads = if o.grad {
                let g = (&out.logprobs * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                vars.iter()
                    .map(|(_, v)| flat(g.get(v.as_tensor()).unwrap()))
                    .collect()
            } else {
                Vec::new()
            };
            (lp, ent, grads)
        };
        for lean in [false, true] {
            model.set_lean_kernels(lean);
            for o in [ForwardOpts::TRAIN, ForwardOpts::REFERENCE] {
                model.set_prefix_sharing(false);
                assert_eq!(model.shared_prefix_len(&ids).unwrap(), None);
                let (lp0, ent0, g0) = pass(&model, o);
                model.set_prefix_sharing(true);
                assert_eq!(model.shared_prefix_len(&ids).unwrap(), Some(common));
                let (lp1, ent1, g1) = pass(&model, o);
                let what = format!("{arch} lean={lean} grad={}", o.grad);
                let (d, scale) = max_diff(&[lp0, ent0], &[lp1, ent1]);
                assert!(scale > 0.1 && d < 1e-12, "{what}: log-probs differ by {d}");
                if o.grad {
                    let (d, scale) = max_diff(&g0, &g1);
                    assert!(
                        scale > 1e-6 && d < 1e-10 * scale.max(1.0),
                        "{what}: gradients differ by {d}"
                    );
                }
            }
        }
    }
}
