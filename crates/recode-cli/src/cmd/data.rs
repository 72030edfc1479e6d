//! `recode data`: validate, clean, split, render and export ReCode API-update data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use recode_data::{clean, export, prompt, split, stats, ChatTemplate, Dataset, LoadOptions};
use recode_reward::Mode;

mod curate;

/// Subcommands of `recode data`.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Print a validation report: rows per library, duplicates, identical old/new code,
    /// nulls, version prefixes, Python syntax errors, token lengths.
    ///
    /// DATA is a .jsonl/.parquet path or a Hugging Face dataset id (zjunlp/ReCode-Train-Data).
    Stats(StatsArgs),
    /// Write a cleaned copy: drop unusable rows (each rule can be switched off) and
    /// canonicalise library names and versions; prints what was dropped and why.
    Clean(CleanArgs),
    /// Deterministic train/validation(/test) split, stratified by library, written once:
    /// <stem>.train/.val(/.test).jsonl and split.json (row counts, SHA-256). An existing split
    /// with the same content is left alone; one with different content is refused.
    Split(SplitArgs),
    /// Render the exact ReCode training prompts through a chat template (JSONL: prompt, target).
    Render(RenderArgs),
    /// Export for scale-out engines: verl Parquet or TRL GRPOTrainer JSONL.
    Export(ExportArgs),
    /// Mine the API changes between two released versions of a PyPI package: both versions
    /// installed on one interpreter (cached venvs), an introspection snapshot of each, the diff
    /// (removed, added, renamed, moved, parameter/default/kind changes, deprecations), re-exports
    /// collapsed by canonical id. Example:
    /// `recode data mine --dist packaging --old 21.3 --new 22.0 -o changes.jsonl`
    Mine(curate::MineArgs),
    /// Verify candidate migration pairs on both real versions: static checks (syntax,
    /// identical, off-target), then four sandboxed runs each (old code on old and new version,
    /// new code on both); accepted when old@old and new@new run to their last line and the
    /// pair discriminates (old code fails or newly warns on the new version: breaking; new code
    /// fails on the old version: additive). Example:
    /// `recode data verify candidates.jsonl -o verified/`
    Verify(curate::VerifyArgs),
    /// Write candidate migration pairs for mined changes with any OpenAI-compatible endpoint
    /// (one prompt per change; JSON answers parsed robustly; unparsable ones kept as rejects).
    /// Example: `recode data synth changes.jsonl --endpoint http://127.0.0.1:8000 --model m
    /// -n 2 -o candidates.jsonl`, then `recode data verify candidates.jsonl -o verified/`
    Synth(curate::SynthArgs),
}

/// Normalisation mode for the "identical old/new code" check.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// As the published reward normalises (quirks included).
    Paper,
    /// Quirks removed.
    Fixed,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Paper => Mode::Paper,
            ModeArg::Fixed => Mode::Fixed,
        }
    }
}

/// Arguments of `recode data stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Input: .jsonl, .parquet, or a hub dataset id.
    pub data: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Report every malformed line instead of stopping at the first.
    #[arg(long)]
    pub keep_going: bool,
    /// A tokenizer.json: adds token-length percentiles of prompts and targets.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Template for the prompts measured with --tokenizer (see `recode data render --template`).
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// Normalisation for the identical-code check.
    #[arg(long, value_enum, default_value = "paper")]
    pub mode: ModeArg,
}

