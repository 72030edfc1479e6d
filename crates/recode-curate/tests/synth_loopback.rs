//! `synth` against a real HTTP server on 127.0.0.1 with canned OpenAI-style answers: one answer
//! as JSON inside prose, one as two fenced blocks, one unusable, one off target and then
//! repaired after verification, and a 503 that is retried. The changes are mined from the real
//! packaging 21.3 -> 22.0 and the candidates verified in the sandbox (PyPI, root, as in CI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use recode_curate::synth::{repair, synth, SynthOptions};
use recode_curate::verify::{failures, VerifyOptions};
use recode_curate::{mine, verify, MineOptions};
use recode_venv::EnvManager;

const LEGACY: &str = r#"Here is the example you asked for:
{"description": "The code demonstrates how to handle a non-PEP 440 version string.",
 "update_info": "LegacyVersion has been removed; Version raises InvalidVersion for such strings.",
 "old_code": "from packaging.version import LegacyVersion\nprint(LegacyVersion('2021-custom').public)\n",
 "new_code": "from packaging.version import Version, InvalidVersion\ntry:\n    print(Version('2021-custom'))\nexcept InvalidVersion:\n    print('2021-custom')\n"}
Let me know if you need more."#;

const STRIP_OFF_TARGET: &str = r#"{"description": "The code demonstrates how to canonicalize a version.", "update_info": "canonicalize_version now accepts strip_trailing_zero.", "old_code": "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0'))\n", "new_code": "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0') + '!')\n"}"#;

const STRIP_REPAIRED: &str = r#"{"description": "The code demonstrates how to keep trailing zeros.", "update_info": "canonicalize_version now accepts strip_trailing_zero.", "old_code": "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0'))\n", "new_code": "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0', strip_trailing_zero=False))\n"}"#;

const INSTALLED_FENCED: &str = "Old code:\n```python\nfrom packaging.specifiers import SpecifierSet\nprint(SpecifierSet('>=1.0').contains('1.1'))\n```\nNew code:\n```python\nfrom packaging.specifiers import SpecifierSet\nprint(SpecifierSet('>=1.0').contains('1.1.dev0', installed=True))\n```\n";

/// A canned chat-completions server; returns its base URL and a request counter.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let msgs = req["messages"].as_array().unwrap();
            let last = msgs.last().unwrap()["content"].as_str().unwrap();
            let first_user = msgs[1]["content"].as_str().unwrap();
            let (status, content) = if n == 0 {
                ("503 Service Unavailable", String::new())
            } else if last.starts_with("Verification against the real versions failed") {
                assert!(
                    last.contains("off_target") && last.contains("strip_trailing_zero"),
                    "{last}"
                );
                ("200 OK", STRIP_REPAIRED.to_string())
            } else if first_user.contains("`packaging.version.LegacyVersion`") {
                ("200 OK", LEGACY.to_string())
            } else if first_user.contains("strip_trailing_zero") {
                ("200 OK", STRIP_OFF_TARGET.to_string())
            } else if first_user.contains("`installed`") {
                ("200 OK", INSTALLED_FENCED.to_string())
            } else {
                ("200 OK", "I am not sure what you mean.".to_string())
            };
            let reply = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, count)
}

#[test]
fn synth_parses_rejects_retries_and_repairs_then_verify_accepts() {
    let mgr = EnvManager::from_env();
    let mine_opts = MineOptions {
        dist: "packaging".into(),
        old: "21.3".into(),
        new: "22.0".into(),
        modules: vec![],
        python: None,
        snapshot_timeout: Duration::from_secs(120),
        sdist: false,
    };
    let (changes, _) = mine(&mgr, &mine_opts).unwrap();
    let (url, requests) = serve();
    let opts = SynthOptions {
        endpoint: url,
        model: "canned".into(),
        api_key: None,
        n: 1,
        temperature: 0.0,
        max_tokens: 512,
        concurrency: 1,
        retries: 2,
        backoff: Duration::from_millis(10),
        seed: 0,
    };
    let mut out = synth(&changes, &opts, &|| {});
    assert_eq!(out.report.requests, changes.len());
    assert_eq!(
        requests.load(Ordering::SeqCst),
        changes.len() + 1,
        "one 503 retried"
    );
    // LegacySpecifier gets no usable answer.
    assert_eq!(out.report.parse_failures, 1, "{:?}", out.rejects);
    assert_eq!(out.rejects[0].reason, "parse");
    assert!(out.rejects[0].change_id.ends_with("LegacySpecifier"));
    assert_eq!(out.candidates.len(), 3);
    for c in &out.candidates {
        assert_eq!(
            (
                c.dependency.as_str(),
                c.old_version.as_str(),
                c.new_version.as_str()
            ),
            ("packaging", "==21.3", "==22.0")
        );
        assert_eq!(c.model.as_deref(), Some("canned"));
        assert!(
            c.description.starts_with("The code demonstrates how to"),
            "{c:?}"
        );
    }
    // One repair turn for what fails verification: only the off-target one.
    let vopts = VerifyOptions {
        timeout_secs: 5.0,
        ..VerifyOptions::default()
    };
    let fails = failures(&mgr, &out.candidates, &vopts).unwrap();
    assert_eq!(fails.iter().filter(|f| f.is_some()).count(), 1, "{fails:?}");
    repair(&mut out, &changes, &fails, &opts, &|| {});
    assert_eq!(out.report.repairs, 1);
    let verified = verify(&mgr, &out.candidates, &vopts, &()).unwrap();
    assert!(verified.rejects.is_empty(), "{:?}", verified.rejects);
    let verdicts: Vec<(&str, &str)> = verified
        .meta
        .iter()
        .map(|m| {
            (
                m.change_id.as_deref().unwrap().rsplit(':').next().unwrap(),
                m.verdict.as_str(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("packaging.version.LegacyVersion", "breaking")),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("strip_trailing_zero", "additive")),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("installed", "additive")),
        "{verdicts:?}"
    );
    assert!(verified
        .meta
        .iter()
        .all(|m| m.model.as_deref() == Some("canned")));
}
