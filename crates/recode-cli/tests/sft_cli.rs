//! `recode sft` on the real SmolLM2 GGUF: validation of the starting point is on by default
//! (`validation_start.json`, `validation/step-0.jsonl`) and `eval_on_start=false` skips it
//! while the validation after the last step still runs.

mod common;

use common::{gguf, ok, recode_rows};

#[test]
fn eval_on_start_controls_the_step_0_validation() {
    let Some(rows) = recode_rows(2) else {
        return;
    };
    let model = gguf();
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (dir.path().join("train.jsonl"), dir.path().join("val.jsonl"));
    std::fs::write(&train, format!("{}\n", rows[0])).unwrap();
    std::fs::write(&val, format!("{}\n", rows[1])).unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "sft",
            "--model",
            &model,
            "--data",
            train.to_str().unwrap(),
            "--val-data",
            val.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--quiet",
        ];
        for kv in [
            "max_steps=1",
            "eval_steps=1",
            "use_dora=false",
            "lora_r=4",
            "lora_alpha=8",
            "max_completion_length=8",
            "per_device_train_batch_size=1",
            "gradient_accumulation_steps=1",
        ]
        .iter()
        .chain(extra)
        {
            args.extend(["--set", kv]);
        }
        ok(&args);
        out
    };
    let with_start = run("default", &[]);
    assert!(with_start.join("validation_start.json").is_file());
    assert!(with_start.join("validation/step-0.jsonl").is_file());
    assert!(with_start.join("validation/step-1.jsonl").is_file());
    let without = run("no-start", &["eval_on_start=false"]);
    assert!(!without.join("validation_start.json").exists());
    assert!(!without.join("validation/step-0.jsonl").exists());
    assert!(without.join("validation/step-1.jsonl").is_file());
}
