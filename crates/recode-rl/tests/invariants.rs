//! Correctness invariants of the policy loss on a tiny differentiable policy
//! (bigram softmax, f64): micro-batch split invariance, REINFORCE equivalence,
//! zero KL at the reference, completion-only masks, finite-difference gradients.

use candle_core::{Device, Tensor};
use recode_rl::config::{KlEstimator, LossType};
use recode_rl::loss::{policy_loss, LossInputs, LossParams, Normaliser};
use recode_rl::tiny::BigramPolicy;
use recode_rl::trainer::{batch_gradients, build_batch};
use recode_rl::{Completion, Policy, TokenBatch};

const ALL_LOSS_TYPES: [LossType; 3] = [
    LossType::TokenMean,
    LossType::SeqMeanTokenSum,
    LossType::SeqMeanTokenMean,
];

/// Seven sequences of different prompt/completion lengths (so padding exists).
fn fixture(policy: &BigramPolicy) -> (TokenBatch, Tensor, Tensor, Tensor) {
    let prompts: Vec<Vec<u32>> = vec![
        vec![1],
        vec![2, 3],
        vec![4],
        vec![5, 1, 2],
        vec![3],
        vec![1, 1],
        vec![2],
    ];
    let comps: Vec<Vec<u32>> = vec![
        vec![3, 3, 0],
        vec![1, 2, 3, 4, 5],
        vec![0],
        vec![2, 2],
        vec![5, 4, 3, 2],
        vec![3],
        vec![1, 3, 5, 0],
    ];
    let cs: Vec<Completion> = comps
        .into_iter()
        .map(|tokens| Completion {
            tokens,
            text: String::new(),
            truncated: false,
        })
        .collect();
    let seqs: Vec<(&[u32], &Completion)> =
        prompts.iter().map(Vec::as_slice).zip(cs.iter()).collect();
    let batch = build_batch(&seqs, false, &Device::Cpu).unwrap();
    let cur = policy
        .token_logprobs(&batch, false)
        .unwrap()
        .logprobs
        .detach();
    // Old log-probs shifted by a deterministic pattern so ratios span both clip sides.
    let (b, t) = cur.dims2().unwrap();
    let shift: Vec<f64> = (0..b * t)
        .map(|i| 0.45 * ((i * 7 % 11) as f64 / 10.0 - 0.5))
        .collect();
    let old = (&cur + Tensor::from_vec(shift, (b, t), &Device::Cpu).unwrap()).unwrap();
    // Reference differs from the current policy by another pattern.
    let rshift: Vec<f64> = (0..b * t)
        .map(|i| 0.3 * ((i * 5 % 7) as f64 / 6.0 - 0.5))
        .collect();
    let rf = (&cur + Tensor::from_vec(rshift, (b, t), &Device::Cpu).unwrap()).unwrap();
    let adv = Tensor::new(&[1.2f64, -0.7, 0.3, -1.5, 0.9, -0.2, 0.0], &Device::Cpu).unwrap();
    (batch, old, rf, adv)
}

fn params(lt: LossType, delta: Option<f64>, beta: f64, kl: KlEstimator) -> LossParams {
    LossParams {
        epsilon_low: 0.2,
        epsilon_high: 0.28,
        delta,
        beta,
        kl,
        loss_type: lt,
    }
}

