//! Single-token decoding kernels on raw f32 buffers: rotary embedding of the new query/key rows
//! and grouped-query attention of one query per sequence over the KV cache.
//!
//! A decode step of a small model runs a few dozen tiny tensor ops per layer; done as generic
//! tensor ops (transposes, a batched gemm of one row, mask add, softmax) their fixed costs
//! dominate. These kernels compute the same maths in one pass per (sequence, head), in parallel,
//! reading the cache buffer in place. Used on CPU f32 inference only; the generic path remains
//! the reference, and the parity tests check cached decoding against the full forward.

use rayon::prelude::*;

/// Rotates `x` `[B, heads*D]` in place by the per-row angles whose cosines and sines are
/// `cos`/`sin` `[B, D/2]` (rotate-half convention of Hugging Face).
pub(crate) fn rope_rows(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let (d, half) = (head_dim, head_dim / 2);
    let b = cos.len() / half.max(1);
    debug_assert!(b > 0 && x.len().is_multiple_of(b * d) && sin.len() == cos.len());
    let row = x.len() / b;
    for (r, xr) in x.chunks_exact_mut(row).enumerate() {
        let (c, s) = (&cos[r * half..][..half], &sin[r * half..][..half]);
        for head in xr.chunks_exact_mut(d) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

/// Shapes of one decode attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeShape {
    /// Sequences.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each serves `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Positions allocated per sequence in the cache buffers.
    pub capacity: usize,
    /// Cached positions in use (the new token is the last).
    pub len: usize,
}

/// Cached positions that several sequences share (a prompt fanned out to n samples), in front
/// of each sequence's own: its buffers are read once per step for all of them, not once each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedPositions<'a> {
    /// Keys `[P, KVH, len, D]` (rotated) of the `P` shared rows.
    pub k: &'a [f32],
    /// Values `[P, KVH, len, D]`.
    pub v: &'a [f32],
    /// Shared positions.
    pub len: usize,
    /// The shared row each sequence continues.
    pub rows: &'a [u32],
}

/// Attention of one query per sequence: `q` `[B, H*D]` (rotated, unscaled), cache buffers `k`,
/// `v` `[B, KVH, capacity, D]` holding `len` positions after the `shared` ones (if any), `bias`
/// `[B, shared + len]` (0 or a large negative number for padding) → `[B, H*D]`. A sequence's
/// positions are visited in order, shared ones first, so the result does not depend on whether
/// they are shared.
pub(crate) fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shared: Option<SharedPositions<'_>>,
    bias: &[f32],
    s: DecodeShape,
) -> Vec<f32> {
    let DecodeShape {
        batch,
        heads,
        kv_heads,
        head_dim: d,
        capacity,
        len,
    } = s;
    let shared_len = shared.map_or(0, |p| p.len);
    let total = shared_len + len;
    debug_assert_eq!(q.len(), batch * heads * d);
    debug_assert_eq!(bias.len(), batch * total);
    debug_assert!(k.len() >= batch * kv_heads * capacity * d && len <= capacity);
    debug_assert!(shared.is_none_or(|p| p.rows.len() == batch));
    let rep = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; batch * heads * d];
    let simd = crate::packed::simd_level();
    out.par_chunks_mut(d).enumerate().for_each_init(
        || vec![0f32; total],
        |p, (task, y)| {
            let (r, h) = (task / heads, task % heads);
            let base = (r * kv_heads + h / rep) * capacity * d;
            let (sk, sv): (&[f32], &[f32]) = match shared {
                Some(sp) => {
                    let sbase = (sp.rows[r] as usize * kv_heads + h / rep) * sp.len * d;
                    (&sp.k[sbase..][..sp.len * d], &sp.v[sbase..][..sp.len * d])
                }
                None => (&[], &[]),
            };
            let head = Head {
                q: &q[task * d..][..d],
                shared_k: sk,
                shared_v: sv,
                k: &k[base..][..len * d],
                v: &v[base..][..len * d],
                bias: &bias[r * total..][..total],
                scale,
            };
            #[cfg(target_arch = "x86_64")]
            match simd {
                // SAFETY: the CPU supports the kernel's features (`simd_level` checked them at
                // run time).
                crate::packed::Simd::Avx512 => return unsafe { head.attend_avx512(p, y) },
                // SAFETY: as above.
                crate::packed::Simd::Avx2 => return unsafe { head.attend_avx2(p, y) },
                crate::packed::Simd::Scalar => {}
            }
            let _ = simd;
            head.attend(p, y);
        },
    );
    out
}

