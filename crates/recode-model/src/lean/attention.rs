//! Lean causal grouped-query attention: blockwise softmax probabilities recomputed in the
//! backward pass, so no `[B, H, T, L]` tensor is kept.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

use super::{read, with_grad, CResult, Real};
use crate::error::{ModelError, Result};

/// Row softmax of `s + bias` where row `i` of `s` `[rows, L]` takes bias row `i % T`.
fn biased_softmax_real<T: Real>(s: &Tensor, bias: &Tensor, t: usize) -> CResult<Tensor> {
    let shape = s.shape().clone();
    let l = s.dim(D::Minus1)?;
    let out = read::<T, _>(s, |ss| {
        read::<T, _>(bias, |bs| {
            let mut out = vec![T::ZERO; ss.len()];
            out.par_chunks_mut(l)
                .zip(ss.par_chunks(l))
                .enumerate()
                .for_each(|(i, (o, row))| {
                    let br = &bs[(i % t) * l..][..l];
                    let mut mx = T::NEG_INF;
                    for ((o, &v), &b) in o.iter_mut().zip(row).zip(br) {
                        *o = v + b;
                        mx = mx.maxf(*o);
                    }
                    let mut sum = T::ZERO;
                    for o in o.iter_mut() {
                        *o = (*o - mx).exp();
                        sum += *o;
                    }
                    let inv = T::ONE / sum;
                    for o in o.iter_mut() {
                        *o *= inv;
                    }
                });
            out
        })
    })??;
    Tensor::from_vec(out, shape, s.device())
}

/// Softmax probabilities of one batch row: `q` `[KVH, rep*T, D]` (already scaled), `k`
/// `[KVH, L, D]`, `bias` `[1, T, L]` (0 or a large negative number) → `[KVH, rep*T, L]`.
fn probs(q: &Tensor, k: &Tensor, bias: &Tensor, h: usize) -> CResult<Tensor> {
    let (kvh, rt, _) = q.dims3()?;
    let l = k.dim(1)?;
    let t = rt * kvh / h;
    let s = q.matmul(&k.t()?)?;
    match s.dtype() {
        DType::F32 => return biased_softmax_real::<f32>(&s, bias, t),
        DType::F64 => return biased_softmax_real::<f64>(&s, bias, t),
        _ => {}
    }
    let s = s.reshape((h, t, l))?.broadcast_add(bias)?;
    candle_nn::ops::softmax_last_dim(&s)?.reshape((kvh, rt, l))
}

/// Softmax backward `p ⊙ (dp - Σ_d go ⊙ o)`, rows of `p`/`dp` `[rows, L]`, `go`/`o` `[rows, D]`.
fn softmax_grad_real<T: Real>(p: &Tensor, dp: &Tensor, go: &Tensor, o: &Tensor) -> CResult<Tensor> {
    let shape = p.shape().clone();
    let l = p.dim(D::Minus1)?;
    let d = go.dim(D::Minus1)?;
    let out = read::<T, _>(p, |ps| {
        read::<T, _>(dp, |dps| {
            read::<T, _>(go, |gos| {
                read::<T, _>(o, |os| {
                    let mut out = vec![T::ZERO; ps.len()];
                    out.par_chunks_mut(l)
                        .zip(ps.par_chunks(l).zip(dps.par_chunks(l)))
                        .enumerate()
                        .for_each(|(i, (out, (pr, dpr)))| {
                            let mut delta = T::ZERO;
                            for (&a, &b) in gos[i * d..][..d].iter().zip(&os[i * d..][..d]) {
                                delta += a * b;
                            }
                            for ((o, &p), &dp) in out.iter_mut().zip(pr).zip(dpr) {
                                *o = p * (dp - delta);
                            }
                        });
                    out
                })
            })
        })
    })????;
    Tensor::from_vec(out, shape, p.device())
}

/// Query rows per block of the attention kernel (about 8 blocks per sequence): the keys after a
/// block's last query are masked, so they are skipped (almost half of the attention FLOPs).
fn query_block(t: usize) -> usize {
    t.div_ceil(8).max(4).min(t.max(1))
}

