//! `recode train` end to end on the real SmolLM2 GGUF, sized to seconds: GRPO and DAPO runs
//! (metrics.jsonl, checkpoints, `recode report train`), exact resume (2 + 2 steps equal 4
//! uninterrupted, also after a SIGKILL mid-step), resume refused when the configuration
//! changed (and `--force`), and full fine-tuning whose checkpoint loads as a model.
//!
//! The base model writes reasoning for hundreds of tokens, so 8-token completions would all
//! score the same and every advantage would be 0 (nothing learned, every comparison vacuous).
//! Each test therefore starts from a warm start that stops about half of the sampled
//! completions at once, and scores with DAPO's overlong shaping over all 8 tokens: a completion
//! that stops early scores higher, rewards differ within a group, and the weights move.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{gguf, max_abs_diff, ok, recode, recode_rows, BIN};
use recode_model::candle_core::{DType, Device, Tensor};
use recode_rl::checkpoint::{latest_checkpoint, load_tensors, STATE_FILE};
use recode_rl::StepMetrics;
use serde_json::Value;

/// Keys of every run: the prompt cut to its last 48 tokens, LoRA r = 4 without DoRA, one
/// prompt per optimizer step, and a constant learning rate without warm-up (so `max_steps` may
/// change on resume).
const TINY: &[&str] = &[
    "max_prompt_length=48",
    "use_dora=false",
    "lora_r=4",
    "lora_alpha=8",
    "gradient_accumulation_steps=1",
    "lr_scheduler_type=constant",
    "warmup_ratio=0",
];

/// RL keys: 4 completions of at most 8 tokens, overlong shaping over all 8 (a completion of n
/// tokens loses n/8), at most 3 DAPO generation batches, no validation unless a test asks.
const RL: &[&str] = &[
    "num_generations=4",
    "per_device_train_batch_size=4",
    "max_completion_length=8",
    "overlong_buffer_len=8",
    "temperature=1.0",
    "max_num_gen_batches=3",
    "eval_steps=0",
];

/// Relative tolerance between the metrics of a resumed and an uninterrupted run. A resume
/// restores bit-identical weights, optimizer moments, RNG and data cursor and the same kernels
/// run on the same thread count, so the figures agree to the last bit (observed); 1e-9 leaves
/// room only for summation-order effects and is orders of magnitude below what a wrong restore
/// produces (different samples change rewards by ≥ 1/32, a different update moves the loss
/// and KL in their leading digits).
const TOL: f64 = 1e-9;

/// A scratch directory with one training row (and one held-out row) of the real ReCode data.
struct Fixture {
    dir: tempfile::TempDir,
    model: String,
    train: PathBuf,
    val: PathBuf,
}

