//! AdamW with decoupled weight decay (PyTorch `torch.optim.AdamW` semantics),
//! HF-style learning-rate schedules and global gradient-norm clipping.
//! Optimizer moments and step count are exportable for checkpoints.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use crate::config::{LrSchedulerType, TrainConfig};
use crate::RlError;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay λ (p ← p − lr·λ·p).
    pub weight_decay: f64,
}

impl From<&TrainConfig> for AdamWParams {
    fn from(c: &TrainConfig) -> Self {
        AdamWParams {
            beta1: c.adam_beta1,
            beta2: c.adam_beta2,
            eps: c.adam_epsilon,
            weight_decay: c.weight_decay,
        }
    }
}

/// AdamW over a fixed, named list of variables.
#[derive(Debug)]
pub struct AdamW {
    params: AdamWParams,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
}

impl AdamW {
    /// An optimizer with zero moments for `vars`.
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> candle_core::Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(AdamW {
            params,
            v: m.clone(),
            m,
            vars,
            step: 0,
        })
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The variables being optimised.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update with learning rate `lr` and `grads` aligned with [`AdamW::vars`]
    /// (`None` = no gradient: the variable only decays, moments decay as with g = 0).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> candle_core::Result<()> {
        let AdamWParams {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2 = 1.0 - beta2.powi(t);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let g = match &grads[i] {
                Some(g) => g.clone(),
                None => var.as_tensor().zeros_like()?,
            };
            self.m[i] = (self.m[i].affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?;
            self.v[i] = (self.v[i].affine(beta2, 0.0)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?;
            let denom = self.v[i].affine(1.0 / bc2, 0.0)?.sqrt()?.affine(1.0, eps)?;
            let upd = (self.m[i].affine(1.0 / bc1, 0.0)? / denom)?;
            let decayed = var.as_tensor().affine(1.0 - lr * weight_decay, 0.0)?;
            var.set(&(decayed - upd.affine(lr, 0.0)?)?)?;
        }
        Ok(())
    }

    /// Moments as named tensors (`m.NAME`, `v.NAME`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments and step count written by [`AdamW::state_tensors`].
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: u64,
    ) -> Result<(), RlError> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (slot, key) in [
                (&mut self.m[i], format!("m.{name}")),
                (&mut self.v[i], format!("v.{name}")),
            ] {
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| RlError::OptimizerStateMissing { key: key.clone() })?;
                if t.shape() != var.shape() {
                    return Err(RlError::OptimizerStateShape {
                        key,
                        state: t.dims().to_vec(),
                        variable: var.dims().to_vec(),
                    });
                }
                *slot = t.to_dtype(var.dtype())?.to_device(var.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Adds the gradients of `vars` in `store` into `acc` (aligned with `vars`).
pub fn accumulate_grads(
    acc: &mut [Option<Tensor>],
    store: &GradStore,
    vars: &[(String, Var)],
) -> candle_core::Result<()> {
    for (slot, (_, var)) in acc.iter_mut().zip(vars) {
        if let Some(g) = store.get(var.as_tensor()) {
            // Detached: a gradient still attached to its graph would keep the whole
            // micro-batch's activations alive until the optimizer step.
            let g = g.detach();
            *slot = Some(match slot.take() {
                Some(prev) => (prev + g)?.detach(),
                None => g,
            });
        }
    }
    Ok(())
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (PyTorch
/// `clip_grad_norm_`: coefficient max_norm / (norm + 1e-6) when below 1).
/// Returns the norm before clipping. `max_norm <= 0` only measures.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> candle_core::Result<f64> {
    let mut sq = 0.0;
    for g in grads.iter().flatten() {
        sq += g
            .to_dtype(candle_core::DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if max_norm > 0.0 && coef < 1.0 {
        for g in grads.iter_mut().flatten() {
            *g = g.affine(coef, 0.0)?;
        }
    }
    Ok(norm)
}

/// Learning rate for optimizer step `step` (0-based), as HF's schedulers compute it:
/// linear warm-up over ceil(warmup_ratio·max_steps) steps, then constant, linear or
/// cosine decay to 0 at `max_steps`.
pub fn lr_at(step: usize, cfg: &TrainConfig) -> f64 {
    let total = cfg.max_steps as f64;
    let warmup = (cfg.warmup_ratio * total).ceil();
    let s = step as f64;
    let factor = if s < warmup {
        s / warmup.max(1.0)
    } else {
        let progress = (s - warmup) / (total - warmup).max(1.0);
        match cfg.lr_scheduler_type {
            LrSchedulerType::Constant => 1.0,
            LrSchedulerType::Linear => (1.0 - progress).max(0.0),
            LrSchedulerType::Cosine => {
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    };
    cfg.learning_rate * factor
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algo;
    use candle_core::Device;

    /// Independent scalar AdamW (the PyTorch formula written out element-wise).
    #[allow(clippy::too_many_arguments)]
    fn adamw_ref(
        p: &mut [f64],
        m: &mut [f64],
        v: &mut [f64],
        g: &[f64],
        t: i32,
        lr: f64,
        h: AdamWParams,
    ) {
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * h.weight_decay;
            m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
            v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
            let mh = m[i] / (1.0 - h.beta1.powi(t));
            let vh = v[i] / (1.0 - h.beta2.powi(t));
            p[i] -= lr * mh / (vh.sqrt() + h.eps);
        }
    }

    #[test]
    fn adamw_matches_the_pytorch_formula_over_three_steps() {
        let h = AdamWParams {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let init = [0.5, -1.0, 2.0];
        let var = Var::new(&init, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], h).unwrap();
        let (mut p, mut m, mut v) = (init.to_vec(), vec![0.0; 3], vec![0.0; 3]);
        let grads = [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.0, 0.2]];
        for (k, g) in grads.iter().enumerate() {
            let lr = 0.01 * (k + 1) as f64;
            opt.step(&[Some(Tensor::new(g, &Device::Cpu).unwrap())], lr)
                .unwrap();
            adamw_ref(&mut p, &mut m, &mut v, g, k as i32 + 1, lr, h);
        }
        let got = var.as_tensor().to_vec1::<f64>().unwrap();
        for i in 0..3 {
            assert!((got[i] - p[i]).abs() < 1e-12, "{got:?} vs {p:?}");
        }
        // First step of Adam moves each coordinate by ≈ lr·sign(g) (plus decay).
        assert_eq!(opt.step_count(), 3);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let h = AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mk = || Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let g = Tensor::new(&[0.3f64, -0.1], &Device::Cpu).unwrap();
        let (a, b) = (mk(), mk());
        let mut oa = AdamW::new(vec![("x".into(), a.clone())], h).unwrap();
        oa.step(&[Some(g.clone())], 0.1).unwrap();
        b.set(a.as_tensor()).unwrap();
        let mut ob = AdamW::new(vec![("x".into(), b.clone())], h).unwrap();
        ob.load_state(&oa.state_tensors(), oa.step_count()).unwrap();
        oa.step(&[Some(g.clone())], 0.1).unwrap();
        ob.step(&[Some(g)], 0.1).unwrap();
        assert_eq!(
            a.as_tensor().to_vec1::<f64>().unwrap(),
            b.as_tensor().to_vec1::<f64>().unwrap()
        );
        assert!(ob.load_state(&HashMap::new(), 1).is_err());
    }

    #[test]
    fn grad_clipping_scales_to_max_norm() {
        let mut g = vec![
            Some(Tensor::new(&[3.0f64, 0.0], &Device::Cpu).unwrap()),
            None,
            Some(Tensor::new(&[4.0f64], &Device::Cpu).unwrap()),
        ];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-12);
        let a = g[0].as_ref().unwrap().to_vec1::<f64>().unwrap();
        assert!((a[0] - 3.0 / (5.0 + 1e-6)).abs() < 1e-12);
        let n2 = clip_grad_norm(&mut g, 10.0).unwrap();
        assert!((n2 - 5.0 / (5.0 + 1e-6)).abs() < 1e-9);
    }

    #[test]
    fn schedules_follow_hf_formulas() {
        let mut c = TrainConfig::preset(Algo::Grpo);
        c.max_steps = 100;
        c.warmup_ratio = 0.1;
        c.learning_rate = 1.0;
        assert_eq!(lr_at(0, &c), 0.0);
        assert!((lr_at(5, &c) - 0.5).abs() < 1e-12);
        assert!((lr_at(10, &c) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, &c) - 0.5).abs() < 1e-12); // cosine midpoint
        assert!(lr_at(100, &c).abs() < 1e-12);
        c.lr_scheduler_type = LrSchedulerType::Linear;
        assert!((lr_at(55, &c) - 0.5).abs() < 1e-12);
        c.lr_scheduler_type = LrSchedulerType::Constant;
        assert_eq!(lr_at(99, &c), 1.0);
    }
}
