//! Per-token log-probabilities of the next token (the RL trainer's view of the model).

use candle_core::{DType, IndexOp, Tensor, D};

use super::attention::log_softmax_last;
use super::CausalLM;
use crate::error::{ModelError, Result};
use crate::forward::{Ctx, ForwardOpts};
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
        let scoring = Scoring {
            score_mask,
            temperature,
            with_entropy,
        };
        scoring.check(b, t)?;
        let c = self.ctx(o);
        let h = self.hidden_states_ctx(input_ids, attention_mask, None, &c)?;
        let targets = input_ids.i((.., 1..))?.contiguous()?;
        if self.device.is_cpu() && (c.lean || !o.grad) {
            self.head_logprobs_lean(&h, &targets, &scoring, &c)
        } else {
            self.head_logprobs_composed(&h, &targets, &scoring, &c)
        }
    }

    /// The CPU path of [`Self::scored_logprobs`] on final hidden states `h` `[B, T, H]`: chunked
    /// logsumexp + gather over the scored positions only ([`lean::head_logprobs`]), so the
    /// `[B, T, V]` logits never exist at once; the values are scattered back into `[B, T-1]`.
    fn head_logprobs_lean(
        &self,
        h: &Tensor,
        targets: &Tensor,
        scoring: &Scoring<'_>,
        c: &Ctx,
    ) -> Result<TokenLogprobs> {
        let (b, t, hs) = h.dims3()?;
        let hc = h
            .narrow(1, 0, t - 1)?
            .contiguous()?
            .reshape((b * (t - 1), hs))?;
        let w = self.head_weight(c)?;
        let tg = targets.flatten_all()?;
        let keep = self.scored_positions(scoring.score_mask)?;
        let (hc, tg) = match &keep {
            Some(idx) => (hc.index_select(idx, 0)?, tg.index_select(idx, 0)?),
            None => (hc, tg),
        };
        let (lp, ent) = if hc.dim(0)? == 0 {
            (Tensor::zeros(0, self.dtype, &self.device)?, None)
        } else {
            lean::head_logprobs(&hc, &w, &tg, scoring.temperature, scoring.with_entropy)?
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
            None if scoring.with_entropy => {
                Some(Tensor::zeros((b, t - 1), self.dtype, &self.device)?)
            }
            None => None,
        };
        Ok(TokenLogprobs {
            logprobs: spread(lp)?,
            entropy,
        })
    }

    /// Positions (in the flattened `[B*(T-1)]` order) whose next token `score_mask` scores;
    /// `None` scores every position.
    fn scored_positions(&self, score_mask: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(m) = score_mask else {
            return Ok(None);
        };
        let flags = m.i((.., 1..))?.to_dtype(DType::F32)?.flatten_all()?;
        let keep: Vec<u32> = flags
            .to_vec1::<f32>()?
            .iter()
            .enumerate()
            .filter(|(_, &f)| f != 0.0)
            .map(|(i, _)| i as u32)
            .collect();
        Ok(Some(Tensor::new(keep.as_slice(), &self.device)?))
    }

    /// The composed path of [`Self::scored_logprobs`] (other devices, or plain autograd): the
    /// output projection and a log-softmax a few rows at a time (one row in inference, so it
    /// never materialises `[B, T, V]` at once), then the unscored positions zeroed.
    fn head_logprobs_composed(
        &self,
        h: &Tensor,
        targets: &Tensor,
        scoring: &Scoring<'_>,
        c: &Ctx,
    ) -> Result<TokenLogprobs> {
        let (b, t, _) = h.dims3()?;
        let with_entropy = scoring.with_entropy;
        let chunk = if c.o.grad { b } else { 1 };
        let mut lps = Vec::new();
        let mut ents = Vec::new();
        for start in (0..b).step_by(chunk) {
            let n = chunk.min(b - start);
            let hc = h.narrow(0, start, n)?.narrow(1, 0, t - 1)?;
            let mut logits = self.lm_head_ctx(&hc, c)?;
            if scoring.temperature != 1.0 {
                logits = (logits / scoring.temperature)?;
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
        if let Some(m) = scoring.score_mask {
            let m = m.i((.., 1..))?.to_dtype(logprobs.dtype())?;
            logprobs = (logprobs * &m)?;
            entropy = entropy.map(|e| e * &m).transpose()?;
        }
        Ok(TokenLogprobs { logprobs, entropy })
    }
}

/// What [`CausalLM::scored_logprobs`] computes besides the forward pass.
struct Scoring<'a> {
    /// `[B, T]`: non-zero where the token is scored (`None`: every token).
    score_mask: Option<&'a Tensor>,
    /// Divides the logits.
    temperature: f64,
    /// Also the (detached) entropy of each distribution.
    with_entropy: bool,
}

impl Scoring<'_> {
    /// Checks the options against input ids of shape `[b, t]`.
    fn check(&self, b: usize, t: usize) -> Result<()> {
        if let Some(m) = self.score_mask {
            if m.dims() != [b, t] {
                return Err(ModelError::InputShape {
                    name: "score_mask",
                    actual: m.dims().to_vec(),
                    expected: format!("[{b}, {t}]"),
                });
            }
        }
        if t < 2 {
            return Err(ModelError::Input(
                "token_logprobs needs at least 2 tokens per row".into(),
            ));
        }
        if self.temperature <= 0.0 {
            return Err(ModelError::InvalidOption {
                name: "temperature",
                value: self.temperature.to_string(),
                expected: "> 0",
            });
        }
        Ok(())
    }
}
