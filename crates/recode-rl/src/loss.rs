//! Token-level clipped policy loss with KL penalty and loss aggregation.
//!
//! Per completion token t of sequence i, with ρ = exp(log π_θ − log π_old):
//!
//! ```text
//! pg   = max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high))      (PPO/DAPO clip-higher)
//! pg   = min(pg, −c·A)            if A < 0 and delta=c  (dual clip, verl/TRL)
//! loss = pg + β·KL_k(π_θ, π_ref)
//! ```
//!
//! Aggregation divides by counts over the whole optimizer mini-batch
//! ([`Normaliser`]), not per micro-batch, so summing micro-batch gradients gives
//! exactly the gradient of the big batch.

use candle_core::{DType, Tensor};

use crate::config::{KlEstimator, LossType, TrainConfig};

/// Loss hyper-parameters (a view of [`TrainConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParams {
    /// ε_low.
    pub epsilon_low: f64,
    /// ε_high.
    pub epsilon_high: f64,
    /// Dual-clip c (None = off).
    pub delta: Option<f64>,
    /// KL coefficient β.
    pub beta: f64,
    /// KL estimator.
    pub kl: KlEstimator,
    /// Aggregation mode.
    pub loss_type: LossType,
}

impl From<&TrainConfig> for LossParams {
    fn from(c: &TrainConfig) -> Self {
        LossParams {
            epsilon_low: c.epsilon,
            epsilon_high: c.epsilon_high,
            delta: c.delta,
            beta: c.beta,
            kl: c.kl_estimator,
            loss_type: c.loss_type,
        }
    }
}

/// Global counts of the optimizer mini-batch the loss is normalised by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normaliser {
    /// Completion tokens (mask sum) in the whole mini-batch.
    pub tokens: f64,
    /// Sequences in the whole mini-batch.
    pub seqs: f64,
}

impl Normaliser {
    /// Counts of the full mini-batch `mask` (`[B, T]`).
    pub fn from_mask(mask: &Tensor) -> candle_core::Result<Self> {
        Ok(Normaliser {
            tokens: mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?,
            seqs: mask.dim(0)? as f64,
        })
    }
}

/// Inputs of one micro-batch; all `[B, T]` except `advantages` (`[B]`).
#[derive(Debug, Clone, Copy)]
pub struct LossInputs<'a> {
    /// Current log-probs (with grad).
    pub logprobs: &'a Tensor,
    /// Log-probs at rollout time (detached).
    pub old_logprobs: &'a Tensor,
    /// Reference log-probs (needed when β > 0).
    pub ref_logprobs: Option<&'a Tensor>,
    /// Per-sequence advantages.
    pub advantages: &'a Tensor,
    /// Completion mask (1 = token counts).
    pub mask: &'a Tensor,
    /// Optional per-token entropy (metrics only).
    pub entropy: Option<&'a Tensor>,
}

/// Sums over completion tokens of one micro-batch, addable across micro-batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossStats {
    /// Completion tokens seen.
    pub tokens: f64,
    /// Tokens where the ε clip was active (gradient cut).
    pub clipped: f64,
    /// Tokens where the dual clip was active.
    pub dual_clipped: f64,
    /// Sum of per-token KL estimates.
    pub kl_sum: f64,
    /// Sum of per-token entropies (0 without an entropy hook).
    pub entropy_sum: f64,
    /// Sum of |log ρ| (how far the policy moved since rollout).
    pub abs_log_ratio_sum: f64,
}

impl LossStats {
    /// Adds another micro-batch's sums.
    pub fn add(&mut self, o: &LossStats) {
        self.tokens += o.tokens;
        self.clipped += o.clipped;
        self.dual_clipped += o.dual_clipped;
        self.kl_sum += o.kl_sum;
        self.entropy_sum += o.entropy_sum;
        self.abs_log_ratio_sum += o.abs_log_ratio_sum;
    }
    /// Sum divided by tokens (0 when empty).
    pub fn per_token(&self, sum: f64) -> f64 {
        if self.tokens > 0.0 {
            sum / self.tokens
        } else {
            0.0
        }
    }
}

/// Per-token KL estimate of KL(π_θ ‖ π_ref) from log-probs (any shape).
pub fn kl_estimate(
    logprobs: &Tensor,
    ref_logprobs: &Tensor,
    kind: KlEstimator,
) -> candle_core::Result<Tensor> {
    let d = (ref_logprobs - logprobs)?;
    match kind {
        KlEstimator::K1 => d.neg(),
        KlEstimator::K2 => d.sqr()?.affine(0.5, 0.0),
        KlEstimator::K3 => (d.exp()? - d)?.affine(1.0, -1.0),
    }
}