/// One query head against its cached keys and values (`len` positions of `d` values each).
struct Head<'a> {
    q: &'a [f32],
    /// Shared positions (visited first; empty when none).
    shared_k: &'a [f32],
    shared_v: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    bias: &'a [f32],
    scale: f32,
}

impl Head<'_> {
    /// `y += softmax(q·k_j · scale + bias_j) v_j` over the positions, `p` a scratch of `len`.
    /// The same operations in the same order whatever the vector width, so every build of it
    /// gives the same bits.
    #[inline(always)]
    fn attend(&self, p: &mut [f32], y: &mut [f32]) {
        let d = self.q.len();
        let shared = self.shared_k.len() / d.max(1);
        dots(self.q, self.shared_k, &mut p[..shared]);
        dots(self.q, self.k, &mut p[shared..]);
        let mut mx = f32::NEG_INFINITY;
        for (pj, &b) in p.iter_mut().zip(self.bias) {
            *pj = *pj * self.scale + b;
            mx = mx.max(*pj);
        }
        let mut sum = 0f32;
        for pj in p.iter_mut() {
            *pj = (*pj - mx).exp();
            sum += *pj;
        }
        let inv = 1.0 / sum;
        let (ps, po) = p.split_at(shared);
        match d {
            64 => self.weighted_values::<64>(ps, po, inv, y),
            128 => self.weighted_values::<128>(ps, po, inv, y),
            32 => self.weighted_values::<32>(ps, po, inv, y),
            _ => self.weighted_values_any(p, inv, y),
        }
    }

    /// `y += Σ_j (p_j · inv) v_j` over the shared then the own positions, any head size.
    #[inline(always)]
    fn weighted_values_any(&self, p: &[f32], inv: f32, y: &mut [f32]) {
        let d = y.len();
        let values = self.shared_v.chunks_exact(d).chain(self.v.chunks_exact(d));
        for (&pj, vj) in p.iter().zip(values) {
            let w = pj * inv;
            for (o, &x) in y.iter_mut().zip(vj) {
                *o += w * x;
            }
        }
    }

    /// `y += Σ_j (p_j · inv) v_j` over the shared then the own positions, for a head size known
    /// at compile time: the sums stay in registers instead of going through `y` in memory at
    /// every position (same operations in the same order as the general loop).
    #[inline(always)]
    fn weighted_values<const D: usize>(&self, ps: &[f32], po: &[f32], inv: f32, y: &mut [f32]) {
        let mut acc = [0f32; D];
        acc.copy_from_slice(y);
        for (p, vals) in [(ps, self.shared_v), (po, self.v)] {
            for (&pj, vj) in p.iter().zip(vals.chunks_exact(D)) {
                let w = pj * inv;
                for (o, &x) in acc.iter_mut().zip(vj) {
                    *o += w * x;
                }
            }
        }
        y.copy_from_slice(&acc);
    }

    /// [`Self::attend`] compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn attend_avx512(&self, p: &mut [f32], y: &mut [f32]) {
        self.attend(p, y)
    }

    /// [`Self::attend`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn attend_avx2(&self, p: &mut [f32], y: &mut [f32]) {
        self.attend(p, y)
    }
}

/// The attention bias of a masked position (f32 and wider; f16 uses -6e4).
pub(crate) const MASK_BIAS: f32 = -1.0e9;

/// Bias values at or below this mark a masked position.
const MASKED: f32 = MASK_BIAS / 10.0;

