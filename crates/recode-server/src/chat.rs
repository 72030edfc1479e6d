//! An OpenAI-compatible chat completions service over any [`ChatBackend`] (in `recode` the
//! local model runtime: `recode serve model`), so `recode eval run --endpoint`, TRL/verl
//! tooling and plain `curl` can talk to the same model the trainer uses.
//!
//! * `POST /v1/chat/completions` — `{"model", "messages", "temperature", "top_p",
//!   "max_tokens" | "max_completion_tokens", "n", "seed", "stop"}` → a `chat.completion`
//!   object with `choices[i].message.content`, `finish_reason` (`stop` | `length`) and `usage`.
//! * `GET /v1/models`, `GET /health`.
//!
//! Requests run one at a time on the blocking pool (the model uses every core for one batch;
//! the `n` samples of a request share its prompt prefill). Streaming is not offered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::{parse_json, ApiError};

/// Largest `n` a request may ask for.
pub const MAX_N: usize = 64;

/// One chat message of a request.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Message {
    /// `system`, `user` or `assistant` (a final assistant message is continued).
    pub role: String,
    /// Text of the message.
    pub content: String,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct RawRequest {
    model: Option<String>,
    messages: Vec<Message>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    n: Option<usize>,
    seed: Option<u64>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
}

/// A validated request, with OpenAI's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling temperature (0 = greedy). Default 1.0.
    pub temperature: f64,
    /// Nucleus mass. Default 1.0.
    pub top_p: f64,
    /// New-token limit per choice (default: the backend's).
    pub max_tokens: Option<usize>,
    /// Number of choices. Default 1.
    pub n: usize,
    /// Sampling seed (default: the backend picks one).
    pub seed: Option<u64>,
    /// Stop strings (cut before them).
    pub stop: Vec<String>,
}

/// One generated choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The assistant text.
    pub text: String,
    /// True when the token limit ended it (`finish_reason: "length"`).
    pub truncated: bool,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// What a backend returns for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutput {
    /// `n` choices, in sample order.
    pub choices: Vec<Choice>,
    /// Tokens of the rendered prompt.
    pub prompt_tokens: usize,
}

/// A chat model behind the service.
pub trait ChatBackend: Send + Sync + 'static {
    /// The model id that requests name (also listed by `/v1/models`).
    fn model_id(&self) -> &str;
    /// Generates `req.n` choices for one conversation. An `Err` is a message for a 500 reply
    /// (the backend's own failure); bad requests are rejected before this is called.
    fn complete(&self, req: &ChatRequest) -> Result<ChatOutput, String>;
}

struct ChatState {
    backend: Arc<dyn ChatBackend>,
    /// One generation at a time.
    busy: tokio::sync::Mutex<()>,
    requests: AtomicU64,
}

/// Builds the router for `backend`; bodies above `max_body_bytes` get a 413.
pub fn router(backend: Arc<dyn ChatBackend>, max_body_bytes: usize) -> Router {
    let state = Arc::new(ChatState {
        backend,
        busy: tokio::sync::Mutex::new(()),
        requests: AtomicU64::new(0),
    });
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Checks a parsed request against the served model and fills defaults.
fn validate(raw: RawRequest, model_id: &str) -> Result<ChatRequest, ApiError> {
    let bad = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    if let Some(m) = &raw.model {
        if m != model_id {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("model `{m}` is not served here (this server serves `{model_id}`)"),
            ));
        }
    }
    if raw.stream {
        return Err(bad(
            "stream: true is not supported; ask without streaming".into()
        ));
    }
    if raw.messages.is_empty() {
        return Err(bad("messages: at least one message is required".into()));
    }
    if let Some(m) = raw
        .messages
        .iter()
        .find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
    {
        return Err(bad(format!(
            "messages: role `{}` is not one of system, user, assistant",
            m.role
        )));
    }
    let temperature = raw.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad(format!("temperature: {temperature} is outside [0, 2]")));
    }
    let top_p = raw.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(bad(format!("top_p: {top_p} is outside (0, 1]")));
    }
    let n = raw.n.unwrap_or(1);
    if n == 0 || n > MAX_N {
        return Err(bad(format!("n: {n} is outside 1..={MAX_N}")));
    }
    let max_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    if max_tokens == Some(0) {
        return Err(bad("max_tokens: must be at least 1".into()));
    }
    let stop = match raw.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.iter().any(String::is_empty) {
        return Err(bad("stop: empty stop strings are not allowed".into()));
    }
    Ok(ChatRequest {
        messages: raw.messages,
        temperature,
        top_p,
        max_tokens,
        n,
        seed: raw.seed,
        stop,
    })
}

async fn chat_completions(
    State(state): State<Arc<ChatState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = state.requests.fetch_add(1, Ordering::Relaxed);
    let raw: RawRequest = parse_json(body)?;
    let req = validate(raw, state.backend.model_id())?;
    let _turn = state.busy.lock().await;
    let backend = state.backend.clone();
    let out = tokio::task::spawn_blocking(move || backend.complete(&req))
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("generation task failed: {e}"),
            )
        })?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let completion_tokens: usize = out.choices.iter().map(|c| c.completion_tokens).sum();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let choices: Vec<serde_json::Value> = out
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::json!({
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": if c.truncated { "length" } else { "stop" },
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": state.backend.model_id(),
        "choices": choices,
        "usage": {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": out.prompt_tokens + completion_tokens,
        },
    }))
    .into_response())
}

async fn models(State(state): State<Arc<ChatState>>) -> Response {
    Json(serde_json::json!({
        "object": "list",
        "data": [{"id": state.backend.model_id(), "object": "model", "owned_by": "recode"}],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> RawRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_follow_openai() {
        let r = validate(
            raw(serde_json::json!({"messages": [{"role": "user", "content": "hi"}]})),
            "m",
        )
        .unwrap();
        assert_eq!((r.temperature, r.top_p, r.n), (1.0, 1.0, 1));
        assert_eq!((r.max_tokens, r.seed), (None, None));
        assert!(r.stop.is_empty());
        let r = validate(
            raw(
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 5, "max_completion_tokens": 7, "stop": "\n\n", "n": 3}),
            ),
            "m",
        )
        .unwrap();
        assert_eq!((r.max_tokens, r.n), (Some(7), 3));
        assert_eq!(r.stop, vec!["\n\n".to_string()]);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                serde_json::json!({"model": "other", "messages": [{"role": "user", "content": "x"}]}),
                "other",
            ),
            (serde_json::json!({"messages": []}), "messages"),
            (
                serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}),
                "role `tool`",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3.0}),
                "temperature",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "top_p": 0.0}),
                "top_p",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "n": 0}),
                "n:",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stop": [""]}),
                "stop",
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stream": true}),
                "stream",
            ),
        ];
        for (v, needle) in cases {
            let err = validate(raw(v.clone()), "m").unwrap_err();
            assert!(err.1.contains(needle), "{v}: {}", err.1);
        }
    }
}
