//! Evaluation prompts and answer extraction.
//!
//! - The ReCode-style CodeUpdateArena prompt (harness doc §5): ReCode's training system prompt,
//!   a user turn with the update note (API path, description, new signature, docstring in
//!   `<doc>`), the scenario, problem and solution signature, and ReCode's closing instruction;
//!   optionally the assistant prefix `Let me solve this step by step.\n<think>` the trained
//!   model continues. The user turn is a minijinja template, so it can be edited.
//! - A HumanEval chat prompt (the function stub in a fence, answer in a python fence).
//! - Extraction: the first python fence inside the first `<answer>…</answer>` (parsed with
//!   recode-reward's extractor), else the benchmark's rule (`[PYTHON]…[/PYTHON]`, else the
//!   first ```` ``` ```` fence, else empty).

use std::sync::OnceLock;

use recode_data::prompt::{ANSWER_INSTRUCTION, ASSISTANT_PREFIX, SYSTEM_PROMPT};
use recode_data::ChatMessage;
use regex::Regex;

use crate::arena::{ArenaExample, ArenaUpdate};
use crate::humaneval::HumanEvalProblem;

/// Errors while rendering a prompt template.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The template does not compile.
    #[error("prompt template: does not compile: {source:#}")]
    Compile {
        /// The template engine's error (names the line).
        #[source]
        source: minijinja::Error,
    },
    /// The template fails while rendering a task.
    #[error("prompt template: render failed: {source:#}")]
    Render {
        /// The template engine's error (names the line).
        #[source]
        source: minijinja::Error,
    },
}

/// Default user-turn template of the ReCode-style CodeUpdateArena prompt (minijinja; fields
/// `update` and `example` as in the data, plus `instruction`).
pub const ARENA_USER_TEMPLATE: &str =
    "Update note: the API `{{ update.function_path }}` was updated. {{ update.description }}
New signature: {{ update.signature }}
<doc>
{{ update.docstring }}
</doc>
Scenario: {{ example.scenario }}
Problem: {{ example.problem }}
Solution signature: {{ example.solution_signature }}

{{ instruction }}
";

/// The ReCode-style prompt renderer for CodeUpdateArena (system, user, optional prefix).
#[derive(Debug)]
pub struct ArenaPrompt {
    env: minijinja::Environment<'static>,
    /// Append ReCode's assistant prefix for the model to continue (local models only: an
    /// OpenAI-compatible endpoint cannot continue a final assistant message portably).
    pub assistant_prefix: bool,
}

impl ArenaPrompt {
    /// A renderer using `user_template` (see [`ARENA_USER_TEMPLATE`]) for the user turn.
    pub fn new(user_template: &str, assistant_prefix: bool) -> Result<ArenaPrompt, PromptError> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.add_template_owned("user", user_template.to_string())
            .map_err(|source| PromptError::Compile { source })?;
        Ok(ArenaPrompt {
            env,
            assistant_prefix,
        })
    }

    /// The default template with or without the assistant prefix.
    pub fn default_with_prefix(assistant_prefix: bool) -> ArenaPrompt {
        ArenaPrompt::new(ARENA_USER_TEMPLATE, assistant_prefix)
            .expect("the built-in template compiles")
    }

    /// The chat messages for one example (rendered through the model's chat template later).
    pub fn messages(
        &self,
        update: &ArenaUpdate,
        example: &ArenaExample,
    ) -> Result<Vec<ChatMessage>, PromptError> {
        let user = self
            .env
            .get_template("user")
            .and_then(|t| {
                t.render(minijinja::context! {
                    update => update,
                    example => example,
                    instruction => ANSWER_INSTRUCTION,
                })
            })
            .map_err(|source| PromptError::Render { source })?;
        let mut msgs = vec![
            ChatMessage::new("system", SYSTEM_PROMPT),
            ChatMessage::new("user", user),
        ];
        if self.assistant_prefix {
            msgs.push(ChatMessage::new("assistant", ASSISTANT_PREFIX));
        }
        Ok(msgs)
    }
}

