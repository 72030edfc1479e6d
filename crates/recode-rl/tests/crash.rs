//! kill -9 during checkpoint writes: a child process (this test binary re-invoked with an
//! environment switch) writes and replaces checkpoints of large tensors in a loop; the
//! parent SIGKILLs it at random moments. After every kill the latest checkpoint must load
//! and be self-consistent (state JSON agrees with the tensor values), and never go missing.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use recode_rl::checkpoint::{
    clean_stale_tmp, latest_checkpoint, load_json, load_tensors, save_json, save_tensors,
    write_atomic_dir_with, CHECKPOINT_PREFIX, STATE_FILE,
};

const DIR_ENV: &str = "RECODE_CRASH_TEST_DIR";
const CHILD_ENV: &str = "RECODE_CRASH_TEST_CHILD";
/// Checkpoint names cycle over steps 1..=STEPS, so every write after the first round replaces one.
const STEPS: u64 = 4;
/// f32 elements per tensor (16 MB), so a write takes long enough to be interrupted.
const NUMEL: usize = 4 << 20;

fn write(dir: &Path, step: u64, value: u64, pause: Duration) {
    write_atomic_dir_with(
        dir,
        &format!("{CHECKPOINT_PREFIX}{step}"),
        |tmp| {
            let w = Tensor::full(value as f32, NUMEL, &Device::Cpu)?;
            let b = Tensor::new(&[value as f64, step as f64], &Device::Cpu)?;
            save_tensors(
                &tmp.join("model.safetensors"),
                &HashMap::from([("w".to_string(), w)]),
            )?;
            save_tensors(
                &tmp.join("optimizer.safetensors"),
                &HashMap::from([("b".to_string(), b)]),
            )?;
            save_json(
                &tmp.join(STATE_FILE),
                &serde_json::json!({ "step": step, "value": value }),
            )
        },
        // Widens the window between moving the old copy aside and moving the new one in.
        || std::thread::sleep(pause),
    )
    .unwrap();
}

/// Loads `ckpt` and checks that every file agrees with its state JSON; returns the step.
fn check(ckpt: &Path) -> u64 {
    let state: serde_json::Value = load_json(&ckpt.join(STATE_FILE)).unwrap();
    let step = state["step"].as_u64().unwrap();
    let value = state["value"].as_u64().unwrap();
    let w = load_tensors(&ckpt.join("model.safetensors"), &Device::Cpu).unwrap()["w"]
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(w.len(), NUMEL, "{}", ckpt.display());
    assert!(
        w.iter().all(|&x| x == value as f32),
        "{}: tensor disagrees with state value {value}",
        ckpt.display()
    );
    let b = load_tensors(&ckpt.join("optimizer.safetensors"), &Device::Cpu).unwrap()["b"]
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(b, [value as f64, step as f64], "{}", ckpt.display());
    step
}

/// The child side: writes checkpoints until killed (bounded to 60 s if nobody kills it).
#[test]
fn crash_child_writer() {
    let (Ok(dir), Ok(child)) = (std::env::var(DIR_ENV), std::env::var(CHILD_ENV)) else {
        return; // not a child run
    };
    let child: u64 = child.parse().unwrap();
    let t0 = Instant::now();
    let mut i = 0u64;
    while t0.elapsed() < Duration::from_secs(60) {
        let step = i % STEPS + 1;
        write(
            Path::new(&dir),
            step,
            child * 1_000_000 + i,
            Duration::from_millis(15),
        );
        i += 1;
    }
}

#[test]
fn kill_9_during_checkpoint_writes_never_loses_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    for step in 1..=STEPS {
        write(dir.path(), step, step, Duration::ZERO);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    let (mut in_window, mut with_tmp) = (0, 0);
    for kill in 1..=10u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_writer", "--nocapture"])
            .env(DIR_ENV, dir.path())
            .env(CHILD_ENV, kill.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.random_range(50..700));
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        in_window += names.iter().any(|n| n.starts_with(".old-")) as usize;
        with_tmp += names.iter().any(|n| n.starts_with(".tmp-")) as usize;
        // Before any repair: the newest step is still there (possibly under .old-*) and loads.
        let last = latest_checkpoint(dir.path())
            .unwrap_or_else(|| panic!("kill {kill} (seed {seed}): no checkpoint in {names:?}"));
        assert_eq!(
            check(&last),
            STEPS,
            "kill {kill} (seed {seed}): latest is {}",
            last.display()
        );
        // After repair: every step is complete under its real name, and nothing is left over.
        clean_stale_tmp(dir.path()).unwrap();
        let last = latest_checkpoint(dir.path()).unwrap();
        assert!(last.ends_with(format!("{CHECKPOINT_PREFIX}{STEPS}")));
        for step in 1..=STEPS {
            let p = dir.path().join(format!("{CHECKPOINT_PREFIX}{step}"));
            assert_eq!(check(&p), step, "kill {kill} (seed {seed})");
        }
        let left = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(left, 0);
    }
    eprintln!(
        "10 kills (seed {seed}): {in_window} between the replacement renames, {with_tmp} with a partial .tmp dir"
    );
}