/// Arguments of `recode data clean`.
#[derive(Args)]
pub struct CleanArgs {
    /// Input: .jsonl, .parquet, or a hub dataset id.
    pub input: String,
    /// Output file (.jsonl or .parquet), written atomically.
    pub output: PathBuf,
    /// Keep rows with a null or blank required field.
    #[arg(long)]
    pub keep_null: bool,
    /// Keep exact duplicates.
    #[arg(long)]
    pub keep_duplicates: bool,
    /// Keep rows whose old and new code normalise to the same text.
    #[arg(long)]
    pub keep_identical: bool,
    /// Keep rows whose new_code does not parse as Python 3.
    #[arg(long)]
    pub keep_unparsable: bool,
    /// Leave library names as written.
    #[arg(long)]
    pub no_canonical_names: bool,
    /// Leave versions as written.
    #[arg(long)]
    pub no_canonical_versions: bool,
    /// Normalisation for the identical-code rule.
    #[arg(long, value_enum, default_value = "paper")]
    pub mode: ModeArg,
    /// Print the report as JSON (with every dropped line).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recode data split`.
#[derive(Args)]
pub struct SplitArgs {
    /// Input: .jsonl, .parquet, or a hub dataset id.
    pub input: String,
    /// Fraction of each library's rows that goes to validation.
    #[arg(long, default_value_t = 0.05)]
    pub val: f64,
    /// Fraction of each library's rows that goes to a test split (<stem>.test.jsonl), drawn
    /// after validation from the same shuffle (0 = none: the two-way split).
    #[arg(long, default_value_t = 0.0)]
    pub test: f64,
    /// Seed; the same seed gives the same split on every platform.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory for <stem>.train.jsonl, <stem>.val.jsonl (, <stem>.test.jsonl) and split.json.
    #[arg(long, short, default_value = ".")]
    pub out_dir: PathBuf,
}

/// Arguments of `recode data render`.
#[derive(Args)]
pub struct RenderArgs {
    /// Input: .jsonl, .parquet, or a hub dataset id.
    pub input: String,
    /// `chatml` (built in), a tokenizer_config.json (its chat_template), or a Jinja file.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// Output JSONL (prompt, target, line); stdout when absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print only the prompt of this 0-based row, as plain text.
    #[arg(long)]
    pub index: Option<usize>,
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// verl RL dataset, Parquet.
    Verl,
    /// TRL GRPOTrainer conversational rows, JSON lines.
    TrlJsonl,
}

/// Arguments of `recode data export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Input: .jsonl, .parquet, or a hub dataset id (clean it first).
    pub input: String,
    /// Output file.
    pub output: PathBuf,
    /// Target format.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// `data_source` column.
    #[arg(long, default_value = "recode/api_update")]
    pub data_source: String,
    /// `extra_info.split` value.
    #[arg(long, default_value = "train")]
    pub split: String,
}

/// Runs a `recode data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Stats(a) => run_stats(a),
        DataCommand::Clean(a) => run_clean(a),
        DataCommand::Split(a) => run_split(a),
        DataCommand::Render(a) => run_render(a),
        DataCommand::Export(a) => run_export(a),
        DataCommand::Mine(a) => curate::run_mine(a),
        DataCommand::Verify(a) => curate::run_verify(a),
        DataCommand::Synth(a) => curate::run_synth(a),
    }
}

fn load(spec: &str, keep_going: bool) -> Result<Dataset> {
    Ok(recode_data::load(spec, LoadOptions { keep_going })?)
}

/// Resolves a `--template` value: `chatml`, a tokenizer_config.json, or a Jinja file.
pub fn load_template(spec: &str) -> Result<ChatTemplate> {
    if spec == "chatml" {
        return Ok(ChatTemplate::chatml());
    }
    let path = Path::new(spec);
    let t = if path.extension().is_some_and(|e| e == "json") {
        ChatTemplate::from_tokenizer_config(path)?
    } else {
        ChatTemplate::from_file(path)?
    };
    Ok(t)
}

fn run_stats(a: StatsArgs) -> Result<()> {
    let ds = load(&a.data, a.keep_going)?;
    let mut report = stats::compute(&ds, a.mode.into());
    if let Some(tok) = &a.tokenizer {
        let template = load_template(&a.template)?;
        report.token_lengths = Some(stats::token_lengths(&ds, tok, &template)?);
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print_stats(&report);
    Ok(())
}

fn print_stats(r: &stats::StatsReport) {
    println!("files:                  {}", r.files.join(", "));
    println!("rows:                   {}", r.rows);
    if !r.bad_lines.is_empty() {
        println!("bad lines:              {}", r.bad_lines.len());
        for b in &r.bad_lines {
            println!("  {}", b.error);
        }
    }
    println!("exact duplicates:       {}", r.exact_duplicates);
    println!("identical old/new code: {}", r.identical_old_new);
    if let Some(es) = r.copy_es_star {
        println!("ES* of copying old code: {es:.4} (mean; what a model that only copies scores)");
    }
    println!("version without '==':   {}", r.missing_version_prefix);
    println!("old_code syntax errors: {}", r.old_code_syntax_errors);
    println!("new_code syntax errors: {}", r.new_code_syntax_errors);
    let nulls: Vec<String> = r
        .null_fields
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{f}={n}"))
        .collect();
    println!(
        "null fields:            {}",
        if nulls.is_empty() {
            "none".into()
        } else {
            nulls.join(", ")
        }
    );
    println!("rows per library:");
    for (dep, n) in &r.per_dependency {
        let also = r
            .dependency_spellings
            .get(dep)
            .map(|s| {
                let parts: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("  (spellings: {})", parts.join(", "))
            })
            .unwrap_or_default();
        println!("  {dep:<16} {n:>6}{also}");
    }
    if let Some(t) = &r.token_lengths {
        println!("token lengths ({}):", t.tokenizer);
        for (name, p) in [("prompt", &t.prompt), ("target", &t.target)] {
            if let Some(p) = p {
                println!(
                    "  {name:<7} p50={} p90={} p95={} p99={} max={}",
                    p.p50, p.p90, p.p95, p.p99, p.max
                );
            }
        }
    }
}

fn write_examples<'a>(
    path: &Path,
    examples: impl IntoIterator<Item = &'a recode_data::UpdateExample>,
) -> Result<()> {
    if path.extension().is_some_and(|e| e == "parquet") {
        recode_data::parquet_io::write_examples(path, examples)?;
    } else {
        recode_data::load::write_jsonl(path, examples)?;
    }
    Ok(())
}

