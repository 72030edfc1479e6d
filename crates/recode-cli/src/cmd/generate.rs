//! `recode generate`: batched text generation with a local model (GGUF file, HF directory or hub
//! id), optional LoRA/DoRA adapter, the model's chat template and OpenAI-style logprobs.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use recode_data::template::{ChatMessage, Ending};
use recode_model::{generate, Completion, ForwardOpts, LoadedModel, SamplingParams};

use crate::cmd::common::{load_model, model_spec};

/// Arguments of `recode generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Model: a .gguf file, a directory with config.json + safetensors, a full fine-tuning
    /// checkpoint (`recode train/sft --set use_peft=false`), or a HF hub id
    /// (default: $RECODE_SMOLLM2_GGUF).
    #[arg(long)]
    pub model: Option<String>,
    /// PEFT adapter directory (adapter_model.safetensors + adapter_config.json).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// A single prompt (user message, or raw text with --raw).
    #[arg(long, conflicts_with = "input")]
    pub prompt: Option<String>,
    /// JSONL file: one object per line with `prompt` (string) or `messages` ([{role, content}]).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Use the prompt text as is (special tokens such as <|im_start|> are recognised).
    #[arg(long)]
    pub raw: bool,
    /// Optional system message placed before the user prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Maximum new tokens per completion.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Min-p filtering (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Completions per prompt.
    #[arg(short = 'n', long = "n", default_value_t = 1)]
    pub n: usize,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Return the top-K log-probabilities of every generated token (OpenAI completions style).
    #[arg(long)]
    pub logprobs: Option<usize>,
    /// Print one JSON object per completion (text, finish_reason, prompt_token_ids, token_ids,
    /// and logprobs with --logprobs).
    #[arg(long)]
    pub json: bool,
    /// Prompts per forward batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
}

/// Reads prompts as chat message lists (or raw strings when `raw`).
fn read_prompts(args: &GenerateArgs) -> anyhow::Result<Vec<Vec<ChatMessage>>> {
    let mut out = Vec::new();
    let user = |text: String| {
        let mut msgs = Vec::new();
        if let Some(s) = &args.system {
            msgs.push(ChatMessage::new("system", s.clone()));
        }
        msgs.push(ChatMessage::new("user", text));
        msgs
    };
    if let Some(p) = &args.prompt {
        out.push(user(p.clone()));
    } else if let Some(path) = &args.input {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.with_context(|| format!("{}:{}", path.display(), i + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
            if let Some(p) = v.get("prompt").and_then(|p| p.as_str()) {
                out.push(user(p.to_string()));
            } else if let Some(m) = v.get("messages") {
                let msgs: Vec<ChatMessage> =
                    serde_json::from_value(m.clone()).with_context(|| {
                        format!(
                            "{}:{}: field `messages` must be [{{role, content}}]",
                            path.display(),
                            i + 1
                        )
                    })?;
                out.push(msgs);
            } else {
                bail!(
                    "{}:{}: expected a `prompt` or `messages` field",
                    path.display(),
                    i + 1
                );
            }
        }
    } else {
        bail!("give --prompt TEXT or --input FILE.jsonl");
    }
    Ok(out)
}

/// Renders the prompts through the model's chat template (or takes them raw) and tokenises them.
fn tokenise(
    m: &LoadedModel,
    prompts: &[Vec<ChatMessage>],
    raw: bool,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let tok = &m.tokenizer;
    let template = if raw {
        None
    } else {
        if tok.chat_template.is_none() {
            bail!("the model has no chat template; use --raw to send the prompt text as is");
        }
        Some(recode_rl::task::chat_template_of(tok)?)
    };
    prompts
        .iter()
        .map(|msgs| {
            let text = match &template {
                // A final assistant turn is a prefix to continue (ReCode's `<think>` opening).
                Some(t) if msgs.last().is_some_and(|m| m.role == "assistant") => {
                    t.render(msgs, Ending::ContinueFinal)?
                }
                Some(t) => t.render(msgs, Ending::GenerationPrompt)?,
                None => msgs
                    .iter()
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            Ok(tok.encode(&text)?)
        })
        .collect()
}

/// The OpenAI completions `logprobs` object of one completion.
fn logprobs_json(m: &LoadedModel, c: &Completion) -> serde_json::Value {
    let piece = |id: u32| m.tokenizer.decode(&[id], false).unwrap_or_default();
    let tokens: Vec<String> = c.token_ids.iter().map(|&t| piece(t)).collect();
    let top: Vec<serde_json::Map<String, serde_json::Value>> = c
        .top_logprobs
        .iter()
        .map(|alts| {
            alts.iter()
                .map(|&(id, lp)| (piece(id), serde_json::json!(lp)))
                .collect()
        })
        .collect();
    serde_json::json!({"tokens": tokens, "token_logprobs": c.token_logprobs, "top_logprobs": top})
}

/// Runs `recode generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let spec = model_spec(&args.model)?;
    let m = load_model(&spec, args.adapter.as_deref())?;
    let prompts = read_prompts(&args)?;
    let ids = tokenise(&m, &prompts, args.raw)?;
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        min_p: args.min_p,
        max_new_tokens: args.max_new_tokens,
        stop_strings: args.stop.clone(),
        seed: args.seed,
        n: args.n,
        top_logprobs: args.logprobs.unwrap_or(0),
        ..Default::default()
    };
    let stream = !args.json && ids.len() == 1 && args.n == 1;
    let bar = indicatif::ProgressBar::new((ids.len() * args.n) as u64);
    if stream {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} completions {msg}")
            .expect("static template"),
    );
    let (mut gen_tokens, mut secs) = (0usize, 0.0f64);
    let stdout = std::io::stdout();
    for (chunk_i, chunk) in ids.chunks(args.batch_size.max(1)).enumerate() {
        let base = chunk_i * args.batch_size.max(1);
        let mut cb = |e: &recode_model::StreamEvent| {
            let mut o = stdout.lock();
            let _ = o.write_all(e.text_delta.as_bytes());
            let _ = o.flush();
        };
        let callback: Option<&mut dyn FnMut(&recode_model::StreamEvent)> =
            if stream { Some(&mut cb) } else { None };
        let (outs, stats) = generate(
            &m.model,
            &m.tokenizer,
            chunk,
            &params,
            ForwardOpts::INFERENCE,
            callback,
        )?;
        gen_tokens += stats.generated_tokens;
        secs += stats.prefill_secs + stats.decode_secs;
        bar.inc(outs.len() as u64);
        bar.set_message(format!("{:.1} tok/s", gen_tokens as f64 / secs.max(1e-9)));
        let mut o = stdout.lock();
        for c in &outs {
            if args.json {
                let mut v = serde_json::json!({
                    "prompt_index": base + c.prompt_index,
                    "sample_index": c.sample_index,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "prompt_token_ids": chunk[c.prompt_index],
                    "token_ids": c.token_ids,
                });
                if args.logprobs.is_some() {
                    v["logprobs"] = logprobs_json(&m, c);
                }
                writeln!(o, "{v}")?;
            } else if stream {
                writeln!(o)?;
            } else {
                writeln!(
                    o,
                    "--- prompt {} sample {} ({:?})",
                    base + c.prompt_index,
                    c.sample_index,
                    c.finish_reason
                )?;
                writeln!(o, "{}", c.text)?;
                if args.logprobs.is_some() {
                    writeln!(o, "{}", logprobs_json(&m, c))?;
                }
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{gen_tokens} tokens in {secs:.2}s ({:.1} tok/s)",
        gen_tokens as f64 / secs.max(1e-9)
    );
    Ok(())
}
