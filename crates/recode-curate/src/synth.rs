//! `recode data synth`: one prompt per mined change to any OpenAI-compatible endpoint, answers
//! parsed robustly into candidates (JSON, the first JSON object in the text, else two fenced
//! code blocks), unparsable answers kept as rejects (`parse`), and with `repair` one more turn
//! for each candidate that fails verification, carrying the error line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use recode_data::ChatMessage;
use recode_eval::generate::{GenParams, OpenAiClient};
use serde::{Deserialize, Serialize};

use crate::candidate::Candidate;
use crate::diff::ApiChange;

/// The system prompt of every request.
pub const SYSTEM_PROMPT: &str = "You write minimal, self-contained Python examples of library API migrations. Reply with one JSON object only.";

/// Settings of a synthesis run.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Endpoint base URL (`http://127.0.0.1:8000`, `…/v1`, or the full chat completions URL).
    pub endpoint: String,
    /// Model name sent with each request (also recorded in each candidate).
    pub model: String,
    /// API key (read from an environment variable by the caller; never written anywhere).
    pub api_key: Option<String>,
    /// Answers per change.
    pub n: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Maximum tokens per answer.
    pub max_tokens: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Retries per request (transport errors, 408, 429, 5xx) with doubling back-off.
    pub retries: u32,
    /// First back-off delay.
    pub backoff: Duration,
    /// Seed of the first request (each request adds its index).
    pub seed: u64,
}

/// An answer that could not be turned into a candidate (`candidates.rejects.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthReject {
    /// The change prompted for.
    pub change_id: String,
    /// The model.
    pub model: String,
    /// Always `parse` (or `endpoint` when every retry failed).
    pub reason: String,
    /// Why, with the start of the answer.
    pub evidence: String,
}

/// Figures of a synthesis run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SynthReport {
    /// Changes prompted for.
    pub changes: usize,
    /// Requests made (first turns and repair turns).
    pub requests: usize,
    /// Candidates written.
    pub candidates: usize,
    /// Answers that did not parse.
    pub parse_failures: usize,
    /// Requests that failed after all retries.
    pub endpoint_failures: usize,
    /// Repair turns sent.
    pub repairs: usize,
    /// Seconds overall.
    pub seconds: f64,
}

/// What a synthesis run produced.
#[derive(Debug, Clone, Default)]
pub struct SynthOutput {
    /// Candidates, in change order.
    pub candidates: Vec<Candidate>,
    /// The conversation that produced each candidate (for a repair turn).
    pub conversations: Vec<Vec<ChatMessage>>,
    /// Unusable answers.
    pub rejects: Vec<SynthReject>,
    /// Figures.
    pub report: SynthReport,
}

/// The user prompt for one change.
pub fn render_prompt(c: &ApiChange) -> String {
    let mut p = format!(
        "Library: {} (PyPI), old version {}, new version {}.\nChange: {} of `{}`",
        c.dist,
        c.old_version,
        c.new_version,
        c.kind.as_str().replace('_', " "),
        c.symbol
    );
    if let Some(n) = &c.new_symbol {
        p.push_str(&format!(" -> `{n}`"));
    }
    if let Some(param) = &c.param {
        p.push_str(&format!(", parameter `{param}`"));
        if let Some(n) = &c.new_param {
            p.push_str(&format!(" -> `{n}`"));
        }
    }
    p.push_str(&format!(" ({}).\n", c.symbol_kind));
    if let Some(s) = &c.old_signature {
        p.push_str(&format!("Old signature: {s}\n"));
    }
    if let Some(s) = &c.new_signature {
        p.push_str(&format!("New signature: {s}\n"));
    }
    for w in &c.evidence.warnings {
        p.push_str(&format!("Warning seen: {}: {}\n", w.category, w.message));
    }
    for l in &c.evidence.changelog {
        p.push_str(&format!("Changelog: {l}\n"));
    }
    p.push_str(&format!(
        "\nWrite a migration example as one JSON object with the keys \"description\", \"update_info\", \"old_code\", \"new_code\".\n\
         Rules:\n\
         - old_code runs on {dist} {old} and uses the old API; new_code runs on {dist} {new} and uses the new API; both do the same thing.\n\
         - At most 30 lines each, imports included, self-contained; no network, files, randomness or placeholders; print the result.\n\
         - description is one sentence starting \"The code demonstrates how to\".\n\
         - update_info is 1-2 sentences of release-note prose (\"X has been removed/renamed/added\", \"X now ...\").\n",
        dist = c.dist,
        old = c.old_version,
        new = c.new_version
    ));
    p
}

