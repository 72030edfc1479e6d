//! Shared helpers: tiny random models written by the independent numpy reference.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use recode_model::weights::{load_safetensors, safetensors_files};
use recode_model::{CausalLM, ModelConfig};

pub mod gguf;

/// The real SmolLM2 GGUF of scripts/setup.sh (`$RECODE_SMOLLM2_GGUF`).
pub fn gguf_path() -> String {
    let p = std::env::var("RECODE_SMOLLM2_GGUF")
        .unwrap_or_else(|_| "/root/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    assert!(
        std::path::Path::new(&p).exists(),
        "SmolLM2 GGUF not found at {p}: run scripts/setup.sh (or set RECODE_SMOLLM2_GGUF)"
    );
    p
}

/// The Python of the dev venv (RECODE_VENV or the setup script's default).
pub fn python() -> PathBuf {
    let venv =
        std::env::var("RECODE_VENV").unwrap_or_else(|_| "/root/.cache/recode/venv-dev".into());
    let p = Path::new(&venv).join("bin/python");
    assert!(
        p.exists(),
        "{} not found: run scripts/setup.sh (needs numpy and safetensors)",
        p.display()
    );
    p
}

/// Runs the Python `script` with `input` on stdin and returns its stdout (panics on failure).
pub fn python_stdin(script: &Path, input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes a tiny random model of `arch` with the numpy reference into a temp dir.
pub fn make_tiny(arch: &str, seed: u64) -> tempfile::TempDir {
    make_tiny_with(arch, seed, &[])
}

/// [`make_tiny`] with extra `model_ref.py make` options (`--rope-scaling llama3`, `--seq-len 40`).
pub fn make_tiny_with(arch: &str, seed: u64, options: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/reference/model_ref.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args(["make", "--arch", arch, "--seed", &seed.to_string()])
        .args(options)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "model_ref.py failed (pip install numpy safetensors into the venv via scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Loads the tiny model of `dir` in `dtype`.
pub fn load_tiny(dir: &Path, dtype: DType) -> CausalLM {
    let cfg = ModelConfig::from_hf_json(&dir.join("config.json")).unwrap();
    let t = load_safetensors(&safetensors_files(dir).unwrap(), dtype, &Device::Cpu).unwrap();
    CausalLM::from_tensors(cfg, t, dtype, &Device::Cpu).unwrap()
}

/// (input_ids u32 [B,T], mask u32 [B,T], expected logits f64 [B,T,V]).
pub fn expected(dir: &Path) -> (Tensor, Tensor, Tensor) {
    let t = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let ids = t["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = t["attention_mask"].to_dtype(DType::U32).unwrap();
    (ids, mask, t["logits"].clone())
}

/// Max |a - b| over rows/positions where mask = 1.
pub fn max_diff_masked(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().to_vec3::<f64>().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().to_vec3::<f64>().unwrap();
    let m = mask.to_vec2::<u32>().unwrap();
    let mut worst = 0.0f64;
    for (r, row) in m.iter().enumerate() {
        for (t, &v) in row.iter().enumerate() {
            if v == 1 {
                for (x, y) in a[r][t].iter().zip(&b[r][t]) {
                    worst = worst.max((x - y).abs());
                }
            }
        }
    }
    worst
}

/// Gives B (zero at init) random values so that adapters change the function and their
/// gradients are non-trivial.
pub fn randomise_b(model: &CausalLM) {
    for (name, v) in model.adapter_vars() {
        if name.ends_with("lora_B.weight") {
            let r = Tensor::randn(0.0f64, 0.3, v.dims(), v.device()).unwrap();
            v.set(&r.to_dtype(v.dtype()).unwrap()).unwrap();
        }
    }
}

/// The gradient of every variable in `grads`, flattened, in `vars` order (panics naming a
/// variable without one).
pub fn var_grads<T: candle_core::WithDType>(
    grads: &candle_core::backprop::GradStore,
    vars: &[(String, candle_core::Var)],
) -> Vec<Vec<T>> {
    vars.iter()
        .map(|(name, v)| {
            grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .flatten_all()
                .unwrap()
                .to_vec1::<T>()
                .unwrap()
        })
        .collect()
}
