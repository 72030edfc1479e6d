//! Greedy validation on held-out prompts, scored by a rewarder.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::metrics::{ValidationMetrics, ValidationSample};
use crate::policy::{Policy, PromptItem, Rewarder, RolloutSource, SamplingParams};
use crate::RlError;

/// Greedy completions (one per prompt, at most `max_new_tokens`) scored by `rewarder`:
/// mean components and indicator rates. Deterministic (greedy, fixed seed). Logs its start and
/// decoding time at `info`; a progress display hooks the rollout source (e.g.
/// [`crate::lm::LmSampler::set_progress`]).
pub fn validate<P: Policy, S: RolloutSource<P>, R: Rewarder>(
    policy: &P,
    source: &mut S,
    rewarder: &R,
    prompts: &[PromptItem],
    max_new_tokens: usize,
) -> Result<ValidationMetrics, RlError> {
    let mut out = ValidationMetrics {
        num_prompts: prompts.len(),
        ..Default::default()
    };
    if prompts.is_empty() {
        return Ok(out);
    }
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x005E_ED0F_5A11);
    tracing::info!(
        prompts = prompts.len(),
        max_new_tokens,
        "greedy validation started"
    );
    let t0 = Instant::now();
    source.set_validating(true);
    let comps = source.generate(policy, prompts, 1, &params, &mut rng);
    source.set_validating(false);
    let comps = comps?;
    tracing::info!(
        prompts = prompts.len(),
        secs = t0.elapsed().as_secs_f64(),
        "greedy validation decoded"
    );
    let names = rewarder.component_names();
    let ind_names = rewarder.indicator_names();
    let (mut sums, mut ind_sums, mut len) =
        (vec![0.0; names.len()], vec![0.0; ind_names.len()], 0usize);
    for (index, (p, c)) in prompts.iter().zip(&comps).enumerate() {
        let (parts, ind) = rewarder.score_with_indicators(p, c)?;
        sums.iter_mut().zip(&parts).for_each(|(s, v)| *s += v);
        ind_sums.iter_mut().zip(&ind).for_each(|(s, v)| *s += v);
        len += c.tokens.len();
        let named = |names: &[String], values: &[f64]| -> BTreeMap<String, f64> {
            names.iter().cloned().zip(values.iter().copied()).collect()
        };
        out.samples.push(ValidationSample {
            index,
            completion: c.text.clone(),
            completion_tokens: c.tokens.len(),
            truncated: c.truncated,
            reward_components: named(&names, &parts),
            indicators: named(&ind_names, &ind),
        });
    }
    let n = comps.len().max(1) as f64;
    out.reward_components = names.into_iter().zip(sums.iter().map(|s| s / n)).collect();
    out.indicators = ind_names
        .into_iter()
        .zip(ind_sums.iter().map(|s| s / n))
        .collect();
    out.completion_len_mean = len as f64 / n;
    Ok(out)
}
