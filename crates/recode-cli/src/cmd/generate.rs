//! `recode generate`: batched text generation with a local model (GGUF file, HF directory or hub
//! id), optional LoRA/DoRA adapter, the model's chat template, OpenAI-style logprobs, and
//! `recode bench generate`, the generation throughput benchmark.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use recode_data::template::{ChatMessage, ChatTemplate, Ending};
use recode_model::candle_core::{DType, Device};
use recode_model::{generate, Completion, ForwardOpts, LoadedModel, SamplingParams};

const DEFAULT_MODEL_ENV: &str = "RECODE_SMOLLM2_GGUF";

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

/// The model to load: `--model` if given, else `$RECODE_SMOLLM2_GGUF` (what `scripts/setup.sh`
/// installs), else an error saying so.
pub fn model_spec(model: &Option<String>) -> anyhow::Result<String> {
    match model {
        Some(m) => Ok(m.clone()),
        None => std::env::var(DEFAULT_MODEL_ENV).with_context(|| {
            format!("no --model given and ${DEFAULT_MODEL_ENV} is not set (scripts/setup.sh downloads SmolLM2)")
        }),
    }
}

fn open(spec: &str, adapter: Option<&PathBuf>) -> anyhow::Result<LoadedModel> {
    let t = std::time::Instant::now();
    let mut m = recode_rl::lm::load_lm(spec, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading model {spec}"))?;
    if let Some(dir) = adapter {
        m.model
            .load_adapters(dir)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
        m.model.merge_adapters()?;
    }
    tracing::info!(
        model = spec,
        secs = t.elapsed().as_secs_f64(),
        "model loaded"
    );
    Ok(m)
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
        let src = tok
            .chat_template
            .as_deref()
            .context("the model has no chat template; use --raw to send the prompt text as is")?;
        let bos = tok.bos.as_ref().map(|b| b.0.as_str()).unwrap_or("");
        let eos = tok.eos.first().map(|e| e.0.as_str()).unwrap_or("");
        Some(ChatTemplate::new(src, bos, eos)?)
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
    let m = open(&spec, args.adapter.as_ref())?;
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

/// Arguments of `recode bench generate`.
#[derive(clap::Args, Debug)]
pub struct BenchGenerateArgs {
    /// Model (default: $RECODE_SMOLLM2_GGUF).
    #[arg(long)]
    pub model: Option<String>,
    /// Prompts in the sampled batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// New tokens per completion (eos ignored so every run generates exactly this many).
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Python with torch + transformers + gguf for the peer (default: the venv that
    /// scripts/setup-bench.sh makes, $RECODE_BENCH_VENV or ~/.cache/recode/venv-bench).
    #[arg(long)]
    pub peer_python: Option<PathBuf>,
    /// Peer and report options.
    #[command(flatten)]
    pub output: crate::cmd::bench::BenchOutput,
}

/// Peak resident memory of this process in bytes (Linux VmHWM).
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

const BENCH_PROMPTS: [&str; 8] = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Explain the difference between a list and a tuple in Python.",
    "Write a function to compute the nth Fibonacci number iteratively.",
    "What does the `with` statement do in Python?",
    "Write a Python class for a simple bank account with deposit and withdraw.",
    "How do I read a CSV file with pandas and print the first rows?",
    "Write a function that merges two sorted lists into one sorted list.",
    "Describe what a Python generator is, with a short example.",
];

/// The peer side of `recode bench generate` (Hugging Face transformers on PyTorch CPU).
const GENERATE_PEER_PY: &str = include_str!("../../../../python/bench/generate_peer.py");

/// `recode bench generate`: prefill and decode throughput and peak RSS at batch N × M sampled
/// tokens and at batch 1 greedy, for recode and, side by side on the same GGUF and the same
/// token ids, Hugging Face transformers `generate` and, when llama-cpp-python is installed in the
/// peer venv, llama.cpp (python/bench/generate_peer.py).
pub fn bench_generate(args: BenchGenerateArgs) -> anyhow::Result<()> {
    let spec = model_spec(&args.model)?;
    let peer_python = if args.output.no_peer {
        None
    } else {
        Some(crate::cmd::bench::bench_python(
            args.peer_python.as_deref(),
        )?)
    };
    let m = open(&spec, None)?;
    let msgs: Vec<Vec<ChatMessage>> = (0..args.batch)
        .map(|i| {
            vec![ChatMessage::new(
                "user",
                BENCH_PROMPTS[i % BENCH_PROMPTS.len()],
            )]
        })
        .collect();
    let ids = tokenise(&m, &msgs, false)?;
    let runs = [
        ("sampled", ids.clone(), 1.0),
        ("greedy_batch1", ids[..1].to_vec(), 0.0),
    ];
    let mut results = Vec::new();
    for (name, prompts, temperature) in &runs {
        let params = SamplingParams {
            temperature: *temperature,
            max_new_tokens: args.new_tokens,
            ignore_eos: true,
            seed: 1,
            ..Default::default()
        };
        // Warm-up, as the peer does (first-call allocations are not what we measure).
        let warm = SamplingParams {
            max_new_tokens: 2,
            ..params.clone()
        };
        generate(
            &m.model,
            &m.tokenizer,
            prompts,
            &warm,
            ForwardOpts::INFERENCE,
            None,
        )?;
        let (_, s) = generate(
            &m.model,
            &m.tokenizer,
            prompts,
            &params,
            ForwardOpts::INFERENCE,
            None,
        )?;
        let r = serde_json::json!({
            "run": name,
            "batch": prompts.len(),
            "prompt_tokens": s.prompt_tokens,
            "generated_tokens": s.generated_tokens,
            "prefill_tok_s": s.prompt_tokens as f64 / s.prefill_secs,
            "decode_tok_s": s.generated_tokens as f64 / s.decode_secs,
        });
        eprintln!("recode: {r}");
        results.push(r);
    }
    let rss = peak_rss().unwrap_or(0);
    drop(m);
    let mut report = serde_json::json!({
        "model": spec,
        "threads": rayon_threads(),
        "recode": results,
        "recode_peak_rss_bytes": rss,
    });
    if let Some(python) = peer_python {
        let dir = tempfile::tempdir()?;
        let runs_path = dir.path().join("runs.json");
        let runs_json: Vec<serde_json::Value> = runs
            .iter()
            .map(|(name, prompts, t)| {
                serde_json::json!({"name": name, "prompts": prompts, "temperature": t,
                                   "new_tokens": args.new_tokens, "seed": 1})
            })
            .collect();
        std::fs::write(&runs_path, serde_json::to_vec(&runs_json)?)?;
        let mut peers = vec![("transformers", "transformers")];
        let has_llamacpp = std::process::Command::new(&python)
            .args(["-c", "import llama_cpp"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has_llamacpp {
            peers.push(("llama.cpp", "llamacpp"));
        } else {
            eprintln!(
                "llama-cpp-python is not installed in the peer venv: no llama.cpp column \
                 (RECODE_BENCH_LLAMACPP=1 scripts/setup-bench.sh builds it)"
            );
        }
        let rate =
            |v: &serde_json::Value, run: usize, key: &str| v[run][key].as_f64().unwrap_or(f64::NAN);
        for (label, peer_arg) in peers {
            let peer = crate::cmd::bench::run_peer_script(
                &python,
                "generate_peer.py",
                GENERATE_PEER_PY,
                &[
                    "--model".into(),
                    spec.clone(),
                    "--runs".into(),
                    runs_path.display().to_string(),
                    "--threads".into(),
                    rayon_threads().to_string(),
                    "--peer".into(),
                    peer_arg.into(),
                ],
            );
            // A dead peer is a finding of the run, not the end of it: its column says why.
            let peer = match peer {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("\n{label} peer: no figures: {e:#}");
                    report[peer_arg] = serde_json::json!({ "error": format!("{e:#}") });
                    continue;
                }
            };
            let ratios = serde_json::json!({
                "prefill_batch8": rate(&report["recode"], 0, "prefill_tok_s") / rate(&peer["runs"], 0, "prefill_tok_s"),
                "decode_batch8": rate(&report["recode"], 0, "decode_tok_s") / rate(&peer["runs"], 0, "decode_tok_s"),
                "decode_batch1_greedy": rate(&report["recode"], 1, "decode_tok_s") / rate(&peer["runs"], 1, "decode_tok_s"),
                "peak_rss": rss as f64 / peer["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN),
            });
            eprintln!("\nrun             recode tok/s   {label} tok/s   ratio");
            for (i, (name, _, _)) in runs.iter().enumerate() {
                for key in ["prefill_tok_s", "decode_tok_s"] {
                    let (a, b) = (rate(&report["recode"], i, key), rate(&peer["runs"], i, key));
                    eprintln!("{name:<14} {key:<14} {a:>9.1} {b:>12.1} {:>10.2}x", a / b);
                }
            }
            eprintln!(
                "peak RSS       recode {:.2} GB, {label} {:.2} GB",
                rss as f64 / 1e9,
                peer["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1e9
            );
            report[peer_arg] = peer;
            report[format!("ratio_recode_over_{peer_arg}")] = ratios;
        }
    }
    crate::cmd::bench::emit_report("generate", report, &args.output)
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
