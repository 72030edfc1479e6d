//! Batched generation with a KV cache: left-padded prefill shared by the n samples of each prompt,
//! greedy or sampled decoding (temperature, top-k, top-p, min-p, seeded), stop tokens and strings,
//! streaming callback, and the log-probabilities of the sampled tokens (what RL rollouts need).

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::{ModelError, Result};
use crate::model::{CausalLM, ForwardOpts, LogitsMode};
use crate::tokenizer::Tokenizer;

/// Decoding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f64,
    /// Nucleus mass kept (1.0 = off).
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` × the top probability (0 = off).
    pub min_p: f64,
    /// Maximum generated tokens per completion.
    pub max_new_tokens: usize,
    /// Extra stop token ids (the tokenizer's eos ids are always stops).
    pub stop_token_ids: Vec<u32>,
    /// Stop strings: generation ends once the text contains one; the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Random seed (each completion gets its own stream derived from it).
    pub seed: u64,
    /// Completions per prompt (they share one prefill).
    pub n: usize,
    /// Number of top alternatives whose log-probabilities are returned per token (0 = none).
    pub top_logprobs: usize,
    /// Keep generating past eos tokens (benchmarks); explicit stop tokens/strings still apply.
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            max_new_tokens: 256,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
            n: 1,
            top_logprobs: 0,
            ignore_eos: false,
        }
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token or stop string was produced.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// One generated completion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Completion {
    /// Index of the prompt it continues.
    pub prompt_index: usize,
    /// Index among the n samples of that prompt.
    pub sample_index: usize,
    /// Generated ids, including the final stop token if any.
    pub token_ids: Vec<u32>,
    /// Decoded text (stop token excluded, cut before a stop string).
    pub text: String,
    /// Log-probability of each generated token under the temperature-scaled model distribution
    /// (before top-k/top-p/min-p truncation; raw distribution when greedy).
    pub token_logprobs: Vec<f32>,
    /// Per generated token, the `top_logprobs` most likely (id, log-probability) pairs.
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// A token reported to the streaming callback.
#[derive(Debug, Clone)]
pub struct StreamEvent<'a> {
    /// Prompt index.
    pub prompt_index: usize,
    /// Sample index within the prompt.
    pub sample_index: usize,
    /// The new token.
    pub token_id: u32,
    /// Text added by this token (may be empty while a multi-byte character is incomplete).
    pub text_delta: &'a str,
}

/// Timing of a generation call.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerationStats {
    /// Prompt tokens processed (without padding).
    pub prompt_tokens: usize,
    /// Seconds spent in the prefill.
    pub prefill_secs: f64,
    /// Tokens generated over all completions.
    pub generated_tokens: usize,
    /// Seconds spent decoding.
    pub decode_secs: f64,
}

/// The largest logit of a row, as the softmax statistics use it.
fn row_max(logits: &[f32]) -> f64 {
    logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64
}

/// The unnormalised softmax weight `exp((l - max) / t)` of logit `l` (the top token's is 1).
fn weight(l: f32, max: f64, t: f64) -> f64 {
    ((l as f64 - max) / t).exp()
}

/// The [`weight`]s of a row.
fn row_weights(logits: &[f32], max: f64, t: f64) -> Vec<f64> {
    logits.iter().map(|&l| weight(l, max, t)).collect()
}

/// Log-softmax statistics of one row: (max, log-sum-exp) of logits/t.
fn lse(logits: &[f32], t: f64) -> (f64, f64) {
    let max = row_max(logits);
    let s: f64 = logits.iter().map(|&l| weight(l, max, t)).sum();
    (max, s.ln())
}

/// Picks the next token of one row; `weights` are its [`row_weights`] at the sampling
/// temperature (unused when greedy).
fn sample_row(
    logits: &[f32],
    weights: &[f64],
    p: &SamplingParams,
    rng: &mut rand::rngs::StdRng,
) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |a, (i, &l)| {
                if l > a.1 {
                    (i, l)
                } else {
                    a
                }
            })
            .0 as u32
    };
    if p.temperature <= 0.0 {
        return argmax();
    }
    let filtered = (p.top_k > 0 && p.top_k < weights.len()) || p.min_p > 0.0 || p.top_p < 1.0;
    if !filtered {
        // Every token is a candidate, in index order: draw from the weights as they are (the
        // candidate list below would hold the same values in the same order).
        let total: f64 = weights.iter().copied().sum();
        let mut u = rng.random::<f64>() * total;
        for (i, &w) in weights.iter().enumerate() {
            u -= w;
            if u <= 0.0 {
                return i as u32;
            }
        }
        return weights
            .len()
            .checked_sub(1)
            .map_or_else(argmax, |i| i as u32);
    }
    let mut cand: Vec<(u32, f64)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (i as u32, w))
        .collect();
    let desc = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1);
    if p.top_k > 0 && p.top_k < cand.len() {
        cand.select_nth_unstable_by(p.top_k - 1, desc);
        cand.truncate(p.top_k);
    }
    if p.min_p > 0.0 {
        cand.retain(|c| c.1 >= p.min_p);
    }
    if p.top_p < 1.0 {
        let total: f64 = cand.iter().map(|c| c.1).sum();
        let target = p.top_p * total;
        // Sort only a head of the distribution when it already holds the nucleus.
        let head = 1024.min(cand.len());
        if head < cand.len() {
            cand.select_nth_unstable_by(head - 1, desc);
            let head_mass: f64 = cand[..head].iter().map(|c| c.1).sum();
            if head_mass >= target {
                cand.truncate(head);
            }
        }
        cand.sort_unstable_by(desc);
        let mut acc = 0.0;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += c.1;
            if acc >= target {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep.max(1));
    }
    let total: f64 = cand.iter().map(|c| c.1).sum();
    let mut u = rng.random::<f64>() * total;
    for c in &cand {
        u -= c.1;
        if u <= 0.0 {
            return c.0;
        }
    }
    cand.last().map_or_else(argmax, |c| c.0)
}

/// The token chosen for one row, with its log-probability and the top alternatives.
struct Pick {
    token: u32,
    logprob: f32,
    top: Vec<(u32, f32)>,
}

/// Samples one row's next token and scores it (and the `top_logprobs` best) under the
/// distribution of temperature `lp_t`.
fn pick(lg: &[f32], p: &SamplingParams, rng: &mut rand::rngs::StdRng, lp_t: f64) -> Pick {
    // Sampling at the scoring temperature: the sampler's weights are the terms of the
    // log-sum-exp, so they are computed once (the same values, summed in the same order).
    let max = row_max(lg);
    let weights = if p.temperature > 0.0 {
        row_weights(lg, max, p.temperature)
    } else {
        Vec::new()
    };
    let token = sample_row(lg, &weights, p, rng);
    let l = if p.temperature > 0.0 && p.temperature == lp_t {
        weights.iter().copied().sum::<f64>().ln()
    } else {
        lse(lg, lp_t).1
    };
    let lp = |i: u32| ((lg[i as usize] as f64 - max) / lp_t - l) as f32;
    let mut top = Vec::new();
    if p.top_logprobs > 0 {
        let mut idx: Vec<u32> = (0..lg.len() as u32).collect();
        let k = p.top_logprobs.min(idx.len());
        let cmp = |a: &u32, b: &u32| lg[*b as usize].total_cmp(&lg[*a as usize]);
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
        idx.sort_unstable_by(cmp);
        top = idx.into_iter().map(|i| (i, lp(i))).collect();
    }
    Pick {
        token,
        logprob: lp(token),
        top,
    }
}

/// Left-pads token sequences to one `[B, T]` batch; returns (ids, mask).
pub fn left_pad(
    rows: &[Vec<u32>],
    pad: u32,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len() * t);
    for r in rows {
        let padn = t - r.len();
        ids.extend(std::iter::repeat_n(pad, padn).chain(r.iter().copied()));
        mask.extend(std::iter::repeat_n(0u32, padn).chain(std::iter::repeat_n(1u32, r.len())));
    }
    Ok((
        Tensor::from_vec(ids, (rows.len(), t), device)?,
        Tensor::from_vec(mask, (rows.len(), t), device)?,
    ))
}

struct RowState {
    prompt_index: usize,
    sample_index: usize,
    rng: rand::rngs::StdRng,
    ids: Vec<u32>,
    logprobs: Vec<f32>,
    top: Vec<Vec<(u32, f32)>>,
    text: String,
    finish: Option<FinishReason>,
    cut: Option<usize>,
}

/// Generates `params.n` completions for each tokenised prompt. `opts.use_adapters` chooses
/// policy or base model. The callback, if any, sees every new token as it is produced.
pub fn generate(
    model: &CausalLM,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    opts: ForwardOpts,
    mut callback: Option<&mut dyn FnMut(&StreamEvent)>,
) -> Result<(Vec<Completion>, GenerationStats)> {
    if prompts.is_empty() {
        return Ok((Vec::new(), GenerationStats::default()));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(ModelError::Input(format!("prompt {i} is empty")));
    }
    if params.n == 0 {
        return Err(ModelError::Input("n must be >= 1".into()));
    }
    let opts = ForwardOpts {
        grad: false,
        ..opts
    };
    let frozen = model.for_generation()?;
    let model = frozen.as_ref();
    let device = model.device().clone();
    let mut stops = if params.ignore_eos {
        Vec::new()
    } else {
        tokenizer.eos_ids()
    };
    stops.extend(&params.stop_token_ids);
    let mut stats = GenerationStats {
        prompt_tokens: prompts.iter().map(Vec::len).sum(),
        ..Default::default()
    };
    let max_prompt = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = model.new_cache(max_prompt + params.max_new_tokens + 1);
    let t0 = std::time::Instant::now();
    let (ids, mask) = left_pad(prompts, tokenizer.pad_id(), &device)?;
    let logits = model.forward(&ids, Some(&mask), Some(&mut cache), LogitsMode::Last, opts)?;
    stats.prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let n = params.n;
    let mut rows: Vec<RowState> = (0..prompts.len() * n)
        .map(|r| RowState {
            prompt_index: r / n,
            sample_index: r % n,
            rng: rand::rngs::StdRng::seed_from_u64(
                params
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(r as u64),
            ),
            ids: Vec::new(),
            logprobs: Vec::new(),
            top: Vec::new(),
            text: String::new(),
            finish: None,
            cut: None,
        })
        .collect();
    // Active rows, in cache order.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    let mut logits_rows: Vec<Vec<f32>> =
        logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if n > 1 {
        // The n samples of a prompt share its cached positions.
        cache.share_rows(n)?;
        logits_rows = (0..rows.len())
            .map(|r| logits_rows[r / n].clone())
            .collect();
    }
    let need_text = !params.stop_strings.is_empty() || callback.is_some();
    let lp_t = if params.temperature > 0.0 {
        params.temperature
    } else {
        1.0
    };
    for step in 0..params.max_new_tokens {
        let mut next = Vec::with_capacity(active.len());
        // Rows are independent (each has its own random stream): pick their tokens in parallel.
        let picks: Vec<Pick> = {
            let mut pending = active.iter().peekable();
            let mut rngs = Vec::with_capacity(active.len());
            for (r, row) in rows.iter_mut().enumerate() {
                if pending.next_if_eq(&&r).is_some() {
                    rngs.push(&mut row.rng);
                }
            }
            debug_assert_eq!(
                rngs.len(),
                active.len(),
                "active rows are kept in row order"
            );
            rngs.into_par_iter()
                .zip(logits_rows.par_iter())
                .map(|(rng, lg)| pick(lg, params, rng, lp_t))
                .collect()
        };
        for (&r, pick) in active.iter().zip(picks) {
            let row = &mut rows[r];
            let tok = pick.token;
            row.logprobs.push(pick.logprob);
            if params.top_logprobs > 0 {
                row.top.push(pick.top);
            }
            row.ids.push(tok);
            stats.generated_tokens += 1;
            let is_stop = stops.contains(&tok);
            if need_text {
                let body = if is_stop {
                    &row.ids[..row.ids.len() - 1]
                } else {
                    &row.ids[..]
                };
                let text = tokenizer.decode(body, false)?;
                if !text.ends_with('\u{FFFD}') {
                    if let Some(cb) = callback.as_deref_mut() {
                        let delta = text.get(row.text.len()..).unwrap_or("");
                        cb(&StreamEvent {
                            prompt_index: row.prompt_index,
                            sample_index: row.sample_index,
                            token_id: tok,
                            text_delta: delta,
                        });
                    }
                    row.text = text;
                }
                if let Some(pos) = params
                    .stop_strings
                    .iter()
                    .filter_map(|s| row.text.find(s.as_str()))
                    .min()
                {
                    row.cut = Some(pos);
                    row.finish = Some(FinishReason::Stop);
                }
            }
            if is_stop {
                row.finish = Some(FinishReason::Stop);
            } else if step + 1 == params.max_new_tokens && row.finish.is_none() {
                row.finish = Some(FinishReason::Length);
            }
            next.push(tok);
        }
        let keep: Vec<usize> = (0..active.len())
            .filter(|&s| rows[active[s]].finish.is_none())
            .collect();
        if keep.is_empty() {
            break;
        }
        if keep.len() != active.len() {
            cache.select_rows(&keep)?;
            next = keep.iter().map(|&s| next[s]).collect();
            active = keep.iter().map(|&s| active[s]).collect();
        }
        let b = active.len();
        let ids = Tensor::from_vec(next, (b, 1), &device)?;
        let logits = model.forward(&ids, None, Some(&mut cache), LogitsMode::Last, opts)?;
        logits_rows = logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    }
    stats.decode_secs = t1.elapsed().as_secs_f64();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let ends_stop = row.ids.last().is_some_and(|t| stops.contains(t));
        let body = if ends_stop {
            &row.ids[..row.ids.len() - 1]
        } else {
            &row.ids[..]
        };
        let mut text = tokenizer.decode(body, false)?;
        if let Some(pos) = params
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
            .or(row.cut)
        {
            text.truncate(pos.min(text.len()));
        }
        out.push(Completion {
            prompt_index: row.prompt_index,
            sample_index: row.sample_index,
            token_ids: row.ids,
            text,
            token_logprobs: row.logprobs,
            top_logprobs: row.top,
            finish_reason: row.finish.unwrap_or(FinishReason::Length),
        });
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Without filters the sampler draws from the weights directly; it picks the token the
    /// candidate list picks (a `min_p` that keeps every token takes the list's path).
    #[test]
    fn unfiltered_draw_picks_the_candidate_lists_token() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 37 % 101) as f32) * 0.05).collect();
        let plain = SamplingParams {
            temperature: 0.8,
            ..Default::default()
        };
        let keep_all = SamplingParams {
            min_p: 1e-300,
            ..plain.clone()
        };
        let w = row_weights(&logits, row_max(&logits), plain.temperature);
        let mut picks = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut r1 = rand::rngs::StdRng::seed_from_u64(seed);
            let mut r2 = rand::rngs::StdRng::seed_from_u64(seed);
            let a = sample_row(&logits, &w, &plain, &mut r1);
            assert_eq!(
                a,
                sample_row(&logits, &w, &keep_all, &mut r2),
                "seed {seed}"
            );
            picks.insert(a);
        }
        assert!(picks.len() > 20, "only {} distinct tokens", picks.len());
    }
}
