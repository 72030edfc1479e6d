//! Helpers shared by the CLI integration tests: running `recode …` and starting `recode serve …`
//! as a real process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The CLI binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_recode");

/// The SmolLM2 GGUF that scripts/setup.sh installs (`$RECODE_SMOLLM2_GGUF`).
pub fn gguf() -> String {
    let p = std::env::var("RECODE_SMOLLM2_GGUF")
        .unwrap_or_else(|_| panic!("RECODE_SMOLLM2_GGUF is not set: run scripts/setup.sh"));
    assert!(std::path::Path::new(&p).exists(), "missing model {p}");
    p
}

/// The checkout holding this crate (`../shared` sits beside it).
pub fn checkout() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ReCode training data in `../shared/data`, or `None` once the running test has said it
/// is skipped for want of it (see `recode_data::datasets`).
pub fn recode_data() -> Option<std::path::PathBuf> {
    recode_data::datasets::RECODE_TRAIN.shared_or_skip(&checkout())
}

/// The development part of CodeUpdateArena in `../shared/data`, or `None` (test skipped, saying
/// so).
pub fn arena_dev() -> Option<std::path::PathBuf> {
    recode_data::datasets::CODEUPDATEARENA.shared_or_skip(&checkout())
}

/// The first `n` rows (JSONL lines) of the ReCode training data in `../shared/data`, or `None`
/// (test skipped, saying so).
pub fn recode_rows(n: usize) -> Option<Vec<String>> {
    let path = recode_data()?;
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rows: Vec<String> = text.lines().take(n).map(String::from).collect();
    assert_eq!(rows.len(), n, "{} has fewer than {n} rows", path.display());
    Some(rows)
}

/// Runs `recode ARGS…` to completion.
pub fn recode(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run recode")
}

/// Runs `recode ARGS…` and fails the test, with its stderr, unless it exits 0.
pub fn ok(args: &[&str]) -> Output {
    let out = recode(args);
    assert!(
        out.status.success(),
        "recode {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Max |a - b| over all elements (f32 tensors of the same shape).
pub fn max_abs_diff(
    a: &recode_model::candle_core::Tensor,
    b: &recode_model::candle_core::Tensor,
) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Starts `recode serve model --model MODEL --served-model-name NAME` on a free loopback port;
/// returns the process, its base URL and the rest of its stderr lines.
pub fn start_model_server(model: &str, name: &str) -> (Guard, String, mpsc::Receiver<String>) {
    let (server, addr, stderr) = start_server(
        &[
            "serve",
            "model",
            "--model",
            model,
            "--served-model-name",
            name,
            "--port",
            "0",
        ],
        "recode model server on http://",
        Duration::from_secs(120),
    );
    (server, format!("http://{addr}"), stderr)
}

/// Kills the child if the test fails before it exits.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `recode ARGS…` and waits up to `wait` for the `BANNER ADDR` line on stderr; returns
/// the process, the loopback address it bound and the rest of its stderr lines.
pub fn start_server(
    args: &[&str],
    banner: &str,
    wait: Duration,
) -> (Guard, SocketAddr, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recode");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = Guard(child);
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(rest) = line.split(banner).nth(1) {
                    let addr: SocketAddr = rest.trim().parse().expect("bound address");
                    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
                    return (guard, addr, rx);
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("server did not print `{banner}`; stderr: {seen:?}");
}