/// The chat messages for one HumanEval problem: the stub in a fence, the whole function asked
/// back in a python fence (extraction falls back to the stub + completion when only a body
/// comes back).
pub fn humaneval_messages(problem: &HumanEvalProblem) -> Vec<ChatMessage> {
    let user = format!(
        "Complete the Python function below so that it is correct and self-contained. Reply \
         with the complete function (signature included) in one ```python code block.\n\n\
         ```python\n{}\n```\n",
        problem.prompt.trim_end()
    );
    vec![ChatMessage::new("user", user)]
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

/// The benchmark's extraction rule: first `[PYTHON]…[/PYTHON]` (unstripped), else the first
/// ```` ```(?:python)?…``` ```` body, else `""`.
pub fn extract_benchmark(completion: &str) -> String {
    static PY: OnceLock<Regex> = OnceLock::new();
    static FENCE: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(&PY, r"(?s)\[PYTHON\](.*?)\[/PYTHON\]").captures(completion) {
        return c[1].to_string();
    }
    if let Some(c) = re(&FENCE, r"(?s)```(?:python)?(.*?)```").captures(completion) {
        return c[1].to_string();
    }
    String::new()
}

/// Where extracted code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractSource {
    /// A python fence inside the first `<answer>…</answer>`.
    Answer,
    /// The benchmark's rule (`[PYTHON]` block or first fence).
    Benchmark,
    /// Nothing found: the empty string (still run, as the benchmark does).
    None,
}

/// ReCode-style extraction: the first python fence inside the first `<answer>…</answer>`
/// (recode-reward's fixed-mode fence parser), else [`extract_benchmark`].
pub fn extract_answer(completion: &str) -> (String, ExtractSource) {
    if let Some(start) = completion.find("<answer>") {
        let body = &completion[start + "<answer>".len()..];
        if let Some(end) = body.find("</answer>") {
            if let Some(code) =
                recode_reward::extract_code_block(&body[..end], recode_reward::Mode::Fixed)
            {
                return (code.to_string(), ExtractSource::Answer);
            }
        }
    }
    let code = extract_benchmark(completion);
    let source = if code.is_empty() {
        ExtractSource::None
    } else {
        ExtractSource::Benchmark
    };
    (code, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_rule() {
        assert_eq!(
            extract_benchmark("a [PYTHON]\nx = 1\n[/PYTHON] b"),
            "\nx = 1\n"
        );
        assert_eq!(extract_benchmark("```python\ny()\n``` ```z```"), "\ny()\n");
        assert_eq!(extract_benchmark("```py\nz()\n```"), "py\nz()\n");
        assert_eq!(extract_benchmark("no code"), "");
        // [PYTHON] wins even when a fence comes first.
        assert_eq!(extract_benchmark("```a``` [PYTHON]b[/PYTHON]"), "b");
    }

    #[test]
    fn answer_first_then_benchmark() {
        let c =
            "draft\n```python\nold()\n```\n</think>\n<answer>\n```python\nnew()\n```\n</answer>";
        assert_eq!(
            extract_answer(c),
            ("new()".to_string(), ExtractSource::Answer)
        );
        // An unclosed <answer> falls back to the benchmark rule (first fence anywhere).
        let c = "```python\nold()\n```\n<answer>```python\nnew()\n```";
        assert_eq!(extract_answer(c).0, "\nold()\n");
        assert_eq!(extract_answer(c).1, ExtractSource::Benchmark);
        assert_eq!(extract_answer("nothing").1, ExtractSource::None);
        // Only the first <answer> section counts.
        let c = "<answer>```python\na()\n```</answer><answer>```python\nb()\n```</answer>";
        assert_eq!(extract_answer(c).0, "a()");
    }
}
