//! # recode-server — ReCode rewards over HTTP
//!
//! An axum service that scores completions with [`recode_reward`], for RL engines that call a
//! remote reward model:
//!
//! * `POST /get_reward` — OpenRLHF's remote reward protocol: `{"query": [...], "prompts":
//!   [...], "labels": [...]}` → `{"rewards": [...], "scores": [...], "extra_logs": {...}}`.
//!   The completion is the query minus its prompt (when the query starts with it); the label
//!   is the reference new code.
//! * `POST /v1/score` — batch: `[{"completion", "target"}]` (or `solution_str`/`ground_truth`)
//!   → one object per item with every component and `total`.
//! * `GET /health`, `GET /metrics` (Prometheus text format).
//!
//! Malformed JSON is a 400, a wrong shape 422, an oversized body 413, all with a JSON body
//! `{"error": "..."}`. Scoring runs on rayon threads (via `spawn_blocking`), never on the
//! async workers. [`run_blocking`] handles SIGTERM and ctrl-c with a graceful shutdown.
//!
//! [`chat`] is an OpenAI-compatible `/v1/chat/completions` service over any
//! [`chat::ChatBackend`] (`recode serve model` puts the local model runtime behind it).
//!
//! [`load`] runs the server in-process ([`BackgroundServer`]) and measures loopback
//! throughput with keep-alive clients ([`run_load`]), for `recode bench reward`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recode_reward::{Mode, RewardBreakdown, RewardKind};
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub mod chat;
pub mod load;
pub use load::{run_load, BackgroundServer, LoadBody, LoadOptions, LoadReport};

/// Configuration of the reward service.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to bind (tests and the default use loopback).
    pub addr: SocketAddr,
    /// Reward definition.
    pub mode: Mode,
    /// Components summed into the returned reward (default: format + ES*).
    pub rewards: Vec<RewardKind>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            mode: Mode::Paper,
            rewards: RewardKind::TRAINING.to_vec(),
            max_body_bytes: 64 << 20,
        }
    }
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("I/O error on {addr}: {source}")]
    Io {
        /// The address involved.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

#[derive(Default)]
struct Metrics {
    requests_get_reward: AtomicU64,
    requests_score: AtomicU64,
    client_errors: AtomicU64,
    completions_scored: AtomicU64,
    scoring_micros: AtomicU64,
}

struct AppState {
    config: ServerConfig,
    metrics: Metrics,
}

/// A JSON error response.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Builds the router (exposed for in-process tests and embedding).
pub fn router(config: ServerConfig) -> Router {
    let limit = config.max_body_bytes;
    let state = Arc::new(AppState {
        config,
        metrics: Metrics::default(),
    });
    Router::new()
        .route("/get_reward", post(get_reward))
        .route("/v1/score", post(score_batch))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Parses a JSON body: 400 for malformed JSON, 422 for a wrong shape, the extractor's own
/// status (e.g. 413) when the body could not be read.
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unexpected request shape: {e}"),
        )
    })
}

/// [`parse_json`], counting failures in the reward service's metrics.
fn parse_body<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_json(body).inspect_err(|_| {
        state.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    })
}

/// Scores on the blocking pool (rayon inside) and records metrics.
async fn score_all(
    state: &Arc<AppState>,
    completions: Vec<String>,
    targets: Vec<String>,
) -> Result<Vec<RewardBreakdown>, ApiError> {
    let mode = state.config.mode;
    let n = completions.len() as u64;
    let start = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        recode_reward::score_pairs(&completions, &targets, mode)
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scoring task failed: {e}"),
        )
    })?
    .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let m = &state.metrics;
    m.completions_scored.fetch_add(n, Ordering::Relaxed);
    m.scoring_micros
        .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
    Ok(result)
}

#[derive(Deserialize)]
struct GetRewardRequest {
    query: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
    labels: Vec<String>,
}

