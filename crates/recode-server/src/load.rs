//! Loopback load generation for the reward service: an in-process server on its own runtime
//! ([`BackgroundServer`]) and a bounded keep-alive load test ([`run_load`]) reporting
//! requests/s, items/s and latency percentiles. Used by `recode bench reward` and the
//! throughput test.

use crate::{serve_router, ServerConfig, ServerError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server (reward service or any router) on a background thread with its own tokio runtime.
pub struct BackgroundServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl BackgroundServer {
    /// Binds `config.addr` (port 0 picks a free port) and starts the reward service.
    pub fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let addr = config.addr;
        Self::start_router(addr, crate::router(config))
    }

    /// Binds `addr` (port 0 picks a free port) and starts serving `app`.
    pub fn start_router(addr: SocketAddr, app: axum::Router) -> Result<Self, ServerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| ServerError::Io { addr, source })?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| ServerError::Io { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::Io { addr, source })?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("recode-server".into())
            .spawn(move || {
                rt.block_on(serve_router(listener, app, async {
                    let _ = rx.await;
                }))
            })
            .map_err(|source| ServerError::Io { addr, source })?;
        Ok(BackgroundServer {
            addr: bound,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts down gracefully and waits for the server thread.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServerError::Io {
                addr: self.addr,
                source: std::io::Error::other("server thread panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// One request body and the number of items it holds.
#[derive(Clone, Debug)]
pub struct LoadBody {
    /// JSON body.
    pub json: String,
    /// Items in the body (completions scored per request).
    pub items: usize,
}

/// Bounds and shape of a load test.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent clients, each with its own keep-alive connection.
    pub clients: usize,
    /// Stop sending new requests after this long.
    pub duration: Duration,
    /// Stop after this many requests in total (whichever bound comes first).
    pub max_requests: usize,
    /// Path to POST to, e.g. `/v1/score`.
    pub path: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            clients: 32,
            duration: Duration::from_secs(5),
            max_requests: 1_000_000,
            path: "/v1/score".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Result of [`run_load`].
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Successful (2xx, body read) requests.
    pub requests: usize,
    /// Items scored by the successful requests.
    pub items: usize,
    /// Failed requests (connection error, non-2xx, unreadable body).
    pub errors: usize,
    /// The first failure, for diagnosis.
    pub first_error: Option<String>,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Median latency of successful requests.
    pub p50: Duration,
    /// 99th-percentile latency of successful requests.
    pub p99: Duration,
    /// Slowest successful request.
    pub max: Duration,
    /// Concurrent clients (one keep-alive connection each).
    pub clients: usize,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Items scored per second.
    pub fn items_per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q`-quantile (nearest rank) of sorted `v`; zero when empty.
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// POSTs `bodies` (cycled, each client starting at a different one) to `http://addr{path}`
/// from `opts.clients` threads, each reusing one keep-alive connection, until
/// `opts.duration` or `opts.max_requests` is reached.
pub fn run_load(addr: SocketAddr, bodies: &[LoadBody], opts: &LoadOptions) -> LoadReport {
    let url = format!("http://{addr}{}", opts.path);
    let clients = opts.clients.max(1);
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + opts.duration;
    let per_client: Vec<(Vec<Duration>, usize, usize, Option<String>)> = if bodies.is_empty() {
        Vec::new()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|c| {
                    let url = &url;
                    let issued = Arc::clone(&issued);
                    s.spawn(move || {
                        // One agent per client: its pool keeps the one connection alive.
                        let agent = ureq::AgentBuilder::new()
                            .max_idle_connections_per_host(1)
                            .timeout(opts.timeout)
                            .build();
                        let mut latencies = Vec::new();
                        let (mut items, mut errors, mut first_error) = (0usize, 0usize, None);
                        let mut i = c;
                        while Instant::now() < deadline
                            && issued.fetch_add(1, Ordering::Relaxed) < opts.max_requests
                        {
                            let body = &bodies[i % bodies.len()];
                            i += 1;
                            let t = Instant::now();
                            let result = agent
                                .post(url)
                                .set("Content-Type", "application/json")
                                .send_string(&body.json)
                                .map_err(|e| e.to_string())
                                .and_then(|r| r.into_string().map_err(|e| e.to_string()));
                            match result {
                                Ok(text) if text.starts_with('[') || text.starts_with('{') => {
                                    latencies.push(t.elapsed());
                                    items += body.items;
                                }
                                Ok(text) => {
                                    errors += 1;
                                    first_error.get_or_insert_with(|| {
                                        format!("unexpected body: {:.200}", text)
                                    });
                                }
                                Err(e) => {
                                    errors += 1;
                                    first_error.get_or_insert(e);
                                }
                            }
                        }
                        (latencies, items, errors, first_error)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (Vec::new(), 0, 1, Some("client thread panicked".into()))
                    })
                })
                .collect()
        })
    };
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let (mut items, mut errors, mut first_error) = (0, 0, None);
    for (l, n, e, f) in per_client {
        latencies.extend(l);
        items += n;
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    latencies.sort_unstable();
    LoadReport {
        requests: latencies.len(),
        items,
        errors,
        first_error,
        elapsed,
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        clients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
