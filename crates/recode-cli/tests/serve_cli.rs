//! `recode serve reward` as a real process: binds 127.0.0.1 on a free port (`--port 0`),
//! prints the bound address on stderr, answers requests, and on SIGTERM drains the
//! in-flight request, closes idle keep-alive connections and exits 0 within 10 s.
#![cfg(unix)]

mod common;

use common::{start_server, Guard, BIN};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts the server and returns it with the address it printed.
fn start() -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    start_server(
        &["serve", "reward", "--host", "127.0.0.1", "--port", "0"],
        "recode reward server on http://",
        Duration::from_secs(60),
    )
}

/// Reads one HTTP/1.1 response (Content-Length framed) from a keep-alive stream.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(n > 0, "connection closed mid-response");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = head[9..12].parse().expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    (status, String::from_utf8(body).expect("utf-8 body"))
}

fn send(s: &mut TcpStream, method: &str, path: &str, body: &str) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write request");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let (mut guard, addr, _stderr) = start();
    let connect = || {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };

    // A keep-alive connection that answers, then stays open and idle.
    let mut idle = connect();
    send(&mut idle, "GET", "/health", "");
    assert_eq!(read_response(&mut idle), (200, r#"{"status":"ok"}"#.into()));

    // A scored request on a second keep-alive connection.
    let mut busy = connect();
    let item = serde_json::json!({
        "completion": " plan</think>\n<answer>\n```python\nx = new(1)\n```\n</answer>",
        "target": "x = new(1)",
    });
    send(
        &mut busy,
        "POST",
        "/v1/score",
        &serde_json::json!([item]).to_string(),
    );
    let (status, body) = read_response(&mut busy);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["total"], 3.0);

    // A large batch still being scored when SIGTERM arrives must be answered in full.
    let filler = "y = 1\n".repeat(400);
    let big: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            serde_json::json!({
                "completion": format!(" p</think>\n<answer>\n```python\n{filler}x = new({i})\n```\n</answer>"),
                "target": format!("{filler}x = new({})", i + 1),
            })
        })
        .collect();
    let posted = Instant::now();
    send(
        &mut busy,
        "POST",
        "/v1/score",
        &serde_json::Value::Array(big).to_string(),
    );
    std::thread::sleep(Duration::from_millis(100)); // the server is reading or scoring it

    let pid = guard.0.id().to_string();
    let sent = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());

    let (status, body) = read_response(&mut busy);
    eprintln!(
        "large batch answered {:?} after posting ({:?} after SIGTERM)",
        posted.elapsed(),
        sent.elapsed()
    );
    assert_eq!(status, 200, "in-flight request not drained: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(3000));

    let code = loop {
        if let Some(status) = guard.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "server still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code.code(), Some(0), "exit status {code:?}");

    // The idle keep-alive connection was closed, and nothing listens any more.
    let mut rest = Vec::new();
    let n = idle.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "unexpected bytes on the idle connection");
    assert!(TcpStream::connect(addr).is_err(), "port still accepting");
}

#[test]
fn bad_port_is_an_error_not_a_hang() {
    // Port already taken: a clear error and a non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["serve", "reward", "--host", "127.0.0.1", "--port", &port])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port), "{err}");
}