fn run_clean(a: CleanArgs) -> Result<()> {
    let ds = load(&a.input, false)?;
    let opts = clean::CleanOptions {
        drop_null_required: !a.keep_null,
        drop_duplicates: !a.keep_duplicates,
        drop_identical: !a.keep_identical,
        drop_unparsable_target: !a.keep_unparsable,
        canonicalise_names: !a.no_canonical_names,
        canonicalise_versions: !a.no_canonical_versions,
        mode: a.mode.into(),
    };
    let (kept, report) = clean::clean(&ds.rows, &opts);
    write_examples(&a.output, &kept)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "read {} rows, wrote {} to {}",
        report.input_rows,
        report.output_rows,
        a.output.display()
    );
    for (reason, n) in &report.dropped {
        let name = serde_json::to_value(reason)?;
        println!("  dropped {n:>5}  {}", name.as_str().unwrap_or_default());
    }
    println!(
        "  renamed libraries in {} rows, canonicalised versions in {} rows",
        report.renamed_dependencies, report.canonicalised_versions
    );
    Ok(())
}

fn run_split(a: SplitArgs) -> Result<()> {
    let ds = load(&a.input, false)?;
    let examples: Vec<_> = ds.examples().cloned().collect();
    let s = split::split_three(&examples, a.val, a.test, a.seed)?;
    let stem = Path::new(&a.input)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let stem = stem.rsplit('/').next().unwrap_or(&stem).to_string();
    let written = split::write_split(
        &a.out_dir,
        &stem,
        &a.input,
        &examples,
        &s,
        (a.val, a.test, a.seed),
    )?;
    let state = match written {
        split::SplitWrite::Written(_) => "written",
        split::SplitWrite::Unchanged(_) => "unchanged (already there)",
    };
    for f in &written.manifest().files {
        println!(
            "{:<5} {:>5} rows → {} (sha256 {}) {state}",
            format!("{}:", f.part),
            f.rows,
            a.out_dir.join(&f.file).display(),
            f.sha256
        );
    }
    Ok(())
}

fn run_render(a: RenderArgs) -> Result<()> {
    let ds = load(&a.input, false)?;
    let template = load_template(&a.template)?;
    if let Some(i) = a.index {
        let row = ds
            .rows
            .get(i)
            .with_context(|| format!("--index {i}: the data has {} rows", ds.rows.len()))?;
        print!(
            "{}",
            prompt::render_training_prompt(&row.example, &template)?
        );
        return Ok(());
    }
    let mut out = String::new();
    for row in &ds.rows {
        let p = prompt::render_training_prompt(&row.example, &template)
            .with_context(|| format!("line {}", row.line))?;
        let obj =
            serde_json::json!({"prompt": p, "target": row.example.new_code, "line": row.line});
        out.push_str(&serde_json::to_string(&obj)?);
        out.push('\n');
    }
    match &a.output {
        Some(path) => recode_data::atomic::write_with(path, |w| {
            use std::io::Write;
            w.write_all(out.as_bytes())
        })?,
        None => print!("{out}"),
    }
    Ok(())
}

fn run_export(a: ExportArgs) -> Result<()> {
    let ds = load(&a.input, false)?;
    let src = ds
        .sources
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(&a.input));
    let format = match a.format {
        FormatArg::Verl => export::ExportFormat::Verl,
        FormatArg::TrlJsonl => export::ExportFormat::TrlJsonl,
    };
    let opts = export::ExportOptions {
        data_source: a.data_source,
        split: a.split,
        ..Default::default()
    };
    let n = export::export(&src, &ds.rows, &a.output, format, &opts)?;
    println!("wrote {n} rows to {}", a.output.display());
    Ok(())
}
