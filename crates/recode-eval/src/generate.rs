//! Completion sources for evaluation: the local model runtime (`recode-model`: GGUF,
//! safetensors directory or hub id, optional LoRA/DoRA adapter, the model's own chat
//! template) and any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, llama.cpp
//! server, Ollama), with parallel requests and retries.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use recode_data::{ChatMessage, ChatTemplate, Ending};
use recode_model::candle_core::{DType, Device};
use recode_model::{ForwardOpts, LoadedModel, SamplingParams};

/// Errors of a completion source.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The local model failed to load.
    #[error("model: loading {spec}: {source}")]
    LoadModel {
        /// The model spec (file, directory or hub id).
        spec: String,
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// An adapter failed to load or merge.
    #[error("model: adapter {}: {source}", path.display())]
    Adapter {
        /// The adapter directory.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// A rendered prompt could not be tokenised.
    #[error("model: tokenising: {source}")]
    Tokenize {
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// Generation failed.
    #[error("model: generation: {source}")]
    Generate {
        /// Underlying error.
        #[source]
        source: Box<recode_model::ModelError>,
    },
    /// The model's tokenizer has no chat template.
    #[error("chat template: {spec} has no chat template in its tokenizer")]
    NoChatTemplate {
        /// The model spec.
        spec: String,
    },
    /// The chat template does not compile or the prompt does not render through it.
    #[error("chat template: {source}")]
    Template {
        /// Underlying error.
        #[source]
        source: Box<recode_data::DataError>,
    },
    /// The endpoint's reply is not JSON.
    #[error("endpoint {url}: invalid JSON reply: {source}")]
    EndpointJson {
        /// Request URL.
        url: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The endpoint's reply has no `choices[0].message.content`.
    #[error("endpoint {url}: reply without choices[0].message.content: {reply}")]
    EndpointNoContent {
        /// Request URL.
        url: String,
        /// The reply.
        reply: String,
    },
    /// The endpoint answered with an HTTP error that is not worth retrying.
    #[error("endpoint {url}: HTTP {status}: {body}")]
    EndpointStatus {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Start of the reply body.
        body: String,
    },
    /// The endpoint kept failing (HTTP 408/429/5xx or transport errors) until the retries ran out.
    #[error("endpoint {url}: {last} (after {attempts} attempts)")]
    EndpointRetries {
        /// Request URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Sampling settings shared by every source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenParams {
    /// Completions per prompt.
    pub n: usize,
    /// Temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus mass.
    pub top_p: f64,
    /// Maximum new tokens per completion.
    pub max_new_tokens: usize,
    /// Base seed (local model; sent to endpoints as `seed` + sample index).
    pub seed: u64,
}

/// A source of completions: `n` completions for each chat prompt.
pub trait Generator {
    /// Completions for each prompt (`params.n` each, in prompt order).
    fn generate(
        &self,
        prompts: &[Vec<ChatMessage>],
        params: &GenParams,
    ) -> Result<Vec<Vec<String>>, GenError>;
    /// A short description recorded with the generations (model path or endpoint + name).
    fn describe(&self) -> String;
    /// Prompts per call that keep memory and latency reasonable.
    fn batch_size(&self) -> usize;
}

/// The local model runtime with its own chat template.
pub struct LocalGenerator {
    model: LoadedModel,
    template: ChatTemplate,
    description: String,
    batch: usize,
}

impl LocalGenerator {
    /// Loads `spec` (GGUF file, HF directory or hub id) on CPU in f32 and, if given, merges a
    /// PEFT adapter directory.
    pub fn load(spec: &str, adapter: Option<&Path>, batch: usize) -> Result<Self, GenError> {
        let mut model = recode_model::load_model(spec, DType::F32, &Device::Cpu).map_err(|e| {
            GenError::LoadModel {
                spec: spec.to_string(),
                source: Box::new(e),
            }
        })?;
        if let Some(dir) = adapter {
            model
                .model
                .load_adapters(dir)
                .and_then(|_| model.model.merge_adapters())
                .map_err(|e| GenError::Adapter {
                    path: dir.to_path_buf(),
                    source: Box::new(e),
                })?;
        }
        let tok = &model.tokenizer;
        let src = tok
            .chat_template
            .as_deref()
            .ok_or_else(|| GenError::NoChatTemplate {
                spec: spec.to_string(),
            })?;
        let bos = tok.bos.as_ref().map(|b| b.0.as_str()).unwrap_or("");
        let eos = tok.eos.first().map(|e| e.0.as_str()).unwrap_or("");
        let template = ChatTemplate::new(src, bos, eos).map_err(|e| GenError::Template {
            source: Box::new(e),
        })?;
        let description = match adapter {
            Some(a) => format!("{spec} + adapter {}", a.display()),
            None => spec.to_string(),
        };
        Ok(LocalGenerator {
            model,
            template,
            description,
            batch: batch.max(1),
        })
    }

    /// The prompt text as the model sees it (a final assistant turn is continued).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, GenError> {
        let ending = if messages.last().is_some_and(|m| m.role == "assistant") {
            Ending::ContinueFinal
        } else {
            Ending::GenerationPrompt
        };
        self.template
            .render(messages, ending)
            .map_err(|e| GenError::Template {
                source: Box::new(e),
            })
    }
}

impl LocalGenerator {
    /// Renders and tokenises each conversation, then samples with `sp` (all of recode-model's
    /// settings: stop strings, seeds, n); returns the completions and each prompt's length in
    /// tokens.
    pub fn complete(
        &self,
        prompts: &[Vec<ChatMessage>],
        sp: &SamplingParams,
    ) -> Result<(Vec<recode_model::Completion>, Vec<usize>), GenError> {
        let ids = prompts
            .iter()
            .map(|m| {
                let text = self.render(m)?;
                self.model
                    .tokenizer
                    .encode(&text)
                    .map_err(|e| GenError::Tokenize {
                        source: Box::new(e),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (outs, stats) = recode_model::generate(
            &self.model.model,
            &self.model.tokenizer,
            &ids,
            sp,
            ForwardOpts::INFERENCE,
            None,
        )
        .map_err(|e| GenError::Generate {
            source: Box::new(e),
        })?;
        tracing::debug!(
            tokens = stats.generated_tokens,
            secs = stats.prefill_secs + stats.decode_secs,
            "local generation batch"
        );
        Ok((outs, ids.iter().map(Vec::len).collect()))
    }
}

impl Generator for LocalGenerator {
    fn generate(
        &self,
        prompts: &[Vec<ChatMessage>],
        params: &GenParams,
    ) -> Result<Vec<Vec<String>>, GenError> {
        let sp = SamplingParams {
            temperature: params.temperature,
            top_p: params.top_p,
            max_new_tokens: params.max_new_tokens,
            seed: params.seed,
            n: params.n,
            ..Default::default()
        };
        let (outs, _) = self.complete(prompts, &sp)?;
        let mut out = vec![vec![String::new(); params.n]; prompts.len()];
        for c in outs {
            if let Some(slot) = out
                .get_mut(c.prompt_index)
                .and_then(|r| r.get_mut(c.sample_index))
            {
                *slot = c.text;
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn batch_size(&self) -> usize {
        self.batch
    }
}

/// An OpenAI-compatible chat completions client: one request per sample (`n` separate calls,
/// as the benchmark does for API models), `concurrency` requests in flight, retries with
/// exponential back-off on transport errors, 408, 429 and 5xx.
pub struct OpenAiClient {
    url: String,
    model: String,
    api_key: Option<String>,
    concurrency: usize,
    retries: u32,
    backoff: Duration,
    agent: ureq::Agent,
}

impl OpenAiClient {
    /// A client for `endpoint` (`http://host:port`, `…/v1` or the full
    /// `…/v1/chat/completions`) serving `model`.
    pub fn new(endpoint: &str, model: &str, api_key: Option<String>) -> OpenAiClient {
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/chat/completions") {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        OpenAiClient {
            url,
            model: model.to_string(),
            api_key,
            concurrency: 8,
            retries: 4,
            backoff: Duration::from_millis(500),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(600))
                .build(),
        }
    }

    /// Requests in flight at once (≥ 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Retries after the first attempt, and the first back-off delay (doubled each time).
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = ureq::AgentBuilder::new().timeout(timeout).build();
        self
    }

    /// The request URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One chat completion (with retries); returns the message content.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
        seed: u64,
    ) -> Result<String, GenError> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
            "n": 1,
        });
        let mut attempt = 0;
        loop {
            let mut req = self
                .agent
                .post(&self.url)
                .set("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {key}"));
            }
            let retryable = match req.send_json(body.clone()) {
                Ok(resp) => {
                    let v: serde_json::Value =
                        resp.into_json().map_err(|source| GenError::EndpointJson {
                            url: self.url.clone(),
                            source,
                        })?;
                    return v
                        .pointer("/choices/0/message/content")
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| GenError::EndpointNoContent {
                            url: self.url.clone(),
                            reply: v.to_string(),
                        });
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    let body = text.chars().take(300).collect::<String>();
                    if code == 408 || code == 429 || code >= 500 {
                        format!("HTTP {code}: {body}")
                    } else {
                        return Err(GenError::EndpointStatus {
                            url: self.url.clone(),
                            status: code,
                            body,
                        });
                    }
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.retries {
                return Err(GenError::EndpointRetries {
                    url: self.url.clone(),
                    attempts: attempt + 1,
                    last: retryable,
                });
            }
            let delay = self.backoff * 2u32.saturating_pow(attempt);
            tracing::warn!("{}: {retryable}; retrying in {delay:?}", self.url);
            std::thread::sleep(delay);
            attempt += 1;
        }
    }
}

impl Generator for OpenAiClient {
    fn generate(
        &self,
        prompts: &[Vec<ChatMessage>],
        params: &GenParams,
    ) -> Result<Vec<Vec<String>>, GenError> {
        let jobs: Vec<(usize, usize)> = (0..prompts.len())
            .flat_map(|p| (0..params.n).map(move |s| (p, s)))
            .collect();
        let out = Mutex::new(vec![vec![String::new(); params.n]; prompts.len()]);
        let first_error: Mutex<Option<GenError>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.concurrency.min(jobs.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, k)) = jobs.get(i) else { break };
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    match self.chat(&prompts[p], params, params.seed.wrapping_add(k as u64)) {
                        Ok(text) => {
                            if let Ok(mut o) = out.lock() {
                                o[p][k] = text;
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(out.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn describe(&self) -> String {
        format!("{} model {}", self.url, self.model)
    }

    fn batch_size(&self) -> usize {
        self.concurrency * 4
    }
}