/// The repair turn after a failed verification.
pub fn repair_prompt(reason: &str, evidence: &str) -> String {
    format!(
        "Verification against the real versions failed ({reason}): {evidence}\n\
         Fix the example. Reply with the corrected JSON object only (keys description, update_info, old_code, new_code)."
    )
}

/// The fields of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    /// One sentence.
    #[serde(default)]
    pub description: String,
    /// Release-note prose.
    #[serde(default)]
    pub update_info: String,
    /// Old code.
    pub old_code: String,
    /// New code.
    pub new_code: String,
}

/// Parses an answer: the whole text as JSON, else the first JSON object in it that has the
/// code keys, else the first two fenced code blocks (description and update_info then empty).
pub fn parse_answer(text: &str) -> Result<Answer, String> {
    let usable =
        |a: Answer| (!a.old_code.trim().is_empty() && !a.new_code.trim().is_empty()).then_some(a);
    if let Some(a) = serde_json::from_str::<Answer>(text.trim())
        .ok()
        .and_then(usable)
    {
        return Ok(a);
    }
    for (start, _) in text.match_indices('{') {
        let mut stream =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(v)) = stream.next() {
            if let Some(a) = serde_json::from_value::<Answer>(v).ok().and_then(usable) {
                return Ok(a);
            }
        }
    }
    let blocks = fenced_blocks(text);
    if blocks.len() >= 2 {
        return Ok(Answer {
            description: String::new(),
            update_info: String::new(),
            old_code: blocks[0].clone(),
            new_code: blocks[1].clone(),
        });
    }
    let head: String = text.chars().take(200).collect();
    Err(format!(
        "no JSON object with old_code and new_code, nor two code blocks: {head:?}"
    ))
}

/// Contents of ``` fenced blocks, in order.
/// Only blocks labelled `python`/`py` or unlabelled count as code (a ```json block is not).
fn fenced_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let label = after[..body_start].trim().to_lowercase();
        let body = &after[body_start..];
        let Some(close) = body.find("```") else { break };
        if matches!(label.as_str(), "" | "python" | "py" | "python3") {
            out.push(body[..close].trim_end().to_string() + "\n");
        }
        rest = &body[close + 3..];
    }
    out
}

/// Fills missing prose from the change, so every candidate has all six keys.
fn candidate(change: &ApiChange, a: Answer, model: &str) -> Candidate {
    let leaf = change.new_symbol.as_deref().unwrap_or(&change.symbol);
    let description = if a.description.trim().is_empty() {
        format!(
            "The code demonstrates how to use {leaf} with {} {}.",
            change.dist, change.new_version
        )
    } else {
        a.description.trim().to_string()
    };
    let update_info = if a.update_info.trim().is_empty() {
        format!(
            "{} ({}) in {} {}.",
            change.symbol,
            change.kind.as_str().replace('_', " "),
            change.dist,
            change.new_version
        )
    } else {
        a.update_info.trim().to_string()
    };
    Candidate {
        dependency: change.dist.clone(),
        new_version: format!("=={}", change.new_version),
        description,
        update_info,
        old_code: a.old_code,
        new_code: a.new_code,
        old_version: format!("=={}", change.old_version),
        change_id: Some(change.id.clone()),
        model: Some(model.to_string()),
    }
}

/// Runs `f` over `items` with `workers` threads; results in item order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(i, &items[i]);
                slots.lock().expect("no panics while holding")[i] = Some(r);
            });
        }
    });
    slots
        .into_inner()
        .expect("no panics")
        .into_iter()
        .map(|r| r.expect("every slot filled"))
        .collect()
}

fn client(opts: &SynthOptions) -> OpenAiClient {
    OpenAiClient::new(&opts.endpoint, &opts.model, opts.api_key.clone())
        .with_retries(opts.retries, opts.backoff)
        .with_timeout(Duration::from_secs(300))
}

fn params(opts: &SynthOptions) -> GenParams {
    GenParams {
        n: 1,
        temperature: opts.temperature,
        top_p: 1.0,
        max_new_tokens: opts.max_tokens,
        seed: opts.seed,
    }
}

