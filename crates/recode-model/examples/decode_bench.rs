//! Decode-throughput probe used while optimising: SmolLM2 (or any model) at batch 8 sampled and
//! batch 1 greedy, `N` new tokens each, eos ignored. `recode bench generate` is the real benchmark;
//! this example only needs this crate. Usage: `decode_bench [MODEL] [NEW_TOKENS]`.

use candle_core::{DType, Device};
use recode_model::{generate, load_model, ForwardOpts, SamplingParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let spec = args.next().unwrap_or_else(|| {
        std::env::var("RECODE_SMOLLM2_GGUF")
            .unwrap_or_else(|_| "/root/.cache/recode/models/SmolLM2-135M-Instruct.Q4_1.gguf".into())
    });
    let new_tokens: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let m = load_model(&spec, DType::F32, &Device::Cpu)?;
    let text = "<|im_start|>user\nWrite a Python function that checks whether a string is a palindrome.<|im_end|>\n<|im_start|>assistant\n";
    let p = m.tokenizer.encode(text)?;
    for (name, batch, temperature) in [("batch8_sampled", 8, 1.0), ("batch1_greedy", 1, 0.0)] {
        let prompts: Vec<Vec<u32>> = (0..batch).map(|i| p[..p.len() - i % 3].to_vec()).collect();
        let params = SamplingParams {
            temperature,
            max_new_tokens: new_tokens,
            ignore_eos: true,
            seed: 1,
            ..Default::default()
        };
        let (_, s) = generate(
            &m.model,
            &m.tokenizer,
            &prompts,
            &params,
            ForwardOpts::INFERENCE,
            None,
        )?;
        println!(
            "{name}: prefill {:.3}s ({:.0} tok/s), decode {:.1} tok/s ({} tokens in {:.2}s)",
            s.prefill_secs,
            s.prompt_tokens as f64 / s.prefill_secs,
            s.generated_tokens as f64 / s.decode_secs,
            s.generated_tokens,
            s.decode_secs
        );
    }
    Ok(())
}
