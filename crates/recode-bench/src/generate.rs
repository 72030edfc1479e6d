//! `recode bench generate`: prefill and decode throughput and peak RSS at batch N × M sampled
//! tokens and at batch 1 greedy, for recode and, side by side on the same GGUF and the same
//! token ids, Hugging Face transformers `generate` and, when llama-cpp-python is installed in
//! the peer venv, llama.cpp (`peers/generate_peer.py`).
//!
//! The prompts are by default real ReCode training prompts, rendered and tokenised exactly as
//! rollouts see them and chosen in file order among those of 250–500 tokens (what prefill costs
//! in an RL step); `PromptSource::Chat` gives short chat questions instead.

use std::path::PathBuf;

use recode_data::{ChatMessage, Ending};
use recode_model::candle_core::{DType, Device};
use recode_model::{generate, ForwardOpts, LoadedModel, SamplingParams};

use crate::{BenchError, Result};

/// The report's name (`"bench"` key).
pub const NAME: &str = "generate";

/// The peer side (Hugging Face transformers on PyTorch CPU, or llama.cpp).
const PEER: &str = include_str!("../peers/generate_peer.py");

/// The user prompts of the batch, cycled when the batch is larger.
const PROMPTS: [&str; 8] = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Explain the difference between a list and a tuple in Python.",
    "Write a function to compute the nth Fibonacci number iteratively.",
    "What does the `with` statement do in Python?",
    "Write a Python class for a simple bank account with deposit and withdraw.",
    "How do I read a CSV file with pandas and print the first rows?",
    "Write a function that merges two sorted lists into one sorted list.",
    "Describe what a Python generator is, with a short example.",
];

/// Shortest and longest rendered ReCode prompt the benchmark takes (tokens).
pub const RECODE_PROMPT_TOKENS: std::ops::RangeInclusive<usize> = 250..=500;

/// Where the benchmark's prompts come from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    /// ReCode training prompts from this data file (default: the training data as
    /// `recode_data::datasets::RECODE_TRAIN` resolves it), rendered as rollouts see them, the
    /// first ones in [`RECODE_PROMPT_TOKENS`].
    Recode(Option<PathBuf>),
    /// Short built-in chat questions.
    Chat,
}

/// Options of `recode bench generate`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The prompts.
    pub prompts: PromptSource,
    /// Model spec (GGUF file, HF directory or hub id); the peers load the same one.
    pub model: String,
    /// Prompts in the sampled batch.
    pub batch: usize,
    /// New tokens per completion (eos ignored so every run generates exactly this many).
    pub new_tokens: usize,
    /// Timed repetitions of each run (at least 1); the median prefill and decode times count.
    pub repeats: usize,
    /// Interpreter with torch + transformers + gguf for the peers (None: the bench venv).
    pub peer_python: Option<PathBuf>,
    /// Measure recode alone.
    pub no_peer: bool,
}