/// Loss of one micro-batch (scalar, differentiable) and its statistics.
pub fn policy_loss(
    inp: &LossInputs<'_>,
    p: &LossParams,
    norm: &Normaliser,
) -> candle_core::Result<(Tensor, LossStats)> {
    let dtype = inp.logprobs.dtype();
    let shape = inp.logprobs.shape().clone();
    let adv = inp
        .advantages
        .to_dtype(dtype)?
        .unsqueeze(1)?
        .broadcast_as(&shape)?
        .contiguous()?;
    let mask = inp.mask.to_dtype(dtype)?;
    // Values at masked positions (prompt, padding) may be anything, even ±inf: select
    // zeros there before any arithmetic so they can reach neither loss nor gradient.
    let keep = inp.mask.ne(0.0)?;
    let zeros = inp.logprobs.zeros_like()?;
    let safe = |t: &Tensor| keep.where_cond(&t.to_dtype(dtype)?, &zeros);
    let logprobs = safe(inp.logprobs)?;
    let log_ratio = (&logprobs - safe(inp.old_logprobs)?)?;
    let ratio = log_ratio.exp()?;
    let clipped = ratio.clamp(1.0 - p.epsilon_low, 1.0 + p.epsilon_high)?;
    let l_unclipped = (&ratio * &adv)?.neg()?;
    let l_clipped = (&clipped * &adv)?.neg()?;
    let mut pg = l_unclipped.maximum(&l_clipped)?;
    let neg_adv = adv.lt(0.0)?.to_dtype(dtype)?;
    let mut dual_active = None;
    if let Some(c) = p.delta {
        let cap = adv.affine(-c, 0.0)?;
        let capped = pg.minimum(&cap)?;
        dual_active = Some((pg.gt(&cap)?.to_dtype(dtype)? * &neg_adv)?);
        pg = (&pg + (&neg_adv * (capped - &pg)?)?)?;
    }
    let mut per_token = pg;
    let kl = match (p.beta > 0.0, inp.ref_logprobs) {
        (true, Some(r)) => {
            let kl = kl_estimate(&logprobs, &safe(r)?, p.kl)?;
            per_token = (per_token + kl.affine(p.beta, 0.0)?)?;
            Some(kl)
        }
        (true, None) => candle_core::bail!("beta > 0 but no reference log-probs were given"),
        (false, r) => r
            .map(|r| kl_estimate(&logprobs, &safe(r)?, p.kl))
            .transpose()?,
    };
    let masked = (per_token * &mask)?;
    let loss = match p.loss_type {
        LossType::TokenMean => masked.sum_all()?.affine(1.0 / norm.tokens.max(1.0), 0.0)?,
        LossType::SeqMeanTokenSum => masked.sum_all()?.affine(1.0 / norm.seqs.max(1.0), 0.0)?,
        LossType::SeqMeanTokenMean => {
            let lens = mask.sum(1)?.clamp(1.0, f64::INFINITY)?;
            (masked.sum(1)? / lens)?
                .sum_all()?
                .affine(1.0 / norm.seqs.max(1.0), 0.0)?
        }
    };

    // Statistics (detached, host side).
    let msum = |t: &Tensor| -> candle_core::Result<f64> {
        safe(&t.detach())?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()
    };
    let pos_adv = adv.gt(0.0)?.to_dtype(dtype)?;
    let low = (ratio.lt(1.0 - p.epsilon_low)?.to_dtype(dtype)? * &neg_adv)?;
    let high = (ratio.gt(1.0 + p.epsilon_high)?.to_dtype(dtype)? * &pos_adv)?;
    let stats = LossStats {
        tokens: mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?,
        clipped: msum(&(low + high)?)?,
        dual_clipped: dual_active.as_ref().map(&msum).transpose()?.unwrap_or(0.0),
        kl_sum: kl.as_ref().map(&msum).transpose()?.unwrap_or(0.0),
        entropy_sum: inp.entropy.map(&msum).transpose()?.unwrap_or(0.0),
        abs_log_ratio_sum: msum(&log_ratio.abs()?)?,
    };
    Ok((loss, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t2(v: &[&[f64]]) -> Tensor {
        let rows: Vec<Vec<f64>> = v.iter().map(|r| r.to_vec()).collect();
        Tensor::new(rows, &Device::Cpu).unwrap()
    }

    fn params(lt: LossType, delta: Option<f64>, beta: f64) -> LossParams {
        LossParams {
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            delta,
            beta,
            kl: KlEstimator::K3,
            loss_type: lt,
        }
    }

    /// Scalar reference of the per-token objective, written independently.
    fn per_token_ref(lp: f64, old: f64, a: f64, p: &LossParams, rf: f64) -> f64 {
        let r = (lp - old).exp();
        let rc = r.min(1.0 + p.epsilon_high).max(1.0 - p.epsilon_low);
        let mut pg = f64::max(-a * r, -a * rc);
        if let (Some(c), true) = (p.delta, a < 0.0) {
            pg = pg.min(-c * a);
        }
        let d = rf - lp;
        pg + p.beta * (d.exp() - d - 1.0)
    }

    #[test]
    fn loss_value_matches_scalar_reference_for_every_aggregation() {
        let lp = t2(&[&[0.0, -0.1, -3.0, -0.5], &[0.0, -2.0, -0.2, -0.9]]);
        let old = t2(&[&[0.0, -0.5, -0.1, -0.4], &[0.0, -0.1, -0.3, -0.9]]);
        let rf = t2(&[&[0.0, -0.3, -0.2, -0.6], &[0.0, -1.0, -0.3, -0.8]]);
        let mask = t2(&[&[0.0, 1.0, 1.0, 0.0], &[0.0, 1.0, 1.0, 1.0]]);
        let adv = Tensor::new(&[1.5f64, -2.0], &Device::Cpu).unwrap();
        let (lpv, oldv, rfv, mv) = (
            lp.to_vec2::<f64>().unwrap(),
            old.to_vec2::<f64>().unwrap(),
            rf.to_vec2::<f64>().unwrap(),
            mask.to_vec2::<f64>().unwrap(),
        );
        let av = [1.5, -2.0];
        for lt in [
            LossType::TokenMean,
            LossType::SeqMeanTokenSum,
            LossType::SeqMeanTokenMean,
        ] {
            for delta in [None, Some(3.0)] {
                let p = params(lt, delta, 0.04);
                let inp = LossInputs {
                    logprobs: &lp,
                    old_logprobs: &old,
                    ref_logprobs: Some(&rf),
                    advantages: &adv,
                    mask: &mask,
                    entropy: None,
                };
                let norm = Normaliser::from_mask(&mask).unwrap();
                assert_eq!(
                    norm,
                    Normaliser {
                        tokens: 5.0,
                        seqs: 2.0
                    }
                );
                let (loss, stats) = policy_loss(&inp, &p, &norm).unwrap();
                let mut seq_sums = vec![];
                let mut total = 0.0;
                for b in 0..2 {
                    let mut s = 0.0;
                    for t in 0..4 {
                        if mv[b][t] > 0.0 {
                            s += per_token_ref(lpv[b][t], oldv[b][t], av[b], &p, rfv[b][t]);
                        }
                    }
                    total += s;
                    seq_sums.push(s / mv[b].iter().sum::<f64>());
                }
                let want = match lt {
                    LossType::TokenMean => total / 5.0,
                    LossType::SeqMeanTokenSum => total / 2.0,
                    LossType::SeqMeanTokenMean => seq_sums.iter().sum::<f64>() / 2.0,
                };
                let got = loss.to_scalar::<f64>().unwrap();
                assert!(
                    (got - want).abs() < 1e-12,
                    "{lt:?} {delta:?}: {got} vs {want}"
                );
                assert_eq!(stats.tokens, 5.0);
                // token (0,2): ratio e^-2.9 < 0.8 but A > 0 → not clipped; (1,1): ratio e^-1.9, A<0 → clipped.
                // (0,1): ratio e^0.4 = 1.49 > 1.28, A > 0 → clipped.
                assert_eq!(stats.clipped, 2.0);
                // dual clip: (1,1) has ratio 0.15 → no; none exceed 3.
                assert_eq!(stats.dual_clipped, 0.0);
            }
        }
    }

    #[test]
    fn dual_clip_caps_negative_advantage_loss() {
        let lp = t2(&[&[0.0, 3.0]]);
        let old = t2(&[&[0.0, 0.0]]);
        let mask = t2(&[&[0.0, 1.0]]);
        let adv = Tensor::new(&[-1.0f64], &Device::Cpu).unwrap();
        let inp = LossInputs {
            logprobs: &lp,
            old_logprobs: &old,
            ref_logprobs: None,
            advantages: &adv,
            mask: &mask,
            entropy: None,
        };
        let norm = Normaliser::from_mask(&mask).unwrap();
        let (l, s) =
            policy_loss(&inp, &params(LossType::TokenMean, Some(10.0), 0.0), &norm).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 10.0).abs() < 1e-12);
        assert_eq!(s.dual_clipped, 1.0);
        let (l, _) = policy_loss(&inp, &params(LossType::TokenMean, None, 0.0), &norm).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 3f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn kl_estimators_are_exactly_zero_when_policies_agree() {
        let lp = t2(&[&[-0.3, -1.7, -0.01]]);
        for k in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            let kl = kl_estimate(&lp, &lp.copy().unwrap(), k).unwrap();
            assert!(kl
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .all(|&x| x == 0.0));
        }
        let rf = t2(&[&[-0.5, -1.0, -0.01]]);
        let d: Vec<f64> = [-0.5 + 0.3, -1.0 + 1.7, 0.0].to_vec();
        let k3 = kl_estimate(&lp, &rf, KlEstimator::K3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let k2 = kl_estimate(&lp, &rf, KlEstimator::K2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let k1 = kl_estimate(&lp, &rf, KlEstimator::K1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..3 {
            assert!((k3[i] - (d[i].exp() - d[i] - 1.0)).abs() < 1e-12);
            assert!((k2[i] - d[i] * d[i] / 2.0).abs() < 1e-12);
            assert!((k1[i] + d[i]).abs() < 1e-12);
        }
    }
}
