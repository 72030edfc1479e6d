//! `recode bench train`: seconds per GRPO step (split into generate / score / learn) and peak
//! RSS of `recode train` vs TRL's GRPOTrainer with PEFT (`peers/train_peer.py`), same model,
//! prompt, G, lengths and LoRA, run one after the other as child processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use recode_rl::StepMetrics;

use crate::{BenchError, Result};

/// The report's name (`"bench"` key).
pub const NAME: &str = "train";

/// The peer side (TRL GRPOTrainer + PEFT).
const PEER: &str = include_str!("../peers/train_peer.py");

/// Options of `recode bench train`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `recode` binary that runs `data export` and `train` (the caller's own executable).
    pub recode: PathBuf,
    /// Model spec; the peer loads the same GGUF.
    pub model: String,
    /// ReCode JSONL whose first row is the prompt both trainers use (None: as
    /// `recode_data::datasets::RECODE_TRAIN` resolves it).
    pub data: Option<PathBuf>,
    /// GRPO steps per trainer (at least 1); the first is a warm-up and is not averaged.
    pub steps: usize,
    /// Completions per step (one prompt × G).
    pub num_generations: usize,
    /// New tokens per completion.
    pub max_completion_length: usize,
    /// LoRA rank on q,k,v,o (alpha = 2r).
    pub lora_r: usize,
    /// Interpreter with torch + transformers + TRL + PEFT for the peer (None: the bench venv).
    pub peer_python: Option<PathBuf>,
    /// Measure recode alone.
    pub no_peer: bool,
}

/// Runs the benchmark; returns the report (recode's per-step figures, and TRL's with the
/// speed-up and memory fraction unless `no_peer`).
pub fn run(o: &Options) -> Result<serde_json::Value> {
    let peer_python = if o.no_peer {
        None
    } else {
        Some(crate::bench_python(o.peer_python.as_deref())?)
    };
    if o.steps < 1 {
        return Err(BenchError::Option {
            option: "--steps",
            reason: "must be at least 1",
        });
    }
    let data = crate::recode_data_file(o.data.as_deref())?;
    let dir = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "temp dir for",
        path: std::env::temp_dir(),
        source,
    })?;
    let row = dir.path().join("row.jsonl");
    let trl_row = dir.path().join("row.trl.jsonl");
    write_first_row(&data, &row)?;
    let mut export = Command::new(&o.recode);
    export
        .args(["data", "export", "--format", "trl-jsonl"])
        .arg(&row)
        .arg(&trl_row);
    run_child(export, "recode data export")?;

    let run_dir = dir.path().join("recode-run");
    eprintln!(
        "recode train: {} steps, 1 prompt x {} x {} tokens",
        o.steps, o.num_generations, o.max_completion_length
    );
    let t = std::time::Instant::now();
    run_child(train_command(o, &row, &run_dir), "recode train")?;
    let recode_wall = t.elapsed().as_secs_f64();
    let recode_rss = children_peak_rss();
    let steps = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let col = |f: &dyn Fn(&StepMetrics) -> f64| -> Vec<f64> { steps.iter().map(f).collect() };
    let step_s = col(&|m| m.timing.generate_s + m.timing.score_s + m.timing.learn_s);
    let recode = serde_json::json!({
        "step_s": mean_after_warmup(&step_s),
        "generate_s": mean_after_warmup(&col(&|m| m.timing.generate_s)),
        "score_s": mean_after_warmup(&col(&|m| m.timing.score_s)),
        "learn_s": mean_after_warmup(&col(&|m| m.timing.learn_s)),
        "completion_len_mean": mean_after_warmup(&col(&|m| m.rollout.completion_len_mean)),
        "steps": step_s,
        "wall_s": recode_wall,
        "peak_rss_bytes": recode_rss,
    });
    eprintln!("recode: {recode}");
    let mut report = serde_json::json!({"model": o.model, "recode": recode});
    if let Some(python) = peer_python {
        run_peer(&python, o, &trl_row, recode_rss, &mut report)?;
    }
    Ok(report)
}

/// Writes the first non-blank line of `data` to `row` (the one prompt both trainers use).
fn write_first_row(data: &Path, row: &Path) -> Result<()> {
    let text = std::fs::read_to_string(data).map_err(|source| BenchError::Io {
        what: "reading",
        path: data.to_path_buf(),
        source,
    })?;
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| BenchError::NoRows {
            path: data.to_path_buf(),
        })?;
    std::fs::write(row, format!("{first}\n")).map_err(|source| BenchError::Io {
        what: "writing",
        path: row.to_path_buf(),
        source,
    })
}

