//! `recode eval run` end to end: an OpenAI-compatible endpoint (a real HTTP peer on 127.0.0.1,
//! `python/eval/openai_peer.py`, answering canned completions) and the local model runtime
//! (SmolLM2-135M, `RECODE_SMOLLM2_GGUF`), both scored in the sandbox, with the generation cache
//! resumed by id. Needs the eval virtualenv (`recode eval setup`) and, for the local test, the
//! model from `scripts/setup.sh`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use recode_eval::arena::{load_arena, prepare, SplitMode};
use recode_eval::executor::{ExecConfig, ExecutorPool};
use recode_eval::generate::{GenParams, LocalGenerator, OpenAiClient};
use recode_eval::prompt::ArenaPrompt;
use recode_eval::run::{load_generations, run_eval, Benchmark, Task};
use recode_eval::setup::{default_venv_dir, ready_python};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    ready_python(&default_venv_dir()).unwrap_or_else(|e| {
        panic!("{e}: these tests need the eval venv; run `recode eval setup` first")
    })
}

/// The development part of CodeUpdateArena in `../shared/data`, or `None` (the test is
/// skipped, saying so).
fn arena() -> Option<Benchmark> {
    let path = recode_data::datasets::CODEUPDATEARENA.shared_or_skip(&repo())?;
    Some(Benchmark::Arena(prepare(
        load_arena(&path).expect("dev file"),
        SplitMode::Paper,
    )))
}

