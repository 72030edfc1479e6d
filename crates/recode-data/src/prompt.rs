//! The ReCode training prompt: system instruction, user turn with the update note and old code,
//! and the assistant prefix the model continues.

use crate::error::Result;
use crate::example::UpdateExample;
use crate::template::{ChatMessage, ChatTemplate, Ending};

/// System instruction of ReCode's training prompt (verbatim, grammar included).
pub const SYSTEM_PROMPT: &str = "You are a helpful coding assistant. Your task is to transform the old version of the code into the new version specified, based on the update information. You first thinks about the reasoning process in the mind and then provides the solution.";

/// Closing instruction of the user turn: where to reason and where to put the code.
pub const ANSWER_INSTRUCTION: &str = "Show your work in <think> </think> tags. And return the final code in <answer> </answer>, the code within <answer></answer> should be enclosed in ```python ``` tags.";

/// Start of the assistant turn; the model writes what follows it.
pub const ASSISTANT_PREFIX: &str = "Let me solve this step by step.\n<think>";

/// Text used for a missing (null) field, as Python's f-string formatting of `None` writes it.
const NULL_TEXT: &str = "None";

/// The user turn for one example (leading and trailing newline included).
///
/// The version is canonicalised (`==` dropped when present), see [`crate::example::canonical_version`].
pub fn user_message(ex: &UpdateExample) -> String {
    let or_null = |v: Option<&str>| v.unwrap_or(NULL_TEXT).to_string();
    format!(
        "\n{dep} performed an API update in version {ver}, and the update content includes:\n<doc>\n{info}\n</doc>\nThe old version of the code is:\n```python\n{old}\n```\n\n{ANSWER_INSTRUCTION}\n",
        dep = or_null(ex.dependency.as_deref()),
        ver = or_null(ex.version()),
        info = or_null(ex.update_info.as_deref()),
        old = or_null(ex.old_code.as_deref()),
    )
}

/// System and user turns (what verl's `prompt` column holds).
pub fn prompt_messages(ex: &UpdateExample) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", SYSTEM_PROMPT),
        ChatMessage::new("user", user_message(ex)),
    ]
}

/// System, user and the assistant prefix to continue (what TRL's conversational `prompt` holds).
pub fn training_messages(ex: &UpdateExample) -> Vec<ChatMessage> {
    let mut m = prompt_messages(ex);
    m.push(ChatMessage::new("assistant", ASSISTANT_PREFIX));
    m
}

/// The full training prompt text: the three turns through `template`, assistant turn left open.
pub fn render_training_prompt(ex: &UpdateExample, template: &ChatTemplate) -> Result<String> {
    template.render(&training_messages(ex), Ending::ContinueFinal)
}
