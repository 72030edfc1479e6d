//! `recode eval setup|check-refs|run --bench gitchameleon` end to end on the CI slice
//! (sympy==1.13 and scipy==1.9.2: 32 problems, 2 environments built from PyPI once and cached):
//! the ground truth passes 32/32; a model served over a real OpenAI-compatible HTTP endpoint on
//! 127.0.0.1 that always answers `pass` scores pass@1 0; cached generations holding the ground
//! truth in a ```python fence score 100; `recode report compare` reads both runs.
//! Needs root (the sandbox's namespaces) and the shared data beside the checkout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

const SLICE: &str = "sympy==1.13,scipy==1.9.2";

/// The data in `../shared/data/gitchameleon`, or `None` (the test is skipped, saying so).
fn data_dir() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::GITCHAMELEON.shared_or_skip(&checkout)
}

fn recode(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_recode"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recode {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A minimal OpenAI-compatible chat completions server on 127.0.0.1 answering `answer` to every
/// request (one request per connection); returns its base URL and the request counter.
fn fake_endpoint(answer: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request: Value = serde_json::from_slice(&body).unwrap();
            assert!(first.starts_with("POST /v1/chat/completions"), "{first}");
            assert_eq!(request["messages"][0]["role"], "user");
            seen.fetch_add(1, Ordering::SeqCst);
            let reply = serde_json::json!({
                "id": "x", "object": "chat.completion", "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
            })
            .to_string();
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, count)
}

fn last_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn slice_ground_truth_wrong_answers_and_report() {
    let Some(data) = data_dir() else {
        return;
    };
    let data_s = data.to_str().unwrap();
    // Built once (about a minute from PyPI), then cached.
    let setup = recode(&[
        "eval",
        "setup",
        "--bench",
        "gitchameleon",
        "--data",
        data_s,
        "--library",
        SLICE,
    ]);
    let log = String::from_utf8_lossy(&setup.stderr);
    assert!(log.contains("2 of 2 environments ready"), "{log}");

    let out = recode(&[
        "eval",
        "check-refs",
        "--bench",
        "gitchameleon",
        "--data",
        data_s,
        "--library",
        SLICE,
        "--json",
    ]);
    let r = last_json(&out);
    assert_eq!(
        (r["total"].as_u64(), r["passed"].as_u64()),
        (Some(32), Some(32)),
        "{r}"
    );
    assert_eq!(r["per_library"]["sympy"]["passed"], 15);
    assert_eq!(r["per_library"]["scipy"]["passed"], 17);
    assert_eq!(r["env_incomplete"], 0);
    assert_eq!(r["failures"].as_array().unwrap().len(), 0);
    assert_eq!(r["visible_passed"], 32);

    // A model that answers `pass` everywhere, through a real HTTP endpoint.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    let (url, requests) = fake_endpoint("pass");
    recode(&[
        "eval",
        "run",
        "--bench",
        "gitchameleon",
        "--data",
        data_s,
        "--library",
        SLICE,
        "--endpoint",
        &url,
        "--model",
        "always-pass",
        "-n",
        "1",
        "--output",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(requests.load(Ordering::SeqCst), 32);
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(wrong.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["bench"], "gitchameleon");
    assert_eq!(s["examples"], 32);
    assert_eq!(s["pass@1"], 0.0);
    assert_eq!(s["pass_at_k"]["pass@1"], 0.0);
    assert_eq!(s["per_package"]["sympy"]["pass@1"], 0.0);
    let sandbox = &s["settings"]["sandbox"];
    assert_eq!(sandbox["protections"]["isolated"], true, "{sandbox}");
    assert_eq!(sandbox["verdicts"], "exit_status");
    let results = read_jsonl(&wrong.join("results.jsonl"));
    assert_eq!(results.len(), 32);
    for r in &results {
        assert_eq!(r["code"], "pass");
        assert_eq!(r["passed"], false);
        // `from sample_N import f` fails at collection: pytest's status 2.
        assert_eq!(r["error_class"], "exit:2", "{r}");
        assert_eq!(r["visible"]["passed"], false);
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
    }

    // Cached generations holding the ground truth in a python fence (no model needed).
    let right = dir.path().join("right");
    std::fs::create_dir_all(&right).unwrap();
    let truth = read_jsonl(&data.join("ground_truth_solutions.jsonl"));
    let mut cache = std::fs::File::create(right.join("generations.jsonl")).unwrap();
    for t in &truth {
        let completion = format!(
            "Here it is:\n```python\n{}\n```\n",
            t["answer"].as_str().unwrap()
        );
        let rec = serde_json::json!({"id": t["example_id"], "sample": 0, "completion": completion,
                                     "generator": "ground truth", "gen_secs": 0.0});
        writeln!(cache, "{rec}").unwrap();
    }
    drop(cache);
    recode(&[
        "eval",
        "run",
        "--bench",
        "gitchameleon",
        "--data",
        data_s,
        "--library",
        SLICE,
        "--limit",
        "4",
        "-n",
        "1",
        "--output",
        right.to_str().unwrap(),
    ]);
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(right.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        (s["examples"].as_u64(), s["pass@1"].as_f64()),
        (Some(4), Some(100.0)),
        "{s}"
    );
    assert_eq!(s["extraction"]["fence"], 4);

    let html = dir.path().join("compare.html");
    recode(&[
        "report",
        "compare",
        wrong.to_str().unwrap(),
        right.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("gitchameleon") && page.contains("sympy"),
        "report"
    );
}