impl Fixture {
    /// `None` when the data is absent (the test is skipped, saying so).
    fn new() -> Option<Self> {
        let rows = recode_rows(2)?;
        let dir = tempfile::tempdir().unwrap();
        let (train, val) = (dir.path().join("train.jsonl"), dir.path().join("val.jsonl"));
        std::fs::write(&train, format!("{}\n", rows[0])).unwrap();
        std::fs::write(&val, format!("{}\n", rows[1])).unwrap();
        Some(Fixture {
            dir,
            model: gguf(),
            train,
            val,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `recode CMD… --model M --data TRAIN --output OUT --quiet [--val-fraction 0] EXTRA…` plus
    /// `--set` for every key of `sets` (later lists override earlier ones).
    fn args(&self, cmd: &[&str], out: &Path, extra: &[&str], sets: &[&[&str]]) -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        for (flag, v) in [
            ("--model", self.model.as_str()),
            ("--data", self.train.to_str().unwrap()),
            ("--output", out.to_str().unwrap()),
        ] {
            a.extend([flag.to_string(), v.to_string()]);
        }
        a.push("--quiet".into());
        if !extra.contains(&"--val-data") {
            a.extend(["--val-fraction".into(), "0".into()]);
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        for kv in sets.iter().flat_map(|s| s.iter()) {
            a.extend(["--set".into(), kv.to_string()]);
        }
        a
    }

    /// The warm start: one `recode sft` step on a completion cut to one token + end-of-turn, at
    /// a learning rate where about half of the completions sampled afterwards stop at once.
    /// `full` trains every weight (the checkpoint is then a model), else a LoRA adapter.
    fn stop_early(&self, full: bool) -> PathBuf {
        let out = self.path(if full { "sft-full" } else { "sft-lora" });
        let sft: &[&str] = if full {
            &["use_peft=false", "learning_rate=5e-5"]
        } else {
            &["learning_rate=5e-3"]
        };
        let one = [
            "max_steps=1",
            "max_completion_length=2",
            "per_device_train_batch_size=1",
        ];
        run(&self.args(&["sft"], &out, &[], &[TINY, &one, sft]));
        out.join("checkpoint-1")
    }
}

fn run(args: &[String]) -> std::process::Output {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn read_metrics(run_dir: &Path) -> Vec<Value> {
    let path = run_dir.join("metrics.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Every number in `v` is finite (JSON cannot hold NaN: serde_json writes it as null, which
/// is caught too).
fn assert_finite(v: &Value, at: &str) {
    match v {
        Value::Number(n) => assert!(n.as_f64().is_some_and(f64::is_finite), "{at}: {n}"),
        Value::Null => panic!("{at}: null (a non-finite number?)"),
        Value::Array(xs) => xs
            .iter()
            .enumerate()
            .for_each(|(i, x)| assert_finite(x, &format!("{at}[{i}]"))),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| assert_finite(x, &format!("{at}.{k}"))),
        _ => {}
    }
}

/// Asserts a finished RL run of `steps` steps: one metrics line per step with the trainer's
/// keys and finite values, a complete last checkpoint (adapter or full weights) carrying the
/// run's config, and an HTML report from `recode report train`.
fn assert_rl_run(run_dir: &Path, steps: u64, adapter: bool) -> Vec<Value> {
    let lines = read_metrics(run_dir);
    assert_eq!(lines.len() as u64, steps, "{}", run_dir.display());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i as u64 + 1, "{line}");
        for key in [
            "lr",
            "loss",
            "kl",
            "clip_fraction",
            "dual_clip_fraction",
            "entropy",
            "abs_log_ratio",
            "grad_norm",
            "num_completions",
            "rollout.reward_mean",
            "rollout.reward_std",
            "rollout.reward_components.format",
            "rollout.reward_components.es_star",
            "rollout.indicators.format_ok",
            "rollout.completion_len_mean",
            "rollout.truncated_fraction",
            "rollout.filter.groups_kept",
            "rollout.generated_tokens",
            "timing.generate_s",
            "timing.learn_s",
        ] {
            let v = key.split('.').fold(line, |v, k| &v[k]);
            assert!(v.is_number(), "step {}: no number at {key}", i + 1);
        }
        assert_finite(line, &format!("step {}", i + 1));
        serde_json::from_value::<StepMetrics>(line.clone()).expect("a StepMetrics line");
    }
    let ckpt = run_dir.join(format!("checkpoint-{steps}"));
    assert_eq!(latest_checkpoint(run_dir), Some(ckpt.clone()));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(state["step"], steps);
    let mut files = vec!["model.safetensors", "optimizer.safetensors", "config.toml"];
    files.extend(if adapter {
        ["adapter_model.safetensors", "adapter_config.json"].as_slice()
    } else {
        [recode_rl::lm::FULL_MODEL_FILE].as_slice()
    });
    for f in files {
        assert!(ckpt.join(f).is_file(), "{} lacks {f}", ckpt.display());
    }
    let cfg = |dir: &Path| std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert_eq!(
        cfg(&ckpt),
        cfg(run_dir),
        "the checkpoint holds the run's config"
    );
    ok(&["report", "train", run_dir.to_str().unwrap()]);
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    for part in [
        "RL (GRPO/DAPO)",
        &format!("{steps} (1–{steps})"),
        "aria-label=\"reward (total)\"",
        "aria-label=\"loss\"",
    ] {
        assert!(html.contains(part), "report lacks {part:?}");
    }
    lines
}

/// Asserts that two runs' metrics agree step by step within [`TOL`] (timing aside).
fn assert_same_steps(got: &[Value], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of steps");
    fn same(a: &Value, b: &Value, at: &str) {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= TOL * x.abs().max(y.abs()).max(1.0),
                    "{at}: {x} vs {y}"
                );
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, v) in x.iter().filter(|(k, _)| *k != "timing") {
                    same(v, &y[k], &format!("{at}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }
    for (g, w) in got.iter().zip(want) {
        same(g, w, &format!("{what}: step {}", w["step"]));
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Asserts that no file under `dir` was added, removed or rewritten since `before`.
fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let now = snapshot(dir);
    let changed: std::collections::BTreeSet<_> = before
        .keys()
        .chain(now.keys())
        .filter(|p| before.get(*p) != now.get(*p))
        .collect();
    assert!(changed.is_empty(), "{what} changed {changed:?}");
}

/// Entries of `dir` left by interrupted writes (`.tmp-*`, `.old-*`).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Starts `recode ARGS…`, waits until `ready` holds, then SIGKILLs it (`Child::kill` sends
/// SIGKILL on Unix) and checks that the signal, not an exit, ended it.
fn kill_when(args: &[String], log: &Path, ready: impl Fn() -> bool) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "exited ({status}) before the kill point: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "kill point not reached");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

/// GRPO from the CLI: a 4-step run (metrics, checkpoint, report); 2 steps then `--resume` with
/// max_steps = 4 equal it; a run SIGKILLed during step 4 resumes from checkpoint-2 (stale
/// metrics line trimmed, stray temporary directory unused) and equals it too; a resume with
/// changed keys is refused, names each, and leaves every file as it was; `--force` overrides.
#[test]
fn grpo_runs_resume_exactly_after_a_stop_and_a_sigkill() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let init = f.stop_early(false);
    let init = init.to_str().unwrap();
    let grpo = |out: &Path, extra: &[&str], sets: &[&str]| {
        let mut e = vec!["--init-adapter", init];
        e.extend(extra);
        f.args(&["train", "--algo", "grpo"], out, &e, &[TINY, RL, sets])
    };
    let four = ["max_steps=4", "save_steps=2", "learning_rate=1e-4"];

    // The reference: 4 uninterrupted steps.
    let full = f.path("full");
    run(&grpo(&full, &[], &four));
    let want = assert_rl_run(&full, 4, true);
    assert!(
        want.iter()
            .any(|m| m["rollout"]["reward_std"].as_f64().unwrap() > 0.0),
        "no step had differing rewards: the comparisons below would be vacuous"
    );

    // 2 steps, then a refused resume, a forced one, and the real one with max_steps = 4.
    let two = ["max_steps=2", "save_steps=2", "learning_rate=1e-4"];
    let part = f.path("part");
    run(&grpo(&part, &[], &two));
    let before = snapshot(&part);
    let resume = ["--resume", part.to_str().unwrap()];
    let changed = ["lora_r=8", "temperature=0.7"];
    let out = recode(
        &grpo(&part, &resume, &[&four[..], &changed].concat())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a changed config resumed: {err}");
    for needle in [
        "lora_r: checkpoint 4, now 8",
        "temperature: checkpoint 1.0, now 0.7",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    // Exactly those two: max_steps (2 → 4) may change under a constant schedule.
    assert_eq!(err.matches(", now ").count(), 2, "{err}");
    assert_unchanged(&part, &before, "a refused resume");
    // `recode sft` has --resume too and is guarded the same way.
    let ckpt2 = part.join("checkpoint-2");
    let sft = f.args(
        &["sft"],
        &part,
        &["--resume", ckpt2.to_str().unwrap()],
        &[TINY],
    );
    let out = recode(&sft.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(r#"algo: checkpoint "grpo", now "sft""#),
        "{err}"
    );
    assert_unchanged(&part, &before, "a refused sft resume");
    // --force lets the change through (max_steps = 2: nothing left to train) and says so.
    let forced = ["--resume", part.to_str().unwrap(), "--force"];
    let out = run(&grpo(&part, &forced, &[&two[..], &changed].concat()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed key: lora_r: checkpoint 4, now 8"),
        "{err}"
    );
    assert_eq!(read_metrics(&part).len(), 2);
    // The real resume: only max_steps differs.
    let out = run(&grpo(&part, &resume, &four));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed key: max_steps: checkpoint 2, now 4"),
        "{err}"
    );
    let got = assert_rl_run(&part, 4, true);
    assert_same_steps(&got, &want, "2 steps + resume");

    // SIGKILL during step 4 (after its predecessor's metrics line, before its own): the last
    // checkpoint is 2 (save_steps = 2), so metrics line 3 is stale.
    let killed = f.path("killed");
    let metrics = killed.join("metrics.jsonl");
    let lines = || {
        std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    kill_when(&grpo(&killed, &[], &four), &f.path("killed.log"), || {
        lines() >= 3
    });
    assert_eq!(lines(), 3, "killed after step 4 had finished");
    assert_eq!(
        latest_checkpoint(&killed),
        Some(killed.join("checkpoint-2"))
    );
    // What a kill during a checkpoint write leaves: a partial temporary directory.
    let stray = killed.join(".tmp-checkpoint-4-999999");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("model.safetensors"), b"partial").unwrap();
    std::fs::write(stray.join(STATE_FILE), b"{\"step\": 4").unwrap();
    run(&grpo(
        &killed,
        &["--resume", killed.to_str().unwrap()],
        &four,
    ));
    let got = assert_rl_run(&killed, 4, true);
    assert_same_steps(&got, &want, "SIGKILL + resume");
    assert!(leftovers(&killed).is_empty(), "{:?}", leftovers(&killed));
}

/// DAPO from the CLI (LoRA on the warm start, dynamic sampling, validation every step):
/// metrics, checkpoint, per-prompt validation files and the report.
#[test]
fn dapo_run_writes_metrics_checkpoints_validation_and_report() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let init = f.stop_early(false);
    let out = f.path("dapo");
    let extra = [
        "--init-adapter",
        init.to_str().unwrap(),
        "--val-data",
        f.val.to_str().unwrap(),
    ];
    let sets = [
        "use_peft=true",
        "max_steps=2",
        "eval_steps=1",
        "learning_rate=1e-4",
    ];
    run(&f.args(
        &["train", "--algo", "dapo"],
        &out,
        &extra,
        &[TINY, RL, &sets],
    ));
    let lines = assert_rl_run(&out, 2, true);
    for (i, m) in lines.iter().enumerate() {
        let filter = &m["rollout"]["filter"];
        let batches = filter["gen_batches"].as_u64().unwrap();
        assert!((1..=3).contains(&batches), "step {}: {filter}", i + 1);
        assert!(m["validation"]["reward_components"]["es_star"].is_number());
        assert!(out
            .join(format!("validation/step-{}.jsonl", i + 1))
            .is_file());
    }
    assert!(out.join("validation_start.json").is_file());
    let cfg = std::fs::read_to_string(out.join("checkpoint-2/config.toml")).unwrap();
    assert!(cfg.contains("algo = \"dapo\"") && cfg.contains("dynamic_sampling = true"));
}

/// Greedy token ids `recode generate --model MODEL` continues the training prompt with.
fn greedy_tokens(model: &str, prompt: &str) -> Vec<u64> {
    let out = ok(&[
        "generate",
        "--model",
        model,
        "--raw",
        "--prompt",
        prompt,
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON completion");
    assert!(line["text"].is_string(), "{line}");
    line["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

/// Full fine-tuning: `recode sft --set use_peft=false` changes every weight it has a gradient
/// for; `recode train --algo dapo` (full-parameter, the paper's setting) continues from that
/// checkpoint given as `--model`, and its checkpoint, again a model, differs from its start
/// and generates.
#[test]
fn full_finetuning_checkpoints_load_as_models_and_generate() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let dev = Device::Cpu;
    let sft = f.stop_early(true);
    let base = recode_model::load_model(&f.model, DType::F32, &dev).unwrap();
    let base: BTreeMap<String, Tensor> =
        base.model.named_parameters().unwrap().into_iter().collect();
    let tuned = load_tensors(&sft.join("model.safetensors"), &dev).unwrap();
    assert_eq!(
        tuned.len(),
        base.len(),
        "a full checkpoint holds every weight"
    );
    // Adam's first step moves each weight with a non-zero gradient by ~lr (5e-5); rows of the
    // embedding the one example never uses have none and stay.
    let moved = base
        .iter()
        .filter(|(name, w)| max_abs_diff(w, &tuned[*name]) > 1e-5)
        .count();
    assert_eq!(moved, base.len(), "weights changed by one SFT step");

    let dapo = f.path("dapo-full");
    // No weight decay: only a gradient can move a weight.
    let sets = ["max_steps=1", "learning_rate=1e-5", "weight_decay=0"];
    let mut args = f.args(&["train", "--algo", "dapo"], &dapo, &[], &[TINY, RL, &sets]);
    let at = args.iter().position(|a| a == "--model").unwrap() + 1;
    args[at] = sft.to_str().unwrap().into();
    run(&args);
    let m = &assert_rl_run(&dapo, 1, false)[0];
    let cfg = std::fs::read_to_string(dapo.join("config.toml")).unwrap();
    assert!(cfg.contains("use_peft = false"), "{cfg}");
    // A real gradient (a group whose rewards differ), not rounding noise, moved the weights.
    assert!(
        m["rollout"]["filter"]["groups_kept"].as_u64().unwrap() >= 1,
        "{m}"
    );
    let ckpt = dapo.join("checkpoint-1");
    let after = load_tensors(&ckpt.join("model.safetensors"), &dev).unwrap();
    let moved = tuned
        .iter()
        .filter(|(name, w)| max_abs_diff(w, &after[*name]) > 0.0)
        .count();
    assert_eq!(moved, tuned.len(), "weights changed by one DAPO step");

    // The checkpoint loads as a model and generates; its greedy continuation of the training
    // prompt differs from the base model's (it learned to stop).
    let prompt = ok(&["data", "render", f.train.to_str().unwrap(), "--index", "0"]);
    let prompt = String::from_utf8(prompt.stdout).unwrap();
    let prompt = prompt.strip_suffix('\n').unwrap_or(&prompt);
    let (tuned_ids, base_ids) = (
        greedy_tokens(ckpt.to_str().unwrap(), prompt),
        greedy_tokens(&f.model, prompt),
    );
    assert!(!base_ids.is_empty());
    assert_ne!(tuned_ids, base_ids);
}
