//! Per-token log-probabilities of the next token (the RL trainer's view of the model).

use candle_core::{DType, IndexOp, Tensor, D};

use super::attention::log_softmax_last;
use super::CausalLM;
use crate::error::{ModelError, Result};
use crate::forward::ForwardOpts;
use crate::lean;

/// Per-token log-probabilities of the next token, as the RL trainer needs them.
#[derive(Debug, Clone)]
pub struct TokenLogprobs {
    /// `[B, T-1]`: log p(input_ids[:, t+1] | input_ids[:, ..=t]).
    pub logprobs: Tensor,
    /// `[B, T-1]` entropy of each next-token distribution (detached), when asked for.
    pub entropy: Option<Tensor>,
}

impl CausalLM {
    /// Log-probabilities of each next token of `input_ids` (`[B, T]` → `[B, T-1]`), computed from
    /// logits divided by `temperature`; with `o.grad` the result is differentiable w.r.t. every
    /// trainable parameter. `with_entropy` adds the (detached) entropy of each distribution.
    pub fn token_logprobs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        temperature: f64,
        with_entropy: bool,
        o: ForwardOpts,
    ) -> Result<TokenLogprobs> {
        self.scored_logprobs(
            input_ids,
            attention_mask,
            None,
            temperature,
            with_entropy,
            o,
        )
    }

    /// [`Self::token_logprobs`] for only the tokens where `score_mask` `[B, T]` is non-zero
    /// (e.g. the completion of a prompt + completion row); the other positions are 0. On CPU the
    /// output projection and its log-softmax then run on those positions alone, which is most of
    /// the saving when prompts are long and completions short.
    pub fn scored_logprobs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        score_mask: Option<&Tensor>,
        temperature: f64,
        with_entropy: bool,
        o: ForwardOpts,
    ) -> Result<TokenLogprobs> {
        let (b, t) = input_ids.dims2()?;
        if let Some(m) = score_mask {
            if m.dims() != [b, t] {
                return Err(ModelError::Input(format!(
                    "score_mask has shape {:?}, expected [{b}, {t}]",
                    m.dims()
                )));
            }
        }
        if t < 2 {
            return Err(ModelError::Input(
                "token_logprobs needs at least 2 tokens per row".into(),
            ));
        }
        if temperature <= 0.0 {
            return Err(ModelError::Input(format!(
                "temperature must be > 0, got {temperature}"
            )));
        }
        let c = self.ctx(o);
        let h = self.hidden_states_ctx(input_ids, attention_mask, None, &c)?;
        let targets = input_ids.i((.., 1..))?.contiguous()?;
        if self.device.is_cpu() && (c.lean || !o.grad) {
            // Chunked logsumexp + gather: the [B, T, V] logits never exist at once.
            let hs = self.config.hidden_size;
            let hc = h
                .narrow(1, 0, t - 1)?
                .contiguous()?
                .reshape((b * (t - 1), hs))?;
            let w = self.head_weight(&c);
            let tg = targets.flatten_all()?;
            // Positions (in the flattened [B*(T-1)] order) whose next token is scored.
            let keep = match score_mask {
                Some(m) => {
                    let flags = m.i((.., 1..))?.to_dtype(DType::F32)?.flatten_all()?;
                    let keep: Vec<u32> = flags
                        .to_vec1::<f32>()?
                        .iter()
                        .enumerate()
                        .filter(|(_, &f)| f != 0.0)
                        .map(|(i, _)| i as u32)
                        .collect();
                    Some(Tensor::new(keep.as_slice(), &self.device)?)
                }
                None => None,
            };
            let (hc, tg) = match &keep {
                Some(idx) => (hc.index_select(idx, 0)?, tg.index_select(idx, 0)?),
                None => (hc, tg),
            };
            let (lp, ent) = if hc.dim(0)? == 0 {
                (Tensor::zeros(0, self.dtype, &self.device)?, None)
            } else {
                lean::head_logprobs(&hc, &w, &tg, temperature, with_entropy)?
            };
            // Scatter the scored values back into [B, T-1] (zeros elsewhere; differentiable).
            let spread = |x: Tensor| -> Result<Tensor> {
                let full = match &keep {
                    Some(idx) => {
                        Tensor::zeros(b * (t - 1), x.dtype(), x.device())?.index_add(idx, &x, 0)?
                    }
                    None => x,
                };
                Ok(full.reshape((b, t - 1))?)
            };
            let entropy = match ent {
                Some(e) => Some(spread(e)?),
                None if with_entropy => Some(Tensor::zeros((b, t - 1), self.dtype, &self.device)?),
                None => None,
            };
            return Ok(TokenLogprobs {
                logprobs: spread(lp)?,
                entropy,
            });
        }
        // Process a few rows at a time so that inference never materialises [B, T, V] at once.
        let chunk = if o.grad { b } else { 1 };
        let mut lps = Vec::new();
        let mut ents = Vec::new();
        for start in (0..b).step_by(chunk) {
            let n = chunk.min(b - start);
            let hc = h.narrow(0, start, n)?.narrow(1, 0, t - 1)?;
            let mut logits = self.lm_head_ctx(&hc, &c)?;
            if temperature != 1.0 {
                logits = (logits / temperature)?;
            }
            let logp = log_softmax_last(&logits)?;
            let tg = targets.narrow(0, start, n)?.unsqueeze(2)?;
            lps.push(logp.gather(&tg, 2)?.squeeze(2)?);
            if with_entropy {
                let lp = logp.detach();
                ents.push((lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?);
            }
        }
        let mut logprobs = Tensor::cat(&lps, 0)?;
        let mut entropy = if with_entropy {
            Some(Tensor::cat(&ents, 0)?)
        } else {
            None
        };
        if let Some(m) = score_mask {
            let m = m.i((.., 1..))?.to_dtype(logprobs.dtype())?;
            logprobs = (logprobs * &m)?;
            entropy = entropy.map(|e| e * &m).transpose()?;
        }
        Ok(TokenLogprobs { logprobs, entropy })
    }
}