fn grad_vec(g: &[Option<Tensor>]) -> Vec<f64> {
    g[0].as_ref()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn gradient_is_invariant_to_micro_batch_split() {
    let policy = BigramPolicy::new(6, 1.0, 7).unwrap();
    let (batch, old, rf, adv) = fixture(&policy);
    for lt in ALL_LOSS_TYPES {
        let p = params(lt, Some(3.0), 0.1, KlEstimator::K3);
        let (l_big, s_big, g_big) =
            batch_gradients(&policy, &batch, Some(&old), Some(&rf), &adv, &p, 7).unwrap();
        let g_big = grad_vec(&g_big);
        assert!(
            g_big.iter().any(|x| x.abs() > 1e-3),
            "gradient should be non-trivial"
        );
        assert!(s_big.clipped > 0.0, "fixture should exercise clipping");
        for mb in [1, 2, 3, 5] {
            let (l, s, g) =
                batch_gradients(&policy, &batch, Some(&old), Some(&rf), &adv, &p, mb).unwrap();
            let d = max_abs_diff(&g_big, &grad_vec(&g));
            assert!(d < 1e-6, "{lt:?} mb={mb}: grad diff {d}");
            assert!(
                (l - l_big).abs() < 1e-6,
                "{lt:?} mb={mb}: loss {l} vs {l_big}"
            );
            assert_eq!(s.tokens, s_big.tokens);
        }
    }
}

#[test]
fn on_policy_shortcut_equals_explicit_old_logprobs() {
    // μ = 1 skips the old-log-prob pass: the detached current log-probs must give the same
    // loss and gradient as log-probs from a separate no-grad pass of the same weights.
    let policy = BigramPolicy::new(6, 1.0, 5).unwrap();
    let (batch, _, rf, adv) = fixture(&policy);
    let old = policy.rollout_logprobs(&batch).unwrap();
    for lt in ALL_LOSS_TYPES {
        let p = params(lt, Some(3.0), 0.1, KlEstimator::K3);
        let (l1, s1, g1) =
            batch_gradients(&policy, &batch, Some(&old), Some(&rf), &adv, &p, 3).unwrap();
        let (l2, s2, g2) = batch_gradients(&policy, &batch, None, Some(&rf), &adv, &p, 3).unwrap();
        let d = max_abs_diff(&grad_vec(&g1), &grad_vec(&g2));
        assert!(d < 1e-12, "{lt:?}: grad diff {d}");
        assert!((l1 - l2).abs() < 1e-12, "{lt:?}: loss {l1} vs {l2}");
        assert_eq!(
            (s1.clipped, s2.clipped),
            (0.0, 0.0),
            "{lt:?}: ratio must be 1"
        );
    }
}

#[test]
fn beta_zero_single_update_equals_reinforce_with_group_baseline() {
    let policy = BigramPolicy::new(6, 1.0, 11).unwrap();
    let (batch, _, _, adv) = fixture(&policy);
    // μ = 1: old log-probs are the current ones (ratio 1, no clipping active).
    let old = policy
        .token_logprobs(&batch, false)
        .unwrap()
        .logprobs
        .detach();
    let mask = &batch
        .completion_mask
        .to_dtype(candle_core::DType::F64)
        .unwrap();
    let adv_v = adv.to_vec1::<f64>().unwrap();
    for lt in ALL_LOSS_TYPES {
        let p = params(lt, Some(10.0), 0.0, KlEstimator::K3);
        let (_, _, g) = batch_gradients(&policy, &batch, Some(&old), None, &adv, &p, 3).unwrap();
        // REINFORCE surrogate: −Σ_i A_i · w_i · Σ_t log π(o_it), weights per aggregation.
        let lp = policy.token_logprobs(&batch, false).unwrap().logprobs;
        let lens = mask.sum(1).unwrap().to_vec1::<f64>().unwrap();
        let n_tok: f64 = lens.iter().sum();
        let n_seq = lens.len() as f64;
        let w: Vec<f64> = adv_v
            .iter()
            .zip(&lens)
            .map(|(a, l)| match lt {
                LossType::TokenMean => a / n_tok,
                LossType::SeqMeanTokenSum => a / n_seq,
                LossType::SeqMeanTokenMean => a / (l * n_seq),
            })
            .collect();
        let w = Tensor::new(w, &Device::Cpu).unwrap().unsqueeze(1).unwrap();
        let surrogate = (lp * mask)
            .unwrap()
            .broadcast_mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        let gr = surrogate.backward().unwrap();
        let g_ref = gr
            .get(policy.table().as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let d = max_abs_diff(&grad_vec(&g), &g_ref);
        assert!(d < 1e-12, "{lt:?}: REINFORCE gradient differs by {d}");
    }
}

#[test]
fn kl_is_zero_when_policy_equals_reference() {
    // A fresh policy equals its reference (as zero-initialised adapters do).
    let policy = BigramPolicy::new(6, 1.0, 3).unwrap();
    let (batch, old, _, adv) = fixture(&policy);
    let rf = policy.reference_logprobs(&batch).unwrap();
    for kl in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
        let (_, s, g_kl) = batch_gradients(
            &policy,
            &batch,
            Some(&old),
            Some(&rf),
            &adv,
            &params(LossType::TokenMean, None, 0.5, kl),
            7,
        )
        .unwrap();
        assert_eq!(s.kl_sum, 0.0, "{kl:?}");
        if kl != KlEstimator::K1 {
            // k2 and k3 also have zero gradient at π = π_ref (k1's gradient is 1 per token).
            let (_, _, g0) = batch_gradients(
                &policy,
                &batch,
                Some(&old),
                Some(&rf),
                &adv,
                &params(LossType::TokenMean, None, 0.0, kl),
                7,
            )
            .unwrap();
            assert!(
                max_abs_diff(&grad_vec(&g_kl), &grad_vec(&g0)) < 1e-14,
                "{kl:?}"
            );
        }
    }
}

#[test]
fn masks_cover_completion_tokens_only() {
    let p1: &[u32] = &[7, 8];
    let p2: &[u32] = &[9];
    let c1 = Completion {
        tokens: vec![1, 2],
        text: String::new(),
        truncated: false,
    };
    let c2 = Completion {
        tokens: vec![3, 4, 5],
        text: String::new(),
        truncated: true,
    };
    let b = build_batch(&[(p1, &c1), (p2, &c2)], false, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        [[7, 8, 1, 2], [9, 3, 4, 5]]
    );
    assert_eq!(
        b.completion_mask.to_vec2::<f32>().unwrap(),
        [[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]]
    );
    let b = build_batch(&[(p1, &c1), (p2, &c2), (p2, &c1)], true, &Device::Cpu).unwrap();
    assert_eq!(
        b.completion_mask.to_vec2::<f32>().unwrap(),
        [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 1.0, 0.0]
        ]
    );
    // Garbage at masked positions (prompt, padding) does not change loss or gradient.
    let policy = BigramPolicy::new(6, 1.0, 5).unwrap();
    let (batch, old, rf, adv) = fixture(&policy);
    let off = batch
        .completion_mask
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .affine(-1e3, 1e3)
        .unwrap();
    let junk_old = (&off + &old).unwrap();
    let junk_rf = (&off + &rf).unwrap();
    for lt in ALL_LOSS_TYPES {
        let p = params(lt, Some(3.0), 0.1, KlEstimator::K3);
        let (l0, _, g0) =
            batch_gradients(&policy, &batch, Some(&old), Some(&rf), &adv, &p, 7).unwrap();
        let (l1, _, g1) = batch_gradients(
            &policy,
            &batch,
            Some(&junk_old),
            Some(&junk_rf),
            &adv,
            &p,
            3,
        )
        .unwrap();
        assert!((l0 - l1).abs() < 1e-12, "{lt:?}: {l0} vs {l1}");
        assert!(
            max_abs_diff(&grad_vec(&g0), &grad_vec(&g1)) < 1e-12,
            "{lt:?}"
        );
    }
}

