//! HTTP throughput on loopback with the in-process server and keep-alive clients
//! ([`recode_server::run_load`]). The quick test checks the load generator's accounting; the
//! ignored one is the benchmark (32 clients, batches of 64, 5 s):
//! `cargo test -p recode-server --release --test throughput -- --ignored --nocapture`.

use recode_server::{run_load, BackgroundServer, LoadBody, LoadOptions, ServerConfig};
use std::net::SocketAddr;
use std::time::Duration;

fn server() -> BackgroundServer {
    BackgroundServer::start(ServerConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    })
    .expect("start server")
}

/// `n` distinct bodies of `batch` items each (the code varies with the body and item index).
fn bodies(n: usize, batch: usize) -> Vec<LoadBody> {
    (0..n)
        .map(|b| {
            let items: Vec<serde_json::Value> = (0..batch)
                .map(|i| {
                    serde_json::json!({
                        "completion": format!(" Use the new API.</think>\n<answer>\n```python\nimport jax.numpy as jnp\n\narr = jnp.arange({b})\nsub = jnp.unstack(arr, axis={i})  # new\n```\n</answer>"),
                        "target": format!("import jax.numpy as jnp\n\narr = jnp.arange({b})\nsub_arrays = jnp.unstack(arr, axis={i})"),
                    })
                })
                .collect();
            LoadBody {
                json: serde_json::Value::Array(items).to_string(),
                items: batch,
            }
        })
        .collect()
}

#[test]
fn load_generator_counts_and_bounds() {
    let srv = server();
    let opts = LoadOptions {
        clients: 4,
        duration: Duration::from_secs(10),
        max_requests: 40,
        ..LoadOptions::default()
    };
    let report = run_load(srv.addr(), &bodies(8, 16), &opts);
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert_eq!(report.requests, 40, "bounded by max_requests");
    assert_eq!(report.items, 40 * 16);
    assert!(report.p50 <= report.p99 && report.p99 <= report.max);
    assert!(report.requests_per_sec() > 0.0 && report.items_per_sec() > report.requests_per_sec());

    // A time bound stops it too; a wrong path is counted as errors, not successes.
    let bad = run_load(
        srv.addr(),
        &bodies(1, 1),
        &LoadOptions {
            clients: 2,
            duration: Duration::from_millis(300),
            path: "/nope".into(),
            ..LoadOptions::default()
        },
    );
    assert_eq!(bad.requests, 0);
    assert!(bad.errors > 0 && bad.first_error.as_deref().unwrap_or("").contains("404"));
    assert!(bad.elapsed < Duration::from_secs(5));
    srv.stop().expect("clean stop");
}

#[test]
#[ignore = "benchmark: run explicitly"]
fn throughput_batches_of_64_at_32_clients() {
    let srv = server();
    let report = run_load(srv.addr(), &bodies(64, 64), &LoadOptions::default());
    eprintln!(
        "HTTP /v1/score: {} requests of 64 in {:.2}s = {:.0} req/s ({:.0} completions/s), p50 {:?}, p99 {:?}, errors {}",
        report.requests,
        report.elapsed.as_secs_f64(),
        report.requests_per_sec(),
        report.items_per_sec(),
        report.p50,
        report.p99,
        report.errors,
    );
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    srv.stop().unwrap();
}