/// One timed run: its name, the tokenised prompts and the temperature.
type Run = (&'static str, Vec<Vec<u32>>, f64);

/// Runs the benchmark; returns the report. A peer that dies is recorded in its column
/// (`{"error": …}`) rather than ending the run.
pub fn run(o: &Options) -> Result<serde_json::Value> {
    if !o.no_peer && o.new_tokens < 2 {
        // The peers time decoding from their first new token to the last.
        return Err(BenchError::Option {
            option: "--new-tokens",
            reason: "must be at least 2 when peers run (decoding is timed from the first new \
                     token on); use --no-peer for shorter runs",
        });
    }
    let peer_python = if o.no_peer {
        None
    } else {
        Some(crate::bench_python(o.peer_python.as_deref())?)
    };
    let m = recode_rl::lm::load_lm(&o.model, DType::F32, &Device::Cpu)?;
    let data = match &o.prompts {
        PromptSource::Chat => None,
        PromptSource::Recode(data) => Some(crate::recode_data_file(data.as_deref())?),
    };
    let ids = match &data {
        None => tokenise(&m, &o.model, o.batch)?,
        Some(data) => recode_prompts(&m, data, o.batch)?,
    };
    let runs: [Run; 2] = [
        ("sampled", ids.clone(), 1.0),
        ("greedy_batch1", ids[..1].to_vec(), 0.0),
    ];
    let mut results = Vec::new();
    for (name, prompts, temperature) in &runs {
        let params = SamplingParams {
            temperature: *temperature,
            max_new_tokens: o.new_tokens,
            ignore_eos: true,
            seed: 1,
            ..Default::default()
        };
        // Warm-up, as the peer does (first-call allocations are not what we measure).
        let warm = SamplingParams {
            max_new_tokens: 2,
            ..params.clone()
        };
        let infer = ForwardOpts::INFERENCE;
        generate(&m.model, &m.tokenizer, prompts, &warm, infer, None)?;
        let mut timed = Vec::with_capacity(o.repeats);
        for _ in 0..o.repeats.max(1) {
            let (_, s) = generate(&m.model, &m.tokenizer, prompts, &params, infer, None)?;
            timed.push(s);
        }
        let (prompt_tokens, generated) = (timed[0].prompt_tokens, timed[0].generated_tokens);
        let rates = |secs: fn(&recode_model::GenerationStats) -> f64, tokens: usize| {
            timed
                .iter()
                .map(|s| tokens as f64 / secs(s))
                .collect::<Vec<_>>()
        };
        let prefill = rates(|s| s.prefill_secs, prompt_tokens);
        let decode = rates(|s| s.decode_secs, generated);
        let r = serde_json::json!({
            "run": name,
            "batch": prompts.len(),
            "prompt_tokens": prompt_tokens,
            "generated_tokens": generated,
            "prefill_tok_s": median(&prefill),
            "decode_tok_s": median(&decode),
            "repeats": {"prefill_tok_s": prefill, "decode_tok_s": decode},
        });
        eprintln!("recode: {r}");
        results.push(r);
    }
    let rss = peak_rss().unwrap_or(0);
    drop(m);
    let prompts = match &data {
        None => serde_json::json!({ "source": "chat" }),
        Some(data) => serde_json::json!({
            "source": "recode",
            "data": data,
            "tokens": ids.iter().map(Vec::len).collect::<Vec<_>>(),
        }),
    };
    let mut report = serde_json::json!({
        "model": o.model,
        "prompts": prompts,
        "threads": crate::threads(),
        "recode": results,
        "recode_peak_rss_bytes": rss,
    });
    if let Some(python) = peer_python {
        run_peers(&python, o, &runs, rss, &mut report)?;
    }
    Ok(report)
}

/// The benchmark's chat prompts (`batch` of them) rendered through the model's chat template
/// and tokenised.
fn tokenise(m: &LoadedModel, spec: &str, batch: usize) -> Result<Vec<Vec<u32>>> {
    if m.tokenizer.chat_template.is_none() {
        return Err(BenchError::NoChatTemplate {
            model: spec.to_string(),
        });
    }
    let template = recode_rl::task::chat_template_of(&m.tokenizer)?;
    (0..batch)
        .map(|i| {
            let msgs = [ChatMessage::new("user", PROMPTS[i % PROMPTS.len()])];
            let text = template.render(&msgs, Ending::GenerationPrompt)?;
            Ok(m.tokenizer.encode(&text)?)
        })
        .collect()
}

/// The first `batch` ReCode prompts of `data` whose rendered, tokenised form (as
/// [`recode_rl::task::prompt_items`] gives it to rollouts) has 250–500 tokens.
fn recode_prompts(m: &LoadedModel, data: &std::path::Path, batch: usize) -> Result<Vec<Vec<u32>>> {
    let spec = data.display().to_string();
    let ds = recode_data::load(&spec, recode_data::LoadOptions::default())?;
    let template = recode_rl::task::chat_template_of(&m.tokenizer)?;
    let mut out = Vec::with_capacity(batch);
    // Render in chunks: the data set has thousands of rows and a few dozen are needed.
    for rows in ds.rows.chunks(64) {
        let items =
            recode_rl::task::prompt_items(rows, &spec, &template, &m.tokenizer, usize::MAX)?;
        out.extend(
            items
                .into_iter()
                .map(|i| i.tokens)
                .filter(|t| RECODE_PROMPT_TOKENS.contains(&t.len()))
                .take(batch - out.len()),
        );
        if out.len() == batch {
            return Ok(out);
        }
    }
    Err(BenchError::TooFewPrompts {
        data: data.to_path_buf(),
        wanted: batch,
        found: out.len(),
    })
}

/// Runs the transformers peer and, when installed, the llama.cpp peer on the same token ids;
/// adds their figures and recode's ratios over them to `report`.
fn run_peers(
    python: &std::path::Path,
    o: &Options,
    runs: &[Run],
    rss: u64,
    report: &mut serde_json::Value,
) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|source| BenchError::Io {
        what: "temp dir for",
        path: std::env::temp_dir(),
        source,
    })?;
    let runs_path = dir.path().join("runs.json");
    let runs_json: Vec<serde_json::Value> = runs
        .iter()
        .map(|(name, prompts, t)| {
            serde_json::json!({"name": name, "prompts": prompts, "temperature": t,
                               "new_tokens": o.new_tokens, "seed": 1,
                               "repeats": o.repeats.max(1)})
        })
        .collect();
    std::fs::write(&runs_path, serde_json::to_vec(&runs_json)?).map_err(|source| {
        BenchError::Io {
            what: "writing",
            path: runs_path.clone(),
            source,
        }
    })?;
    let mut peers = vec![("transformers", "transformers")];
    let has_llamacpp = std::process::Command::new(python)
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
        let args = [
            "--model".into(),
            o.model.clone(),
            "--runs".into(),
            runs_path.display().to_string(),
            "--threads".into(),
            crate::threads().to_string(),
            "--peer".into(),
            peer_arg.into(),
        ];
        // A dead peer is a finding of the run, not the end of it: its column says why.
        let peer = match crate::run_peer_script(python, "generate_peer.py", PEER, &args) {
            Ok(p) => p,
            Err(e) => {
                let e = crate::error_line(&e);
                eprintln!("\n{label} peer: no figures: {e}");
                report[peer_arg] = serde_json::json!({ "error": e });
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
    Ok(())
}

/// The median of `xs` (the mean of the middle two for an even count; NaN when empty).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Peak resident memory of this process in bytes (Linux VmHWM).
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
