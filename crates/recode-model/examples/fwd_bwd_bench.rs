//! Training-step probe: forward + per-token log-probs + backward of a LoRA r=16 (q,k,v,o) model,
//! reporting seconds and peak RSS (VmHWM). Each configuration runs in its own child process so
//! that the peaks do not mix.
//!
//! Usage: `fwd_bwd_bench [MODEL]` runs batch 1 × 512 and 8 × 512, plain and with layer-wise
//! activation checkpointing; `fwd_bwd_bench MODEL BATCH LEN [plain|ckpt] [REPEATS]` runs one.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use recode_model::{load_model, AdapterConfig, AdapterKind, ForwardOpts};

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn gib(kb: u64) -> f64 {
    kb as f64 / (1024.0 * 1024.0)
}

fn run_one(
    spec: &str,
    batch: usize,
    len: usize,
    ckpt: bool,
    repeats: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut m = load_model(spec, DType::F32, &Device::Cpu)?;
    let load_s = t0.elapsed().as_secs_f64();
    let rss_loaded = status_kb("VmRSS:");
    let cfg = AdapterConfig {
        kind: AdapterKind::Lora,
        r: 16,
        alpha: 32.0,
        dropout: 0.05,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        use_rslora: false,
    };
    m.model.add_adapters(&cfg, 7)?;
    m.model.set_activation_checkpointing(ckpt);
    let vars = m.model.adapter_vars();
    let vocab = m.model.config().vocab_size as u64;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let ids: Vec<u32> = (0..batch * len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab) as u32
        })
        .collect();
    let ids = Tensor::from_vec(ids, (batch, len), &Device::Cpu)?;
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let out = m
            .model
            .token_logprobs(&ids, None, 1.0, false, ForwardOpts::TRAIN)?;
        let loss = out.logprobs.mean_all()?.neg()?;
        let _ = loss.to_scalar::<f32>()?;
        fwd.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let grads = loss.backward()?;
        let mut n = 0;
        for (_, v) in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let _ = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
                n += 1;
            }
        }
        bwd.push(t.elapsed().as_secs_f64());
        assert_eq!(n, vars.len(), "every adapter tensor gets a gradient");
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "{} {batch}x{len}: forward {:.2}s, backward {:.2}s, total {:.2}s (best of {repeats}); \
         peak RSS {:.2} GiB (after load {:.2} GiB, load {:.1}s)",
        if ckpt { "ckpt " } else { "plain" },
        best(&fwd),
        best(&bwd),
        best(&fwd) + best(&bwd),
        gib(status_kb("VmHWM:")),
        gib(rss_loaded),
        load_s
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = args.first().cloned().unwrap_or_else(|| {
        std::env::var("RECODE_SMOLLM2_GGUF")
            .unwrap_or_else(|_| "/root/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf".into())
    });
    if args.len() >= 3 {
        let batch = args[1].parse()?;
        let len = args[2].parse()?;
        let ckpt = args.get(3).is_some_and(|s| s == "ckpt");
        let repeats = args.get(4).map_or(Ok(1), |s| s.parse())?;
        return run_one(&spec, batch, len, ckpt, repeats);
    }
    let exe = std::env::current_exe()?;
    for (batch, mode) in [(1, "plain"), (1, "ckpt"), (8, "plain"), (8, "ckpt")] {
        let status = std::process::Command::new(&exe)
            .args([spec.as_str(), &batch.to_string(), "512", mode, "2"])
            .status()?;
        if !status.success() {
            println!("{mode} {batch}x512: failed ({status})");
        }
    }
    Ok(())
}
