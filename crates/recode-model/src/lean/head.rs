//! The lean output head: log-probabilities (and entropy) of target tokens a chunk of rows at a
//! time, without materialising the full logits.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::{read, with_grad, CResult, Real};
use crate::error::{ModelError, Result};

/// Rows of logits materialised at once by [`head_logprobs`] (≈ 32 MB of f32).
const HEAD_CHUNK_ELEMS: usize = 1 << 23;

/// Per row of logits `z` `[m, V]`: (log p(target), entropy).
fn head_rows_real<T: Real>(z: &Tensor, tg: &[u32], ent: bool) -> CResult<(Tensor, Option<Tensor>)> {
    let v = z.dim(1)?;
    let (lp, en): (Vec<T>, Vec<T>) = read::<T, _>(z, |zs| {
        zs.par_chunks(v)
            .zip(tg.par_iter())
            .map(|(row, &t)| {
                let mx = row.iter().fold(T::NEG_INF, |a, &b| a.maxf(b));
                let (mut sum, mut sz) = (T::ZERO, T::ZERO);
                for &x in row {
                    let e = (x - mx).exp();
                    sum += e;
                    if ent {
                        sz += e * (x - mx);
                    }
                }
                let lse = sum.ln();
                // H = -Σ p log p = lse - Σ p (z - max), over the shifted logits.
                (row[t as usize] - mx - lse, lse - sz / sum)
            })
            .unzip()
    })?;
    let dev = z.device();
    let n = lp.len();
    Ok((
        Tensor::from_vec(lp, n, dev)?,
        if ent {
            Some(Tensor::from_vec(en, n, dev)?)
        } else {
            None
        },
    ))
}

/// `coef_i (onehot(target_i) - softmax(z_i))` for each row of `z` `[m, V]`.
fn head_grad_real<T: Real>(z: &Tensor, tg: &[u32], coef: &Tensor) -> CResult<Tensor> {
    let (m, v) = z.dims2()?;
    let out = read::<T, _>(z, |zs| {
        read::<T, _>(coef, |cs| {
            let mut out = vec![T::ZERO; zs.len()];
            out.par_chunks_mut(v)
                .zip(zs.par_chunks(v))
                .zip(tg.par_iter().zip(cs.par_iter()))
                .for_each(|((o, row), (&t, &c))| {
                    let mx = row.iter().fold(T::NEG_INF, |a, &b| a.maxf(b));
                    let mut sum = T::ZERO;
                    for (o, &x) in o.iter_mut().zip(row) {
                        *o = (x - mx).exp();
                        sum += *o;
                    }
                    let k = T::ZERO - c / sum;
                    for o in o.iter_mut() {
                        *o *= k;
                    }
                    o[t as usize] += c;
                });
            out
        })
    })??;
    Tensor::from_vec(out, (m, v), z.device())
}

/// Log-probabilities of `targets` `[N]` under `softmax(h W^T / temperature)` for `h` `[N, H]` and
/// `W` `[V, H]`, computed a chunk of rows at a time with logsumexp and gather (the full `[N, V]`
/// logits never exist). The backward recomputes each chunk's logits. Returns `[N]` log-probs and,
/// when asked, the (detached) entropy `[N]`.
pub(crate) fn head_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (n, _) = h.dims2()?;
    let v = w.dim(0)?;
    let dt = h.dtype();
    let rows = (HEAD_CHUNK_ELEMS / v.max(1)).clamp(1, n.max(1));
    let inv_t = 1.0 / temperature;
    let hd = h.detach();
    let wd = w.detach();
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    let tgv: Arc<Vec<u32>> = Arc::new(targets.to_vec1()?);
    if let Some(&bad) = tgv.iter().find(|&&t| t as usize >= v) {
        return Err(ModelError::TokenOutOfRange {
            token: bad,
            vocab: v,
        });
    }
    let logits_of = move |h: &Tensor, w: &Tensor, s: usize, m: usize| -> CResult<Tensor> {
        let z = h.narrow(0, s, m)?.matmul(&w.t()?)?;
        if inv_t == 1.0 {
            Ok(z)
        } else {
            z * inv_t
        }
    };
    let mut lps = Vec::new();
    let mut ents = Vec::new();
    for s in (0..n).step_by(rows) {
        let m = rows.min(n - s);
        let z = logits_of(&hd, &wd, s, m)?;
        let tg = &tgv[s..s + m];
        let (lp, ent) = match dt {
            DType::F32 => head_rows_real::<f32>(&z, tg, with_entropy)?,
            DType::F64 => head_rows_real::<f64>(&z, tg, with_entropy)?,
            _ => {
                let max = z.max_keepdim(1)?;
                let zs = z.broadcast_sub(&max)?;
                let lse = zs.exp()?.sum_keepdim(1)?.log()?; // of the shifted logits
                let tg = targets.narrow(0, s, m)?.unsqueeze(1)?;
                let lp = (zs.gather(&tg, 1)? - &lse)?.squeeze(1)?;
                let ent = if with_entropy {
                    let p = zs.broadcast_sub(&lse)?.exp()?;
                    Some((lse.squeeze(1)? - (p * &zs)?.sum(1)?)?)
                } else {
                    None
                };
                (lp, ent)
            }
        };
        lps.push(lp);
        ents.extend(ent);
    }
    let value = Tensor::cat(&lps, 0)?;
    let entropy = if with_entropy {
        Some(Tensor::cat(&ents, 0)?)
    } else {
        None
    };
    drop((lps, ents));
    let (h_tracked, w_tracked) = (h.track_op(), w.track_op());
    let lp = with_grad("lean-head-logprobs", value, &[h, w], move |args, _, g| {
        let (h, w) = (&args[0], &args[1]);
        let mut gh = Vec::new();
        let mut gw: Option<Tensor> = None;
        for s in (0..n).step_by(rows) {
            let m = rows.min(n - s);
            let z = logits_of(h, w, s, m)?;
            let coef = (g.narrow(0, s, m)? * inv_t)?.contiguous()?; // [m]
                                                                    // d lp / d z = coef · (onehot(target) - p); z = h W^T / T.
            let dz = match dt {
                DType::F32 => head_grad_real::<f32>(&z, &tgv[s..s + m], &coef)?,
                DType::F64 => head_grad_real::<f64>(&z, &tgv[s..s + m], &coef)?,
                _ => {
                    let tg = targets.narrow(0, s, m)?;
                    let p = candle_nn::ops::softmax_last_dim(&z)?;
                    let coef = coef.unsqueeze(1)?;
                    let onehot =
                        p.zeros_like()?
                            .scatter_add(&tg.unsqueeze(1)?, &coef.ones_like()?, 1)?;
                    (onehot - p)?.broadcast_mul(&coef)?
                }
            };
            drop(z);
            if h_tracked {
                gh.push(dz.matmul(w)?);
            }
            if w_tracked {
                let part = dz.t()?.matmul(&h.narrow(0, s, m)?)?;
                gw = Some(match gw {
                    Some(acc) => (acc + part)?,
                    None => part,
                });
            }
        }
        let gh = if gh.is_empty() {
            None
        } else {
            Some(Tensor::cat(&gh, 0)?)
        };
        Ok(vec![gh, gw])
    })?;
    Ok((lp, entropy))
}