/// Asks the endpoint for `opts.n` candidates per change; `tick` is called once per request.
pub fn synth(changes: &[ApiChange], opts: &SynthOptions, tick: &(dyn Fn() + Sync)) -> SynthOutput {
    let start = Instant::now();
    let client = client(opts);
    let params = params(opts);
    let jobs: Vec<(usize, usize)> = (0..changes.len())
        .flat_map(|c| (0..opts.n).map(move |s| (c, s)))
        .collect();
    let answers = parallel(&jobs, opts.concurrency, |k, &(c, _)| {
        let messages = vec![
            ChatMessage::new("system", SYSTEM_PROMPT),
            ChatMessage::new("user", render_prompt(&changes[c])),
        ];
        let r = client.chat(&messages, &params, opts.seed + k as u64);
        tick();
        (messages, r)
    });
    let mut out = SynthOutput::default();
    out.report.changes = changes.len();
    out.report.requests = jobs.len();
    for ((c, _), (mut messages, reply)) in jobs.iter().zip(answers) {
        let change = &changes[*c];
        let reject = |reason: &str, evidence: String| SynthReject {
            change_id: change.id.clone(),
            model: opts.model.clone(),
            reason: reason.into(),
            evidence,
        };
        match reply {
            Err(e) => {
                out.report.endpoint_failures += 1;
                out.rejects.push(reject("endpoint", e.to_string()));
            }
            Ok(text) => match parse_answer(&text) {
                Ok(a) => {
                    messages.push(ChatMessage::new("assistant", text));
                    out.candidates.push(candidate(change, a, &opts.model));
                    out.conversations.push(messages);
                }
                Err(e) => {
                    out.report.parse_failures += 1;
                    out.rejects.push(reject("parse", e));
                }
            },
        }
    }
    out.report.candidates = out.candidates.len();
    out.report.seconds = start.elapsed().as_secs_f64();
    out
}

/// One repair turn for each failed candidate (`failures[i]` = (reason, evidence) of candidate
/// `i`, `None` when it passed): a parsable answer replaces the candidate, else it stays.
pub fn repair(
    out: &mut SynthOutput,
    changes: &[ApiChange],
    failures: &[Option<(String, String)>],
    opts: &SynthOptions,
    tick: &(dyn Fn() + Sync),
) {
    let client = client(opts);
    let params = params(opts);
    let todo: Vec<usize> = (0..out.candidates.len())
        .filter(|&i| failures.get(i).is_some_and(Option::is_some))
        .collect();
    let conversations = &out.conversations;
    let replies = parallel(&todo, opts.concurrency, |k, &i| {
        let (reason, evidence) = failures[i].clone().expect("filtered");
        let mut messages = conversations[i].clone();
        messages.push(ChatMessage::new("user", repair_prompt(&reason, &evidence)));
        let r = client.chat(&messages, &params, opts.seed + 1_000_000 + k as u64);
        tick();
        r
    });
    out.report.repairs += todo.len();
    out.report.requests += todo.len();
    for (&i, reply) in todo.iter().zip(replies) {
        let Some(change) = changes
            .iter()
            .find(|c| Some(&c.id) == out.candidates[i].change_id.as_ref())
        else {
            continue;
        };
        match reply
            .map_err(|e| e.to_string())
            .and_then(|t| parse_answer(&t))
        {
            Ok(a) => out.candidates[i] = candidate(change, a, &opts.model),
            Err(e) => tracing::info!("repair of {} unusable: {e}", change.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_embedded_json_and_fences() {
        let j =
            r#"{"description": "d", "update_info": "u", "old_code": "a = 1", "new_code": "b = 2"}"#;
        assert_eq!(parse_answer(j).unwrap().new_code, "b = 2");
        let embedded = format!("Sure! Here it is:\n```json\n{j}\n```\nHope it helps {{not json}}");
        assert_eq!(parse_answer(&embedded).unwrap().old_code, "a = 1");
        let fenced = "Old:\n```python\nimport x\nx.f()\n```\nNew:\n```python\nimport x\nx.g()\n```";
        let a = parse_answer(fenced).unwrap();
        assert_eq!(
            (a.old_code.as_str(), a.new_code.as_str()),
            ("import x\nx.f()\n", "import x\nx.g()\n")
        );
        assert!(parse_answer("I cannot help with that.").is_err());
        // JSON-labelled blocks without the code keys are not code.
        assert!(parse_answer("```json\n{\"a\": 1}\n```\n```json\n{\"b\": 2}\n```").is_err());
        assert!(
            parse_answer(r#"{"old_code": "", "new_code": "x"}"#).is_err(),
            "empty code is not an answer"
        );
    }
}
