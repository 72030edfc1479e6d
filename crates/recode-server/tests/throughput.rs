//! HTTP throughput on loopback: 32 concurrent clients posting batches of 64 to `/v1/score`
//! for a bounded time; prints requests/s and p99 latency. Run with
//! `cargo test -p recode-server --release --test throughput -- --ignored --nocapture`.

use recode_server::{serve, ServerConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run explicitly"]
async fn throughput_batches_of_64_at_32_clients() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        ServerConfig {
            addr,
            ..ServerConfig::default()
        },
        async {
            let _ = rx.await;
        },
    ));
    let item = serde_json::json!({
        "completion": " Use the new API.</think>\n<answer>\n```python\nimport jax.numpy as jnp\n\narr = jnp.array([1, 2, 3, 4, 5])\nsub = jnp.unstack(arr, axis=0)  # new\n```\n</answer>",
        "target": "import jax.numpy as jnp\n\narr = jnp.array([1, 2, 3, 4, 5])\nsub_arrays = jnp.unstack(arr, axis=0)",
    });
    let body = serde_json::Value::Array(vec![item; 64]).to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut clients = Vec::new();
    for _ in 0..32 {
        let body = body.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let req = format!(
                    "POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(req.as_bytes()).await.unwrap();
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.unwrap();
                assert!(buf.starts_with(b"HTTP/1.1 200"));
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    eprintln!(
        "HTTP /v1/score: {} requests of 64 in {secs:.2}s = {:.0} req/s ({:.0} completions/s), p50 {:?}, p99 {p99:?}",
        all.len(),
        all.len() as f64 / secs,
        all.len() as f64 * 64.0 / secs,
        all[all.len() / 2],
    );
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