/// `recode train` on the one row with the benchmark's configuration (the peer's equivalent).
fn train_command(o: &Options, row: &Path, run_dir: &Path) -> Command {
    let (g, r) = (o.num_generations, o.lora_r);
    let sets = [
        format!("max_steps={}", o.steps),
        format!("num_generations={g}"),
        format!("per_device_train_batch_size={g}"),
        "gradient_accumulation_steps=1".into(),
        format!("max_completion_length={}", o.max_completion_length),
        "use_dora=false".into(),
        format!("lora_r={r}"),
        format!("lora_alpha={}", 2 * r),
        "lora_dropout=0.0".into(),
        r#"lora_target_modules=["q_proj","k_proj","v_proj","o_proj"]"#.into(),
        "temperature=1.0".into(),
        "learning_rate=5e-5".into(),
        "beta=0.001".into(),
        format!("save_steps={}", o.steps + 1000),
        "eval_steps=0".into(),
    ];
    let mut cmd = Command::new(&o.recode);
    cmd.args(["train", "--algo", "grpo", "--quiet", "--val-fraction", "0"])
        .args(["--model", &o.model])
        .arg("--data")
        .arg(row)
        .arg("--output")
        .arg(run_dir);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    cmd
}

/// Runs `cmd` to completion; an error naming `what` when it cannot start or fails.
fn run_child(mut cmd: Command, what: &str) -> Result<()> {
    let status = cmd.status().map_err(|source| BenchError::Spawn {
        program: PathBuf::from(cmd.get_program()),
        source,
    })?;
    if !status.success() {
        return Err(BenchError::CommandFailed {
            what: what.to_string(),
            status,
        });
    }
    Ok(())
}

/// The steps recorded in a run's `metrics.jsonl`.
fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| BenchError::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Runs TRL + PEFT on the exported row; adds its figures, the speed-up and the memory fraction
/// to `report`.
fn run_peer(
    python: &Path,
    o: &Options,
    trl_row: &Path,
    recode_rss: u64,
    report: &mut serde_json::Value,
) -> Result<()> {
    let args = [
        "--model".into(),
        o.model.clone(),
        "--data".into(),
        trl_row.display().to_string(),
        "--steps".into(),
        o.steps.to_string(),
        "--num-generations".into(),
        o.num_generations.to_string(),
        "--max-completion-length".into(),
        o.max_completion_length.to_string(),
        "--lora-r".into(),
        o.lora_r.to_string(),
        "--lora-alpha".into(),
        (2 * o.lora_r).to_string(),
        "--threads".into(),
        crate::cores().to_string(),
    ];
    let peer = crate::run_peer_script(python, "train_peer.py", PEER, &args)?;
    let peer_col = |key: &str| -> Vec<f64> {
        peer["steps"]
            .as_array()
            .map(|v| v.iter().filter_map(|s| s[key].as_f64()).collect())
            .unwrap_or_default()
    };
    let peer_gen = mean_after_warmup(&peer_col("generate_s"));
    let (ours, theirs) = (
        report["recode"]["step_s"].as_f64().unwrap_or(f64::NAN),
        mean_after_warmup(&peer_col("step_s")),
    );
    let peer_rss = peer["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN);
    eprintln!("\n               s/step  generate_s  peak RSS GB");
    eprintln!(
        "recode        {ours:>7.1}  {:>10.1}  {:>10.2}",
        report["recode"]["generate_s"].as_f64().unwrap_or(0.0),
        recode_rss as f64 / 1e9
    );
    eprintln!(
        "TRL + PEFT    {theirs:>7.1}  {peer_gen:>10.1}  {:>10.2}",
        peer_rss / 1e9
    );
    eprintln!(
        "speed-up {:.2}x, memory {:.0}% of TRL's",
        theirs / ours,
        100.0 * recode_rss as f64 / peer_rss
    );
    report["trl"] = peer;
    report["trl"]["step_s_mean"] = serde_json::json!(theirs);
    report["trl"]["generate_s_mean"] = serde_json::json!(peer_gen);
    report["speedup_over_trl"] = serde_json::json!(theirs / ours);
    report["memory_fraction_of_trl"] = serde_json::json!(recode_rss as f64 / peer_rss);
    Ok(())
}

/// Mean of `xs` after the first (warm-up) entry, or of all when there is only one.
fn mean_after_warmup(xs: &[f64]) -> f64 {
    let tail = if xs.len() > 1 { &xs[1..] } else { xs };
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Peak RSS of the largest waited-for child process, bytes (0 if the kernel will not say).
fn children_peak_rss() -> u64 {
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are a valid
    // value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN is a valid `who`; getrusage only writes into `usage`, which we own
    // and pass by a unique pointer that lives for the whole call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc == 0 {
        usage.ru_maxrss as u64 * 1024
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::mean_after_warmup;

    /// The warm-up step is left out of the mean unless it is the only one.
    #[test]
    fn the_first_step_is_a_warm_up() {
        assert_eq!(mean_after_warmup(&[10.0, 2.0, 4.0]), 3.0);
        assert_eq!(mean_after_warmup(&[5.0]), 5.0);
        assert_eq!(mean_after_warmup(&[]), 0.0);
    }
}
