//! The ReCode task: training prompts built from API-update examples, the SFT target in the
//! training answer format, and the rule-based rewarder (format + ES* by default).

use recode_data::prompt::{training_messages, ASSISTANT_PREFIX};
use recode_data::template::{ChatTemplate, Ending};
use recode_data::{Row, UpdateExample};
use recode_model::Tokenizer;
use recode_reward::{Mode, PreparedEdit, PreparedTarget, RewardKind};

pub use crate::component::{Component, COMPONENT_NAMES};
use crate::config::TrainConfig;
use crate::policy::{Completion, PromptItem, Rewarder};
use crate::RlError;

/// The chat template of a model's tokenizer, or ChatML when it has none (with a warning).
pub fn chat_template_of(tok: &Tokenizer) -> Result<ChatTemplate, RlError> {
    match tok.chat_template.as_deref() {
        Some(src) => {
            let bos = tok.bos.as_ref().map(|b| b.0.as_str()).unwrap_or("");
            let eos = tok.eos.first().map(|e| e.0.as_str()).unwrap_or("");
            ChatTemplate::new(src, bos, eos).map_err(|source| RlError::ChatTemplate {
                source: Box::new(source),
            })
        }
        None => {
            tracing::warn!("the model has no chat template; using ChatML");
            Ok(ChatTemplate::chatml())
        }
    }
}

/// Fields a training row must have.
const REQUIRED: [&str; 5] = [
    "dependency",
    "new_version",
    "update_info",
    "old_code",
    "new_code",
];

fn check_row(row: &Row, source: &str) -> Result<(), RlError> {
    for f in REQUIRED {
        if row.example.field(f).is_none_or(|v| v.trim().is_empty()) {
            return Err(RlError::EmptyField {
                file: source.to_string(),
                line: row.line,
                field: f,
            });
        }
    }
    Ok(())
}