/// Attention probabilities of a batched (prefill) pass: `softmax(scale · s + bias)` over each
/// row of `s` `[B, H, T, L]`, where row `(b, ·, t)` takes bias row `bias[b, t]` (`[B, T, L]`).
/// Masked positions get 0 without an `exp` (`exp(-1e9)` is libm's slow underflow path); a row
/// with every position masked (a padding query) gets the uniform distribution, as the composed
/// softmax gives it.
pub(crate) fn biased_softmax(
    s: &[f32],
    bias: &[f32],
    scale: f32,
    heads: usize,
    t: usize,
    l: usize,
) -> Vec<f32> {
    debug_assert!(s.len().is_multiple_of(l) && bias.len().is_multiple_of(t * l));
    let mut out = vec![0f32; s.len()];
    out.par_chunks_mut(l)
        .zip(s.par_chunks(l))
        .enumerate()
        .for_each(|(i, (o, row))| {
            let (b, ti) = (i / (heads * t), i % t);
            let br = &bias[(b * t + ti) * l..][..l];
            let mut mx = f32::NEG_INFINITY;
            for ((o, &v), &bv) in o.iter_mut().zip(row).zip(br) {
                if bv > MASKED {
                    *o = v * scale + bv;
                    mx = mx.max(*o);
                }
            }
            if mx == f32::NEG_INFINITY {
                o.fill(1.0 / l as f32);
                return;
            }
            let mut sum = 0f32;
            for (o, &bv) in o.iter_mut().zip(br) {
                *o = if bv > MASKED { (*o - mx).exp() } else { 0.0 };
                sum += *o;
            }
            let inv = 1.0 / sum;
            for o in o.iter_mut() {
                *o *= inv;
            }
        });
    out
}

/// Adds the LoRA term `scale · (x Aᵀ) Bᵀ` to `y` `[rows, out]` in place, for `x` `[rows, in]`,
/// `a` `[r, in]` and `b` `[out, r]` (row-major): per decode step these two small products cost
/// less as plain loops than as candle ops with their thread hand-offs.
pub(crate) fn lora_rows(x: &[f32], a: &[f32], b: &[f32], rank: usize, scale: f32, y: &mut [f32]) {
    let d_in = a.len() / rank.max(1);
    let d_out = b.len() / rank.max(1);
    debug_assert!(rank > 0 && x.len().is_multiple_of(d_in) && y.len().is_multiple_of(d_out));
    let mut u = vec![0f32; rank];
    for (xr, yr) in x.chunks_exact(d_in).zip(y.chunks_exact_mut(d_out)) {
        for (uk, ak) in u.iter_mut().zip(a.chunks_exact(d_in)) {
            *uk = scale * dot(xr, ak);
        }
        for (yo, bo) in yr.iter_mut().zip(b.chunks_exact(rank)) {
            *yo += dot(&u, bo);
        }
    }
}

/// `Σ a·b` with eight independent partial sums, so the compiler keeps it in vector registers.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    dot_total(&acc, a, b)
}