#[test]
fn loss_gradient_matches_finite_differences() {
    // Old/reference log-probs come from a different random policy, so ratios ≠ 1.
    let (batch, old, rf, adv) = fixture(&BigramPolicy::new(6, 0.8, 13).unwrap());
    let policy = BigramPolicy::new(6, 0.8, 17).unwrap();
    for lt in ALL_LOSS_TYPES {
        let p = params(lt, Some(3.0), 0.2, KlEstimator::K3);
        let (_, _, g) =
            batch_gradients(&policy, &batch, Some(&old), Some(&rf), &adv, &p, 7).unwrap();
        let g = grad_vec(&g);
        let loss_at = |table: &Tensor| -> f64 {
            policy.table().set(table).unwrap();
            let out = policy.token_logprobs(&batch, false).unwrap();
            let inp = LossInputs {
                logprobs: &out.logprobs,
                old_logprobs: &old,
                ref_logprobs: Some(&rf),
                advantages: &adv,
                mask: &batch.completion_mask,
                entropy: None,
            };
            let norm = Normaliser::from_mask(&batch.completion_mask).unwrap();
            policy_loss(&inp, &p, &norm)
                .unwrap()
                .0
                .to_scalar::<f64>()
                .unwrap()
        };
        let base = policy.table().as_tensor().copy().unwrap();
        let flat = base.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let h = 1e-6;
        for i in 0..flat.len() {
            let mut plus = flat.clone();
            plus[i] += h;
            let mut minus = flat.clone();
            minus[i] -= h;
            let fp = loss_at(&Tensor::from_vec(plus, (6, 6), &Device::Cpu).unwrap());
            let fm = loss_at(&Tensor::from_vec(minus, (6, 6), &Device::Cpu).unwrap());
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "{lt:?} param {i}: finite diff {fd} vs autograd {}",
                g[i]
            );
        }
        policy.table().set(&base).unwrap();
    }
}