fn pool() -> ExecutorPool {
    let cfg = ExecConfig::new(python(), 2);
    ExecutorPool::start(cfg).expect("pool")
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the peer with `answers` ([needle, reply] pairs); returns it and its port.
fn start_peer(dir: &Path, answers: &[(String, String)], fail_first: usize) -> (Peer, u16) {
    let file = dir.join("answers.json");
    std::fs::write(&file, serde_json::to_string(answers).unwrap()).unwrap();
    let mut child = Command::new(python())
        .arg(repo().join("python/eval/openai_peer.py"))
        .arg(&file)
        .args(["--model", "peer-model", "--fail-first"])
        .arg(fail_first.to_string())
        .args(["--max-requests", "200", "--lifetime", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("peer prints its port");
    (Peer(child), port)
}

fn answer(code: &str) -> String {
    format!("<think>use the new API</think>\n<answer>\n```python\n{code}\n```\n</answer>")
}

fn params(n: usize) -> GenParams {
    GenParams {
        n,
        temperature: 0.8,
        top_p: 0.7,
        max_new_tokens: 512,
        seed: 1,
    }
}

#[test]
fn endpoint_run_scores_and_resumes_without_regenerating() {
    let Some(bench) = arena() else {
        return;
    };
    let Benchmark::Arena(set) = &bench else {
        unreachable!()
    };
    let prompt = ArenaPrompt::default_with_prefix(false);
    let tasks: Vec<Task> = bench.tasks(&prompt, Some(3)).unwrap();
    // References for the first two problems, a wrong answer for the third.
    let exs = &set.updates[0].record.examples;
    let answers = vec![
        (exs[0].problem.clone(), answer(&exs[0].ref_solution)),
        (exs[1].problem.clone(), answer(&exs[1].ref_solution)),
        (exs[2].problem.clone(), answer("def nothing():\n    pass")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (_peer, port) = start_peer(dir.path(), &answers, 2);
    let client = OpenAiClient::new(&format!("http://127.0.0.1:{port}"), "peer-model", None)
        .with_concurrency(3)
        .with_retries(4, Duration::from_millis(50));
    let out = dir.path().join("run");
    let pool = pool();
    let summary = run_eval(
        &bench,
        &tasks,
        Some(&client),
        &params(2),
        &pool,
        &out,
        &|_, _| {},
        &|| {},
    )
    .expect("run");
    let p1 = summary.overall.pass_at_1.unwrap();
    assert!((p1 - 200.0 / 3.0).abs() < 1e-9, "{summary:?}");
    assert!((summary.overall.upass_at_1.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(summary.overall.pass_old_at_1, Some(0.0));
    assert_eq!(summary.overall.pass_at_5, None, "k > n is not reported");
    assert_eq!(summary.candidates, 6);
    assert_eq!(summary.per_package["itertools"].examples, 3);
    assert_eq!(summary.extraction["answer"], 6);
    let results = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 6);
    let first: serde_json::Value = serde_json::from_str(results.lines().next().unwrap()).unwrap();
    assert_eq!(first["with_update"]["passed"], true);
    assert_eq!(first["without_update"]["passed"], false);
    let cache_path = out.join("generations.jsonl");
    let cache_text = std::fs::read_to_string(&cache_path).unwrap();
    assert_eq!(cache_text.lines().count(), 6);

    // Re-scoring with no generator at all: same summary, cache untouched.
    let again = run_eval(
        &bench,
        &tasks,
        None,
        &params(2),
        &pool,
        &out,
        &|_, _| {},
        &|| {},
    )
    .expect("rescore");
    assert_eq!(again.overall, summary.overall);
    assert_eq!(std::fs::read_to_string(&cache_path).unwrap(), cache_text);

    // Resume: one generation lost (plus a torn line) → only that one is requested again.
    let kept: Vec<&str> = cache_text.lines().take(5).collect();
    std::fs::write(
        &cache_path,
        format!("{}\n{{\"id\": \"torn", kept.join("\n")),
    )
    .unwrap();
    let resumed = run_eval(
        &bench,
        &tasks,
        Some(&client),
        &params(2),
        &pool,
        &out,
        &|_, _| {},
        &|| {},
    )
    .expect("resume");
    assert_eq!(resumed.overall, summary.overall);
    let cache = load_generations(&cache_path).unwrap();
    assert_eq!(cache.len(), 6);

    // Client errors are not retried and name the endpoint.
    let wrong = OpenAiClient::new(&format!("http://127.0.0.1:{port}/v1"), "other", None)
        .with_retries(3, Duration::from_millis(50));
    let err = recode_eval::generate::Generator::generate(
        &wrong,
        &[tasks[0].messages.clone()],
        &params(1),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("/v1/chat/completions"),
        "{err}"
    );
}

#[test]
fn local_model_run_on_two_problems() {
    let gguf = std::env::var("RECODE_SMOLLM2_GGUF")
        .unwrap_or_else(|_| "/root/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    assert!(
        Path::new(&gguf).is_file(),
        "{gguf} missing: run scripts/setup.sh to download SmolLM2"
    );
    let generator = LocalGenerator::load(&gguf, None, 2).expect("load model");
    let Some(bench) = arena() else {
        return;
    };
    let prompt = ArenaPrompt::default_with_prefix(true);
    let tasks = bench.tasks(&prompt, Some(2)).unwrap();
    let text = generator.render(&tasks[0].messages).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are a helpful coding assistant."));
    assert!(text.contains("Update note: the API `itertools.chain` was updated."));
    assert!(text.ends_with("<|im_start|>assistant\nLet me solve this step by step.\n<think>"));
    let dir = tempfile::tempdir().unwrap();
    let p = GenParams {
        max_new_tokens: 24,
        ..params(2)
    };
    let summary = run_eval(
        &bench,
        &tasks,
        Some(&generator),
        &p,
        &pool(),
        dir.path(),
        &|_, _| {},
        &|| {},
    )
    .expect("run");
    assert_eq!(summary.candidates, 4);
    let p1 = summary.overall.pass_at_1.expect("pass@1");
    assert!((0.0..=100.0).contains(&p1));
    assert!(summary.generator.contains("SmolLM2"));
    let cache = load_generations(&dir.path().join("generations.jsonl")).unwrap();
    assert_eq!(cache.len(), 4);
    assert!(cache
        .values()
        .all(|g| !g.completion.is_empty() && g.gen_secs > 0.0));
}
