//! Quick generation throughput check on a GGUF model: `cargo run --example gen_speed -- MODEL.gguf`.

use recode_model::candle_core::{DType, Device};
use recode_model::{generate, load_model, ForwardOpts, SamplingParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: gen_speed MODEL.gguf")?;
    let m = load_model(&path, DType::F32, &Device::Cpu)?;
    let prompt = "<|im_start|>user\nWrite a Python function that checks whether a string is a palindrome.<|im_end|>\n<|im_start|>assistant\n";
    let ids = m.tokenizer.encode(prompt)?;
    for (batch, temperature) in [(8usize, 1.0), (1, 0.0)] {
        let params = SamplingParams {
            temperature,
            max_new_tokens: 128,
            ignore_eos: true,
            ..Default::default()
        };
        let prompts = vec![ids.clone(); batch];
        let (_, s) = generate(
            &m.model,
            &m.tokenizer,
            &prompts,
            &params,
            ForwardOpts::INFERENCE,
            None,
        )?;
        println!(
            "batch {batch}: prefill {:.1} tok/s, decode {:.1} tok/s",
            s.prompt_tokens as f64 / s.prefill_secs,
            s.generated_tokens as f64 / s.decode_secs
        );
    }
    Ok(())
}
