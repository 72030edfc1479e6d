//! `recode merge` on the real SmolLM2 GGUF: one `recode sft` step writes a PEFT adapter, merge
//! folds it in, and every merged projection must equal W + (α/r)·B·A computed here from the
//! adapter file (PEFT's rule), while untouched tensors stay the base weights.

mod common;

use common::{gguf, max_abs_diff, ok, recode_rows};
use recode_model::candle_core::{DType, Device, Tensor};

#[test]
fn merge_folds_the_peft_adapter_into_the_base_weights() {
    let Some(rows) = recode_rows(1) else {
        return;
    };
    let model = gguf();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("one.jsonl");
    std::fs::write(&data, format!("{}\n", rows[0])).unwrap();
    let sft = dir.path().join("sft");
    let (d, s) = (data.to_str().unwrap(), sft.to_str().unwrap());
    ok(&[
        "sft",
        "--model",
        &model,
        "--data",
        d,
        "--val-fraction",
        "0",
        "--output",
        s,
        "--quiet",
        "--set",
        "max_steps=1",
        "--set",
        "use_dora=false",
        "--set",
        "lora_r=4",
        "--set",
        "lora_alpha=8",
        "--set",
        "learning_rate=1e-2",
        "--set",
        "max_completion_length=64",
        "--set",
        "per_device_train_batch_size=1",
        "--set",
        "gradient_accumulation_steps=1",
        "--set",
        "warmup_ratio=0",
    ]);
    let adapter = sft.join("checkpoint-1");
    let merged = dir.path().join("merged.safetensors");
    ok(&[
        "merge",
        "--model",
        &model,
        "--adapter",
        adapter.to_str().unwrap(),
        "--output",
        merged.to_str().unwrap(),
    ]);

    let dev = Device::Cpu;
    let got = recode_rl::checkpoint::load_tensors(&merged, &dev).unwrap();
    let lora =
        recode_rl::checkpoint::load_tensors(&adapter.join("adapter_model.safetensors"), &dev)
            .unwrap();
    let base = recode_model::load_model(&model, DType::F32, &dev).unwrap();
    let base: std::collections::HashMap<String, Tensor> =
        base.model.named_parameters().unwrap().into_iter().collect();
    assert_eq!(
        got.len(),
        base.len(),
        "merged file must hold every base tensor"
    );
    let scale = 8.0 / 4.0;
    let mut changed = 0;
    for (name, w) in &base {
        let m = got
            .get(name)
            .unwrap_or_else(|| panic!("merged file lacks {name}"));
        let stem = name.strip_suffix(".weight").unwrap_or(name);
        let key = |ab: &str| format!("base_model.model.{stem}.lora_{ab}.weight");
        match (lora.get(&key("A")), lora.get(&key("B"))) {
            (Some(a), Some(b)) => {
                let want = (w + (b.matmul(a).unwrap() * scale).unwrap()).unwrap();
                let d = max_abs_diff(m, &want);
                assert!(d < 1e-5, "{name}: merged differs from W + s·B·A by {d}");
                if max_abs_diff(m, w) > 1e-6 {
                    changed += 1;
                }
            }
            _ => assert_eq!(max_abs_diff(m, w), 0.0, "{name} has no adapter but changed"),
        }
    }
    // SmolLM2 has 30 layers × 7 adapted projections; one step at lr 1e-2 moves every B.
    assert_eq!(
        changed,
        30 * 7,
        "projections changed by the merge: {changed}"
    );
}
