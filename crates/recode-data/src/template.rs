//! Chat templates: ChatML built in, or a model's own Jinja template (from `tokenizer_config.json`,
//! a template file, or GGUF metadata), rendered with minijinja the way Hugging Face
//! `apply_chat_template` renders them, including `continue_final_message`.

use std::path::Path;

use minijinja::{context, Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The turn's text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The ChatML template (Qwen2.5, SmolLM2): `<|im_start|>role\ncontent<|im_end|>\n` per turn.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// How the conversation ends when rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Render the turns as they are.
    Closed,
    /// Append the template's opening of an assistant turn (`add_generation_prompt=True`).
    GenerationPrompt,
    /// Leave the final (assistant) message open so the model continues it
    /// (`continue_final_message=True`): the output is cut right after that message's text.
    ContinueFinal,
}

/// A compiled chat template plus the special tokens templates may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles a Jinja chat template; `bos_token`/`eos_token` are exposed to it by those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Hugging Face compiles chat templates with both of these on.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String {
            // Templates use it for "today's date" in system prompts; keep renders reproducible.
            "26 Jul 2024".to_string()
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|source| DataError::TemplateCompile { source })?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The ChatML template used by ReCode's reference prompt construction.
    pub fn chatml() -> Self {
        Self::new(CHATML, "", "<|im_end|>").expect("built-in ChatML template compiles")
    }

    /// Loads `chat_template`, `bos_token` and `eos_token` from a Hugging Face `tokenizer_config.json`.
    pub fn from_tokenizer_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| DataError::Row {
            path: path.to_path_buf(),
            line: e.line(),
            field: None,
            message: format!("malformed JSON: {e}"),
        })?;
        let bad = |field: &str, message: &str| DataError::Row {
            path: path.to_path_buf(),
            line: 1,
            field: Some(field.to_string()),
            message: message.to_string(),
        };
        let source = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            // Newer configs hold a list of named templates; "default" is the chat one.
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string))
                .ok_or_else(|| bad("chat_template", "list has no template named \"default\""))?,
            Some(_) => return Err(bad("chat_template", "expected a string or a list")),
            None => {
                return Err(bad(
                    "chat_template",
                    "missing: this tokenizer has no chat template",
                ))
            }
        };
        let token = |name: &str| match cfg.get(name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Object(o)) => o
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        Self::new(&source, &token("bos_token"), &token("eos_token"))
    }

    /// Loads a raw Jinja template file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let source = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::new(&source, "", "")
    }

    /// Renders `messages`; with [`Ending::ContinueFinal`] the last message must be the one to continue.
    pub fn render(&self, messages: &[ChatMessage], ending: Ending) -> Result<String> {
        let tmpl = self.env.get_template(NAME).expect("template added in new");
        let text = tmpl
            .render(context! {
                messages => messages,
                add_generation_prompt => ending == Ending::GenerationPrompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|source| DataError::TemplateRender { source })?;
        if ending != Ending::ContinueFinal {
            return Ok(text);
        }
        // As Hugging Face does: cut after the last occurrence of the final message's
        // (stripped) content, dropping the end-of-turn markup the template added.
        let last = messages.last().ok_or(DataError::NoFinalMessage)?;
        let needle = last.content.trim();
        match text.rfind(needle) {
            Some(at) => Ok(text[..at + needle.len()].to_string()),
            None => Err(DataError::FinalMessageRewritten),
        }
    }
}