/// The end of [`dot`]: its partial sums, then the elements past the last multiple of 8.
#[inline(always)]
fn dot_total(acc: &[f32; 8], a: &[f32], b: &[f32]) -> f32 {
    let tail: f32 = a
        .chunks_exact(8)
        .remainder()
        .iter()
        .zip(b.chunks_exact(8).remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// `out[j] = dot(q, keys[j])` for consecutive keys of `q.len()` values. Four keys at a time
/// with their own partial sums (independent chains the CPU overlaps); each key's sums see the
/// same products in the same order as [`dot`], so the bits are its bits.
#[inline(always)]
fn dots(q: &[f32], keys: &[f32], out: &mut [f32]) {
    let d = q.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    let mut groups = keys.chunks_exact(4 * d);
    let mut outs = out.chunks_exact_mut(4);
    for (k4, o4) in (&mut groups).zip(&mut outs) {
        let ks: [&[f32]; 4] = std::array::from_fn(|p| &k4[p * d..][..d]);
        let mut acc = [[0f32; 8]; 4];
        for (c, x) in q.chunks_exact(8).enumerate() {
            for (a, k) in acc.iter_mut().zip(&ks) {
                let y = &k[c * 8..][..8];
                for i in 0..8 {
                    a[i] += x[i] * y[i];
                }
            }
        }
        for ((o, a), k) in o4.iter_mut().zip(&acc).zip(&ks) {
            *o = dot_total(a, q, k);
        }
    }
    for (o, k) in outs
        .into_remainder()
        .iter_mut()
        .zip(groups.remainder().chunks_exact(d))
    {
        *o = dot(q, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::tests::random;

    /// The vectorised builds of a head's attention give the portable build's bits (head_dim 64
    /// with a ragged 13-position context, as in decoding).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_builds_of_a_head_give_the_same_bits() {
        let (d, len) = (64, 13);
        let (q, k, v) = (random(d, 4), random(len * d, 5), random(len * d, 6));
        let mut bias = vec![0f32; len];
        bias[0] = MASK_BIAS;
        let head = Head {
            q: &q,
            shared_k: &[],
            shared_v: &[],
            k: &k,
            v: &v,
            bias: &bias,
            scale: 0.125,
        };
        let run = |f: &dyn Fn(&mut [f32], &mut [f32])| {
            let (mut p, mut y) = (vec![0f32; len], vec![0f32; d]);
            f(&mut p, &mut y);
            y.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let portable = run(&|p, y| head.attend(p, y));
        let level = crate::packed::simd_level();
        if level == crate::packed::Simd::Avx512 {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            assert_eq!(run(&|p, y| unsafe { head.attend_avx512(p, y) }), portable);
        }
        if level != crate::packed::Simd::Scalar {
            // SAFETY: every non-scalar level includes AVX2.
            assert_eq!(run(&|p, y| unsafe { head.attend_avx2(p, y) }), portable);
        }
    }

    /// The head sizes with sums kept in registers give the general loop's bits.
    #[test]
    fn fixed_size_value_sums_give_the_general_bits() {
        fn check<const D: usize>() {
            let (shared, own) = (5, 6);
            let (sv, v) = (random(shared * D, 31), random(own * D, 32));
            let p = random(shared + own, 33);
            let head = Head {
                q: &[],
                shared_k: &[],
                shared_v: &sv,
                k: &[],
                v: &v,
                bias: &[],
                scale: 1.0,
            };
            let y0 = random(D, 34);
            let (mut fixed, mut any) = (y0.clone(), y0);
            let (ps, po) = p.split_at(shared);
            head.weighted_values::<D>(ps, po, 0.37, &mut fixed);
            head.weighted_values_any(&p, 0.37, &mut any);
            let bits = |y: &[f32]| y.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fixed), bits(&any), "head size {D}");
        }
        check::<32>();
        check::<64>();
        check::<128>();
    }

    /// Four keys at a time give each key the bits of its own dot product, for head sizes with
    /// and without a ragged tail and key counts that leave a remainder.
    #[test]
    fn grouped_dots_give_each_keys_bits() {
        for (d, n) in [(64, 7), (64, 8), (12, 5), (8, 3), (3, 6)] {
            let q = random(d, 21);
            let keys = random(n * d, 22);
            let mut out = vec![f32::NAN; n];
            dots(&q, &keys, &mut out);
            for (j, o) in out.iter().enumerate() {
                let one = dot(&q, &keys[j * d..][..d]);
                assert_eq!(o.to_bits(), one.to_bits(), "d {d}, key {j} of {n}");
            }
        }
    }

    /// Rows that share cached positions attend as if each held its own copy of them in front of
    /// its own positions: the same bits, for rows continuing different shared rows.
    #[test]
    fn shared_positions_give_the_bits_of_copies() {
        let (batch, heads, kvh, d, cap, own, shared) = (5, 6, 2, 8, 9, 4, 7);
        let rows: Vec<u32> = vec![0, 0, 1, 1, 1];
        let sk = random(2 * kvh * shared * d, 11);
        let sv = random(2 * kvh * shared * d, 12);
        let k = random(batch * kvh * cap * d, 13);
        let v = random(batch * kvh * cap * d, 14);
        let q = random(batch * heads * d, 15);
        let mut bias = vec![0f32; batch * (shared + own)];
        bias[shared + own] = MASK_BIAS; // row 1's first shared position is padding
        let shape = |capacity, len| DecodeShape {
            batch,
            heads,
            kv_heads: kvh,
            head_dim: d,
            capacity,
            len,
        };
        let sp = SharedPositions {
            k: &sk,
            v: &sv,
            len: shared,
            rows: &rows,
        };
        let with_shared = attend(&q, &k, &v, Some(sp), &bias, shape(cap, own));
        // Copies: each row's cache holds its shared row's positions, then its own.
        let full = shared + cap;
        let (mut ck, mut cv) = (
            vec![0f32; batch * kvh * full * d],
            vec![0f32; batch * kvh * full * d],
        );
        for (r, &row) in rows.iter().enumerate() {
            for g in 0..kvh {
                let dst = (r * kvh + g) * full * d;
                let src = (row as usize * kvh + g) * shared * d;
                ck[dst..][..shared * d].copy_from_slice(&sk[src..][..shared * d]);
                cv[dst..][..shared * d].copy_from_slice(&sv[src..][..shared * d]);
                let own_src = (r * kvh + g) * cap * d;
                ck[dst + shared * d..][..own * d].copy_from_slice(&k[own_src..][..own * d]);
                cv[dst + shared * d..][..own * d].copy_from_slice(&v[own_src..][..own * d]);
            }
        }
        let copied = attend(&q, &ck, &cv, None, &bias, shape(full, shared + own));
        let bits = |y: &[f32]| y.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&with_shared), bits(&copied));
        // Shared rows matter: pointing row 4 at shared row 0 changes its output.
        let other: Vec<u32> = vec![0, 0, 1, 1, 0];
        let moved = attend(
            &q,
            &k,
            &v,
            Some(SharedPositions { rows: &other, ..sp }),
            &bias,
            shape(cap, own),
        );
        assert_ne!(
            bits(&moved[4 * heads * d..]),
            bits(&with_shared[4 * heads * d..])
        );
        assert_eq!(
            bits(&moved[..4 * heads * d]),
            bits(&with_shared[..4 * heads * d])
        );
    }

    /// Straightforward f64 attention with explicit masking, as an independent reference.
    #[test]
    fn attend_matches_a_direct_f64_reference() {
        let s = DecodeShape {
            batch: 3,
            heads: 6,
            kv_heads: 2,
            head_dim: 8,
            capacity: 11,
            len: 7,
        };
        let d = s.head_dim;
        let q = random(s.batch * s.heads * d, 1);
        let k = random(s.batch * s.kv_heads * s.capacity * d, 2);
        let v = random(s.batch * s.kv_heads * s.capacity * d, 3);
        // Row 1 has two padding positions at the front.
        let mut bias = vec![0f32; s.batch * s.len];
        bias[s.len] = -1e9;
        bias[s.len + 1] = -1e9;
        let y = attend(&q, &k, &v, None, &bias, s);
        for r in 0..s.batch {
            for h in 0..s.heads {
                let g = h / (s.heads / s.kv_heads);
                let base = (r * s.kv_heads + g) * s.capacity * d;
                let qh = &q[(r * s.heads + h) * d..][..d];
                let keep: Vec<usize> = (0..s.len).filter(|&j| bias[r * s.len + j] == 0.0).collect();
                let sc: Vec<f64> = keep
                    .iter()
                    .map(|&j| {
                        (0..d)
                            .map(|i| qh[i] as f64 * k[base + j * d + i] as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|x| (x - mx).exp()).sum();
                for i in 0..d {
                    let want: f64 = keep
                        .iter()
                        .zip(&sc)
                        .map(|(&j, x)| (x - mx).exp() / z * v[base + j * d + i] as f64)
                        .sum();
                    let got = y[(r * s.heads + h) * d + i] as f64;
                    assert!((got - want).abs() < 1e-5, "r{r} h{h} i{i}: {got} vs {want}");
                }
            }
        }
    }

    /// `y + s·(x Aᵀ) Bᵀ` summed directly in f64, as the reference.
    #[test]
    fn lora_rows_adds_the_scaled_low_rank_product() {
        let (rows, d_in, d_out, rank, scale) = (3, 37, 11, 5, 0.75f32);
        let (x, a, b) = (
            random(rows * d_in, 5),
            random(rank * d_in, 6),
            random(d_out * rank, 7),
        );
        let y0 = random(rows * d_out, 8);
        let mut y = y0.clone();
        lora_rows(&x, &a, &b, rank, scale, &mut y);
        for r in 0..rows {
            for o in 0..d_out {
                let mut want = y0[r * d_out + o] as f64;
                for k in 0..rank {
                    let u: f64 = (0..d_in)
                        .map(|i| x[r * d_in + i] as f64 * a[k * d_in + i] as f64)
                        .sum();
                    want += scale as f64 * u * b[o * rank + k] as f64;
                }
                let got = y[r * d_out + o] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "row {r} out {o}: {got} vs {want}"
                );
            }
        }
    }

    /// Against a direct f64 softmax of `scale·s + bias` (the composed path's maths), including a
    /// fully masked row (uniform, as the composed softmax of equal values gives).
    #[test]
    fn biased_softmax_matches_the_composed_softmax() {
        let (b, h, t, l, scale) = (2, 3, 4, 6, 0.35f32);
        let s = random(b * h * t * l, 9);
        let mut bias = vec![0f32; b * t * l];
        for bi in 0..b {
            for ti in 0..t {
                for j in 0..l {
                    // causal over the last t keys; row 1 has its first two keys padded
                    let q = l - t + ti;
                    if j > q || (bi == 1 && j < 2) {
                        bias[(bi * t + ti) * l + j] = -1e9;
                    }
                }
            }
        }
        // Query 0 of row 1 sees nothing once key 2 (its position) is masked too.
        bias[(t) * l + 2] = -1e9;
        let p = biased_softmax(&s, &bias, scale, h, t, l);
        for i in 0..b * h * t {
            let (bi, ti) = (i / (h * t), i % t);
            let br = &bias[(bi * t + ti) * l..][..l];
            // The bias is added in f32, as the composed path does (a masked score rounds to -1e9).
            let z: Vec<f64> = (0..l)
                .map(|j| (s[i * l + j] * scale + br[j]) as f64)
                .collect();
            let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - mx).exp()).sum();
            for j in 0..l {
                let want = (z[j] - mx).exp() / sum;
                let got = p[i * l + j] as f64;
                assert!(
                    (got - want).abs() < 1e-6,
                    "row {i} key {j}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn rope_rows_rotates_each_half_pair() {
        let (b, heads, d) = (2, 3, 4);
        let x0 = random(b * heads * d, 4);
        let ang: Vec<f64> = (0..b * d / 2).map(|i| 0.3 * i as f64 + 0.1).collect();
        let cos: Vec<f32> = ang.iter().map(|a| a.cos() as f32).collect();
        let sin: Vec<f32> = ang.iter().map(|a| a.sin() as f32).collect();
        let mut x = x0.clone();
        rope_rows(&mut x, d, &cos, &sin);
        for r in 0..b {
            for h in 0..heads {
                for i in 0..d / 2 {
                    let a = ang[r * d / 2 + i];
                    let o = (r * heads + h) * d;
                    let (x1, x2) = (x0[o + i] as f64, x0[o + i + d / 2] as f64);
                    assert!((x[o + i] as f64 - (x1 * a.cos() - x2 * a.sin())).abs() < 1e-6);
                    assert!((x[o + i + d / 2] as f64 - (x2 * a.cos() + x1 * a.sin())).abs() < 1e-6);
                    // Rotation preserves the norm of each pair.
                    let n0 = x1 * x1 + x2 * x2;
                    let n1 = (x[o + i] as f64).powi(2) + (x[o + i + d / 2] as f64).powi(2);
                    assert!((n0 - n1).abs() < 1e-5);
                }
            }
        }
    }
}