/// Causal grouped-query attention without cache: `q` `[B, H, T, D]`, `k` `[B, KVH, Lr, D]`, `v`
/// the value projection `[B, Lr, KVH*D]`, `bias` `[B, 1, T, L]` (causal, last query at key
/// `L-1`) → `[B, T, H*D]`. With a `prefix` (`[1, KVH, P, D]` keys and `[1, P, KVH*D]` values
/// shared by every row, e.g. a group's prompt), each row attends to the prefix's positions
/// first, `L = P + Lr`: the prefix is put in front one row at a time, so no `[B, KVH, L, D]`
/// copy is made or kept, and its gradients are summed over the rows. Computed one batch row and
/// one block of queries at a time; the backward pass recomputes the probabilities the same way,
/// so no `[B, H, T, L]` tensor is ever kept.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    prefix: Option<(&Tensor, &Tensor)>,
    bias: &Tensor,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (_, kvh, own, _) = k.dims4()?;
    let p_len = match prefix {
        Some((pk, _)) => pk.dim(2)?,
        None => 0,
    };
    let l = p_len + own;
    if l < t {
        return Err(ModelError::Input(format!(
            "attention: {l} keys for {t} queries"
        )));
    }
    let rep = h / kvh;
    let scale = 1.0 / (d as f64).sqrt();
    let qb = query_block(t);
    // (first query, queries, keys seen by the block's last query)
    let blocks: Arc<Vec<(usize, usize, usize)>> = Arc::new(
        (0..t)
            .step_by(qb)
            .map(|q0| {
                let n = qb.min(t - q0);
                (q0, n, l - t + q0 + n)
            })
            .collect(),
    );
    // Values [rows, len, KVH*D] as [rows, KVH, len, D].
    let split_v = move |v: &Tensor| -> CResult<Tensor> {
        let (rows, len, _) = v.dims3()?;
        v.reshape((rows, len, kvh, d))?
            .transpose(1, 2)?
            .contiguous()
    };
    // Row r's keys and values [KVH, L, D]: the prefix's, then its own.
    let row_kv = move |k: &Tensor, v: &Tensor, pre: &Option<(Tensor, Tensor)>, r: usize| {
        let (kr, vr) = (k.get(r)?, v.get(r)?);
        match pre {
            Some((pk, pv)) => Ok::<_, candle_core::Error>((
                Tensor::cat(&[&pk.get(0)?, &kr], 1)?,
                Tensor::cat(&[&pv.get(0)?, &vr], 1)?,
            )),
            None => Ok((kr, vr)),
        }
    };
    // Queries q0..q0+n of [H, T, D] as [KVH, rep*n, D], scaled.
    let q_block = move |qr: &Tensor, q0: usize, n: usize| -> CResult<Tensor> {
        qr.narrow(1, q0, n)?
            .contiguous()?
            .reshape((kvh, rep * n, d))?
            * scale
    };
    // Rows q0..q0+n of [T, H*D] as [KVH, rep*n, D].
    let o_block = move |x: &Tensor, q0: usize, n: usize| -> CResult<Tensor> {
        x.narrow(0, q0, n)?
            .reshape((n, h, d))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((kvh, rep * n, d))
    };
    let qd = q.detach();
    let kd = k.detach();
    let vd = split_v(&v.detach())?;
    let pre = match prefix {
        Some((pk, pv)) => Some((pk.detach(), split_v(&pv.detach())?)),
        None => None,
    };
    let mut ys = Vec::with_capacity(b);
    for r in 0..b {
        let (qr, br) = (qd.get(r)?, bias.get(r)?);
        let (kr, vr) = row_kv(&kd, &vd, &pre, r)?;
        let mut yb = Vec::with_capacity(blocks.len());
        for &(q0, n, kl) in blocks.iter() {
            let qs = q_block(&qr, q0, n)?;
            let bb = br.narrow(1, q0, n)?.narrow(2, 0, kl)?;
            let p = probs(&qs, &kr.narrow(1, 0, kl)?, &bb, h)?;
            yb.push(p.matmul(&vr.narrow(1, 0, kl)?)?.reshape((h, n, d))?);
        }
        let y = Tensor::cat(&yb, 1)?.transpose(0, 1)?;
        ys.push(y.contiguous()?.reshape((t, h * d))?);
    }
    let value = Tensor::stack(&ys, 0)?;
    drop((ys, vd, qd, kd, pre));
    let bias = bias.clone();
    let mut args = vec![q, k, v];
    if let Some((pk, pv)) = prefix {
        args.extend([pk, pv]);
    }
    let tracked: Vec<bool> = args.iter().map(|a| a.track_op()).collect();
    let has_prefix = prefix.is_some();
    with_grad("lean-attention", value, &args, move |args, res, g| {
        let (q, k) = (&args[0], &args[1]);
        let v = split_v(&args[2])?;
        let pre = if has_prefix {
            Some((args[3].clone(), split_v(&args[4])?))
        } else {
            None
        };
        let (k_grad, v_grad) = (
            tracked[1] || tracked.get(3) == Some(&true),
            tracked[2] || tracked.get(4) == Some(&true),
        );
        let (mut gq, mut gk, mut gv) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..b {
            let (qr, br) = (q.get(r)?, bias.get(r)?);
            let (kr, vr) = row_kv(k, &v, &pre, r)?;
            let (gr, or) = (g.get(r)?, res.get(r)?);
            let mut dq = Vec::with_capacity(blocks.len());
            let mut dk: Option<Tensor> = None;
            let mut dv: Option<Tensor> = None;
            let acc = |acc: &mut Option<Tensor>, part: Tensor, kl: usize| -> CResult<()> {
                let part = part.pad_with_zeros(1, 0, l - kl)?;
                *acc = Some(match acc.take() {
                    Some(a) => (a + part)?,
                    None => part,
                });
                Ok(())
            };
            for &(q0, n, kl) in blocks.iter() {
                let qs = q_block(&qr, q0, n)?;
                let kk = kr.narrow(1, 0, kl)?;
                let vv = vr.narrow(1, 0, kl)?;
                let bb = br.narrow(1, q0, n)?.narrow(2, 0, kl)?;
                let p = probs(&qs, &kk, &bb, h)?; // [KVH, rep*n, kl]
                let go = o_block(&gr, q0, n)?;
                let o = o_block(&or, q0, n)?;
                if v_grad {
                    acc(&mut dv, p.t()?.matmul(&go)?, kl)?; // [KVH, kl, D]
                }
                let dp = go.matmul(&vv.t()?)?;
                let ds = match dp.dtype() {
                    DType::F32 => softmax_grad_real::<f32>(&p, &dp, &go, &o)?,
                    DType::F64 => softmax_grad_real::<f64>(&p, &dp, &go, &o)?,
                    _ => {
                        let delta = (&go * &o)?.sum_keepdim(D::Minus1)?;
                        (p * dp.broadcast_sub(&delta)?)?
                    }
                };
                if tracked[0] {
                    dq.push((ds.matmul(&kk)? * scale)?.reshape((h, n, d))?);
                }
                if k_grad {
                    acc(&mut dk, ds.t()?.matmul(&qs)?, kl)?;
                }
            }
            if tracked[0] {
                gq.push(Tensor::cat(&dq, 1)?);
            }
            if let Some(dk) = dk {
                gk.push(dk);
            }
            if let Some(dv) = dv {
                gv.push(dv.transpose(0, 1)?.contiguous()?.reshape((l, kvh * d))?);
            }
        }
        let st = |v: Vec<Tensor>| -> CResult<Option<Tensor>> {
            if v.is_empty() {
                Ok(None)
            } else {
                Tensor::stack(&v, 0).map(Some)
            }
        };
        let gq = st(gq)?;
        if !has_prefix {
            return Ok(vec![gq, st(gk)?, st(gv)?]);
        }
        // Every row's gradient over [prefix, own] positions (dim `dim`): the own part as is, the
        // prefix's summed over the rows.
        let split = |full: Option<Tensor>, dim: usize, own_t: bool, pre_t: bool| {
            let Some(full) = full else {
                return Ok::<_, candle_core::Error>((None, None));
            };
            let own_g = own_t.then(|| full.narrow(dim, p_len, own)).transpose()?;
            let pre_g = pre_t
                .then(|| full.narrow(dim, 0, p_len)?.contiguous()?.sum_keepdim(0))
                .transpose()?;
            Ok((own_g, pre_g))
        };
        let (gk, gpk) = split(st(gk)?, 2, tracked[1], tracked[3])?;
        let (gv, gpv) = split(st(gv)?, 1, tracked[2], tracked[4])?;
        Ok(vec![gq, gk, gv, gpk, gpv])
    })
}