/// Rendered, tokenised training prompts (assistant prefix open) with their reference code.
/// Prompts longer than `max_prompt_length` tokens keep their last tokens (TRL's left truncation).
pub fn prompt_items(
    rows: &[Row],
    source: &str,
    template: &ChatTemplate,
    tok: &Tokenizer,
    max_prompt_length: usize,
) -> Result<Vec<PromptItem>, RlError> {
    let mut truncated = 0usize;
    let items = rows
        .iter()
        .map(|row| {
            check_row(row, source)?;
            let text = template
                .render(&training_messages(&row.example), Ending::ContinueFinal)
                .map_err(|e| RlError::RenderRow {
                    file: source.to_string(),
                    line: row.line,
                    source: Box::new(e),
                })?;
            let mut tokens = tok.encode(&text).map_err(|e| RlError::TokenizeRow {
                file: source.to_string(),
                line: row.line,
                source: Box::new(e),
            })?;
            if tokens.len() > max_prompt_length {
                tokens.drain(..tokens.len() - max_prompt_length);
                truncated += 1;
            }
            Ok(PromptItem {
                tokens,
                target: row.example.new_code.clone().unwrap_or_default(),
                old_code: row.example.old_code.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, RlError>>()?;
    if truncated > 0 {
        tracing::warn!(
            truncated,
            max_prompt_length,
            "prompts truncated on the left"
        );
    }
    Ok(items)
}

/// The supervised target: what a correct completion after [`ASSISTANT_PREFIX`] looks like —
/// a short reasoning closed by `</think>`, then the new code in `<answer>` and a python fence.
pub fn sft_completion(ex: &UpdateExample) -> String {
    let dep = ex.dependency.as_deref().unwrap_or("the library");
    let ver = ex.version().unwrap_or("the new version");
    let code = ex.new_code.as_deref().unwrap_or("").trim_end();
    format!(
        " The update note says how {dep} {ver} changed the API. I rewrite the old code so that it uses the updated API and keeps its behaviour. </think>\n<answer>\n```python\n{code}\n```\n</answer>"
    )
}

/// The SFT pair for one example: (rendered prompt ending in the assistant prefix, completion).
pub fn sft_pair(ex: &UpdateExample, template: &ChatTemplate) -> Result<(String, String), RlError> {
    let prompt = template
        .render(&training_messages(ex), Ending::ContinueFinal)
        .map_err(|e| RlError::Render(Box::new(e)))?;
    debug_assert!(prompt.ends_with(ASSISTANT_PREFIX));
    Ok((prompt, sft_completion(ex)))
}

/// ReCode's rule-based reward: the configured components (`reward_funcs`) of
/// `recode-reward`, plus `format_ok`, `syntax_ok`, `exact_match` and `unchanged` (the answer
/// is the old code as given: the copy that ES* nearly fully rewards) indicators.
#[derive(Debug, Clone)]
pub struct RecodeRewarder {
    mode: Mode,
    components: Vec<Component>,
}

impl RecodeRewarder {
    /// The rewarder a training config asks for (`reward_funcs`, `reward_mode`).
    pub fn from_config(cfg: &TrainConfig) -> Result<Self, RlError> {
        let mode = cfg
            .reward_mode
            .parse::<Mode>()
            .map_err(|source| RlError::RewardMode { source })?;
        let components = cfg
            .reward_funcs
            .iter()
            .map(|f| f.parse::<Component>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecodeRewarder { mode, components })
    }

    /// The rewarder validation scores with: the training components plus `format` and
    /// `es_star` when missing, so held-out figures stay comparable across reward choices.
    pub fn for_validation(cfg: &TrainConfig) -> Result<Self, RlError> {
        let mut r = Self::from_config(cfg)?;
        for k in RewardKind::TRAINING {
            if !r.components.contains(&Component::Score(k)) {
                r.components.push(Component::Score(k));
            }
        }
        Ok(r)
    }
}

impl Rewarder for RecodeRewarder {
    fn component_names(&self) -> Vec<String> {
        self.components
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    fn score(&self, prompt: &PromptItem, completion: &Completion) -> Result<Vec<f64>, RlError> {
        Ok(self.score_with_indicators(prompt, completion)?.0)
    }

    fn indicator_names(&self) -> Vec<String> {
        ["format_ok", "syntax_ok", "exact_match", "unchanged"]
            .map(String::from)
            .to_vec()
    }

    fn score_with_indicators(
        &self,
        prompt: &PromptItem,
        completion: &Completion,
    ) -> Result<(Vec<f64>, Vec<f64>), RlError> {
        let target = PreparedTarget::new(&prompt.target, self.mode);
        let (r, code) = target.score_with_code(&completion.text);
        let edit = PreparedEdit::new(&prompt.old_code, &target);
        // The answer's edit script is built only when the edit component is selected.
        let parts = self
            .components
            .iter()
            .map(|&c| match c {
                Component::Score(k) => r.get(k),
                Component::EditEsStar => edit.score_code(code.as_deref()).edit_es_star,
            })
            .collect();
        let unchanged = code.as_deref().is_some_and(|c| edit.is_unchanged(c));
        let valid = r.has_code_block && r.syntax_ok;
        let flag = |b: bool| f64::from(u8::from(b));
        Ok((
            parts,
            vec![
                flag(r.format > 0.0),
                flag(valid),
                flag(valid && r.exact_match),
                flag(unchanged),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> UpdateExample {
        UpdateExample {
            dependency: Some("pandas".into()),
            new_version: Some("==2.0.0".into()),
            description: None,
            update_info: Some("`DataFrame.append` was removed; use `pd.concat`.".into()),
            old_code: Some("df = df.append(other)".into()),
            new_code: Some("df = pd.concat([df, other])\n".into()),
        }
    }

    /// The SFT target is exactly what the reward calls a perfect answer: format +1, EM* +2,
    /// ES* +2 (checked through the reward library, not restated here).
    #[test]
    fn sft_target_is_a_perfect_answer() {
        let ex = example();
        let c = sft_completion(&ex);
        for mode in [Mode::Paper, Mode::Fixed] {
            let r = recode_reward::score(&c, ex.new_code.as_deref().unwrap(), mode);
            assert_eq!(
                (r.format, r.em_star, r.es_star),
                (1.0, 2.0, 2.0),
                "{mode:?}"
            );
        }
        let (p, _) = sft_pair(&ex, &ChatTemplate::chatml()).unwrap();
        assert!(p.ends_with(ASSISTANT_PREFIX), "{p}");
    }

    #[test]
    fn rewarder_components_and_indicators() {
        let cfg = TrainConfig::preset(crate::Algo::Grpo);
        let rw = RecodeRewarder::from_config(&cfg).unwrap();
        assert_eq!(rw.component_names(), ["format", "es_star"]);
        let p = PromptItem {
            tokens: vec![1],
            target: "x = new(1)\n".into(),
            old_code: "x = old(1)\n".into(),
        };
        let good = Completion {
            tokens: vec![],
            text: " ok </think>\n<answer>\n```python\nx = new(1)\n```\n</answer>".into(),
            truncated: false,
        };
        let (parts, ind) = rw.score_with_indicators(&p, &good).unwrap();
        assert_eq!(parts, vec![1.0, 2.0]);
        assert_eq!(ind, vec![1.0, 1.0, 1.0, 0.0]);
        let bad = Completion {
            text: "no answer".into(),
            ..good.clone()
        };
        let (parts, ind) = rw.score_with_indicators(&p, &bad).unwrap();
        assert_eq!(parts, vec![-1.0, -2.0]);
        assert_eq!(ind, vec![0.0, 0.0, 0.0, 0.0]);

        // The edit component: the copy of the old code is flagged `unchanged`; ES* rewards it
        // far above what the edit score does.
        let mut cfg = cfg;
        cfg.reward_funcs = ["format", "es_star", "edit_es_star"]
            .map(String::from)
            .to_vec();
        cfg.validate().unwrap();
        let rw = RecodeRewarder::from_config(&cfg).unwrap();
        assert_eq!(rw.component_names(), ["format", "es_star", "edit_es_star"]);
        let copy = Completion {
            text: good.text.replace("new(1)", "old(1)"),
            ..good.clone()
        };
        let (parts, ind) = rw.score_with_indicators(&p, &copy).unwrap();
        assert_eq!(ind, vec![1.0, 1.0, 0.0, 1.0]);
        assert!(parts[1] > 0.5 && parts[2] == -1.5, "{parts:?}");
        let (parts, _) = rw.score_with_indicators(&p, &good).unwrap();
        assert_eq!(parts, vec![1.0, 2.0, 2.0]);
        let val = RecodeRewarder::for_validation(&cfg).unwrap();
        assert_eq!(val.component_names(), ["format", "es_star", "edit_es_star"]);
        cfg.reward_funcs = vec!["edit_es_star".into()];
        let val = RecodeRewarder::for_validation(&cfg).unwrap();
        assert_eq!(val.component_names(), ["edit_es_star", "format", "es_star"]);
        cfg.reward_funcs = vec!["bleu".into()];
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("bleu") && err.contains("edit_es_star"),
            "{err}"
        );
    }
}