async fn get_reward(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state
        .metrics
        .requests_get_reward
        .fetch_add(1, Ordering::Relaxed);
    let req: GetRewardRequest = parse_body(&state, body)?;
    if req.labels.len() != req.query.len()
        || (!req.prompts.is_empty() && req.prompts.len() != req.query.len())
    {
        state.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "query ({}), prompts ({}) and labels ({}) must have the same length",
                req.query.len(),
                req.prompts.len(),
                req.labels.len()
            ),
        ));
    }
    let completions: Vec<String> = req
        .query
        .iter()
        .enumerate()
        .map(|(i, q)| match req.prompts.get(i) {
            Some(p) => q.strip_prefix(p.as_str()).unwrap_or(q).to_string(),
            None => q.clone(),
        })
        .collect();
    let scored = score_all(&state, completions, req.labels).await?;
    let kinds = &state.config.rewards;
    let rewards: Vec<f64> = scored.iter().map(|r| r.total_of(kinds)).collect();
    let col = |f: fn(&RewardBreakdown) -> f64| scored.iter().map(f).collect::<Vec<f64>>();
    Ok(Json(serde_json::json!({
        "rewards": rewards,
        "scores": rewards,
        "extra_logs": {
            "format": col(|r| r.format),
            "em_star": col(|r| r.em_star),
            "es_star": col(|r| r.es_star),
            "similarity": col(|r| r.similarity),
        },
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ScoreItem {
    #[serde(alias = "solution_str")]
    completion: String,
    #[serde(alias = "ground_truth")]
    target: String,
}

async fn score_batch(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.metrics.requests_score.fetch_add(1, Ordering::Relaxed);
    let items: Vec<ScoreItem> = parse_body(&state, body)?;
    let (completions, targets) = items.into_iter().map(|i| (i.completion, i.target)).unzip();
    let scored = score_all(&state, completions, targets).await?;
    let kinds = &state.config.rewards;
    let out: Vec<serde_json::Value> = scored
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["total"] = serde_json::json!(r.total_of(kinds));
            v
        })
        .collect();
    Ok(Json(out).into_response())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let text = format!(
        "# HELP recode_requests_total Requests per endpoint.\n# TYPE recode_requests_total counter\n\
         recode_requests_total{{endpoint=\"get_reward\"}} {}\nrecode_requests_total{{endpoint=\"v1_score\"}} {}\n\
         # HELP recode_client_errors_total Requests answered with a 4xx error.\n# TYPE recode_client_errors_total counter\n\
         recode_client_errors_total {}\n\
         # HELP recode_completions_scored_total Completions scored.\n# TYPE recode_completions_scored_total counter\n\
         recode_completions_scored_total {}\n\
         # HELP recode_scoring_seconds_total Wall time spent scoring.\n# TYPE recode_scoring_seconds_total counter\n\
         recode_scoring_seconds_total {:.6}\n",
        get(&m.requests_get_reward),
        get(&m.requests_score),
        get(&m.client_errors),
        get(&m.completions_scored),
        get(&m.scoring_micros) as f64 / 1e6,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves the reward service on `listener` until `shutdown` completes, then drains in-flight
/// requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    tracing::info!(mode = %config.mode, "reward service");
    serve_router(listener, router(config), shutdown).await
}

/// Serves any router on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Io { addr, source })
}

/// Resolves on ctrl-c or SIGTERM.
///
/// On Unix the handlers are installed when this is called (not when first polled), so a
/// signal arriving right after the call is not lost to the default action; call it inside a
/// tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => tracing::info!("SIGTERM received, draining"),
                () = wait(int) => tracing::info!("SIGINT received, draining"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("ctrl-c received, draining");
        }
    }
}

/// Binds `config.addr` and serves the reward service until SIGTERM/ctrl-c, on its own tokio
/// runtime (for the CLI).
pub fn run_blocking(config: ServerConfig) -> Result<(), ServerError> {
    let addr = config.addr;
    run_router_blocking(addr, router(config), "reward server")
}

/// Binds `addr` and serves `app` until SIGTERM/ctrl-c on its own tokio runtime, printing
/// `recode {what} on http://ADDR` on stderr once bound (port 0 picks a free port).
pub fn run_router_blocking(addr: SocketAddr, app: Router, what: &str) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io { addr, source })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Io { addr, source })?;
        // Handlers first, then the address: whoever reads it may signal us at once.
        let shutdown = shutdown_signal();
        eprintln!(
            "recode {what} on http://{}",
            listener.local_addr().unwrap_or(addr)
        );
        serve_router(listener, app, shutdown).await
    })
}
