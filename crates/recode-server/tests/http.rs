//! The reward server over real loopback TCP: protocol answers, 4xx JSON errors, body limit,
//! metrics, graceful shutdown. Binds 127.0.0.1 on an ephemeral port only.

use recode_server::{serve, ServerConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_errors_and_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        addr,
        max_body_bytes: 4096,
        ..ServerConfig::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, config, async {
        let _ = rx.await;
    }));

    let (st, body) = request(addr, "GET", "/health", "").await;
    assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));

    let prompt = "<|im_start|>assistant\nLet me solve this step by step.\n<think>";
    let good = " plan</think>\n<answer>\n```python\nx = new(1)\n```\n</answer>";
    let req = serde_json::json!({
        "query": [format!("{prompt}{good}"), format!("{prompt}no answer")],
        "prompts": [prompt, prompt],
        "labels": ["x = new(1)", "x = new(1)"],
    });
    let (st, body) = request(addr, "POST", "/get_reward", &req.to_string()).await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rewards"], serde_json::json!([3.0, -3.0]));
    assert_eq!(v["scores"], v["rewards"]);
    assert_eq!(v["extra_logs"]["em_star"], serde_json::json!([2.0, -2.0]));

    let batch = serde_json::json!([
        {"completion": good, "target": "x = new(1)"},
        {"solution_str": good, "ground_truth": "x = old(1)"},
    ]);
    let (st, body) = request(addr, "POST", "/v1/score", &batch.to_string()).await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["total"], 3.0);
    assert!(v[1]["es_star"].as_f64().unwrap() < 2.0);

    for (path, body, want) in [
        ("/get_reward", "{not json", 400),
        ("/get_reward", r#"{"query": ["a"], "labels": []}"#, 422),
        ("/v1/score", r#"{"completion": 1}"#, 422),
        ("/v1/score", &"x".repeat(10_000), 413),
    ] {
        let (st, body) = request(addr, "POST", path, body).await;
        assert_eq!(st, want, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
        assert!(v["error"].is_string(), "{body}");
    }
    let (st, _) = request(addr, "GET", "/nope", "").await;
    assert_eq!(st, 404);

    let (st, body) = request(addr, "GET", "/metrics", "").await;
    assert_eq!(st, 200);
    assert!(body.contains("recode_completions_scored_total 4"), "{body}");
    assert!(body.contains("recode_client_errors_total 4"), "{body}");

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown in time")
        .unwrap()
        .unwrap();
}
