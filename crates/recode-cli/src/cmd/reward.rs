//! `recode reward`: score completions with ReCode's format + EM*/ES* rewards (`recode reward
//! bench` is `recode bench reward`).

use anyhow::{bail, Context, Result};
use recode_reward::{EditScore, Mode, RewardBreakdown, RewardKind, ScoredEdit};
use recode_rl::task::Component;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Subcommands of `recode reward`.
#[derive(clap::Subcommand)]
pub enum RewardCommand {
    /// Score `{completion, target}` rows (or `{solution_str, ground_truth}`) or one pair;
    /// rows that also give `old_code` get the edit score (`edit_es_star`, `unchanged`) too.
    Score(ScoreArgs),
    /// Same as `recode bench reward`: recode vs Python implementations of the reward.
    Bench(crate::cmd::bench_args::BenchRewardArgs),
}

/// Arguments of `recode reward score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// JSONL file with one `{completion, target}` or `{solution_str, ground_truth}` per line,
    /// optionally with `old_code` (the code before the update).
    #[arg(long, conflicts_with_all = ["completion", "target", "old"])]
    pub input: Option<PathBuf>,
    /// One completion (the text the model wrote after `<think>`).
    #[arg(long, requires = "target")]
    pub completion: Option<String>,
    /// The reference new code for `--completion`.
    #[arg(long, requires = "completion")]
    pub target: Option<String>,
    /// The old code for `--completion`: adds its edit score (`edit_es_star`: ES* of the
    /// answer's change against the reference's change; `unchanged`: the answer is a copy).
    #[arg(long, requires = "completion")]
    pub old: Option<String>,
    /// Reward definition: `paper` (published, quirks included) or `fixed`.
    #[arg(long, default_value = "paper")]
    pub mode: Mode,
    /// Components summed into `total` (format, em_star, es_star, em, es; edit_es_star when
    /// every row gives its old code).
    #[arg(long, default_value = "format,es_star")]
    pub reward: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write per-row JSON here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs a `recode reward` subcommand.
pub fn run(cmd: RewardCommand) -> Result<()> {
    match cmd {
        RewardCommand::Score(args) => score_cmd(args),
        RewardCommand::Bench(args) => crate::cmd::bench_args::run_reward(args),
    }
}

/// One input row, with the fields named either way.
struct Pair {
    completion: String,
    target: String,
    /// The code before the update, when the row gives it (`old_code`).
    old: Option<String>,
    /// Line of the input file the pair came from (0 for a pair given by flags).
    line: usize,
}

/// The string field under the first of `names` the row has (None when it has none).
fn optional_field(
    row: &serde_json::Value,
    names: &[&str],
    path: &Path,
    line: usize,
) -> Result<Option<String>> {
    for name in names {
        if let Some(v) = row.get(name) {
            return match v.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => bail!("{}:{line}: field {name:?} must be a string", path.display()),
            };
        }
    }
    Ok(None)
}

fn field(row: &serde_json::Value, names: [&str; 2], path: &Path, line: usize) -> Result<String> {
    if let Some(v) = optional_field(row, &names, path, line)? {
        return Ok(v);
    }
    bail!(
        "{}:{line}: missing field {:?} (or {:?})",
        path.display(),
        names[0],
        names[1]
    )
}

/// Reads `{completion, target}` / `{solution_str, ground_truth}` JSONL rows.
fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let line =
            line.with_context(|| format!("{}:{line_no}: unreadable line", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{line_no}: invalid JSON", path.display()))?;
        pairs.push(Pair {
            completion: field(&row, ["completion", "solution_str"], path, line_no)?,
            target: field(&row, ["target", "ground_truth"], path, line_no)?,
            old: optional_field(&row, &["old_code"], path, line_no)?,
            line: line_no,
        });
    }
    Ok(pairs)
}

/// The `--reward` list: library components, and whether `edit_es_star` is summed too.
fn parse_reward(list: &str) -> Result<(Vec<RewardKind>, bool)> {
    let mut kinds = Vec::new();
    let mut edit = false;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == Component::EditEsStar.name() {
            edit = true;
        } else {
            kinds.push(name.parse::<RewardKind>()?);
        }
    }
    if kinds.is_empty() && !edit {
        bail!("--reward must name at least one component");
    }
    Ok((kinds, edit))
}

fn row_json(
    index: usize,
    r: &RewardBreakdown,
    edit: Option<&EditScore>,
    kinds: &[RewardKind],
    sum_edit: bool,
) -> serde_json::Value {
    let mut total = r.total_of(kinds);
    if sum_edit {
        total += edit.map_or(0.0, |e| e.edit_es_star);
    }
    let mut row = serde_json::json!({
        "index": index,
        "format": r.format,
        "em_star": r.em_star,
        "es_star": r.es_star,
        "similarity": r.similarity,
        "has_code_block": r.has_code_block,
        "syntax_ok": r.syntax_ok,
        "exact_match": r.exact_match,
        "total": total,
    });
    if let Some(e) = edit {
        row["edit_es_star"] = e.edit_es_star.into();
        row["edit_similarity"] = e.similarity.into();
        row["unchanged"] = e.unchanged.into();
    }
    row
}

fn score_cmd(args: ScoreArgs) -> Result<()> {
    let (kinds, sum_edit) = parse_reward(&args.reward)?;
    let pairs = match (&args.input, &args.completion, &args.target) {
        (Some(path), _, _) => read_pairs(path)?,
        (None, Some(c), Some(t)) => vec![Pair {
            completion: c.clone(),
            target: t.clone(),
            old: args.old.clone(),
            line: 0,
        }],
        _ => bail!("give --input FILE.jsonl, or --completion TEXT --target TEXT"),
    };
    if sum_edit {
        if let Some(p) = pairs.iter().find(|p| p.old.is_none()) {
            match &args.input {
                Some(path) => bail!(
                    "{}:{}: missing field \"old_code\", which --reward edit_es_star needs",
                    path.display(),
                    p.line
                ),
                None => bail!("--reward edit_es_star needs --old CODE"),
            }
        }
    }
    let start = Instant::now();
    let scored = score_with_progress(&pairs, args.mode, args.threads)?;
    let elapsed = start.elapsed();
    let (results, edits): (Vec<RewardBreakdown>, Vec<Option<EditScore>>) =
        scored.into_iter().map(|s| (s.reward, s.edit)).unzip();
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for (i, (r, e)) in results.iter().zip(&edits).enumerate() {
        writeln!(out, "{}", row_json(i, r, e.as_ref(), &kinds, sum_edit))?;
    }
    out.flush()?;
    if args.input.is_some() {
        print_summary(&results, &kinds, elapsed);
        print_edit_summary(&edits);
    }
    Ok(())
}

/// Scores in chunks so a progress bar can advance on large inputs; rows that give their old
/// code get their edit score in the same pass.
fn score_with_progress(
    pairs: &[Pair],
    mode: Mode,
    threads: Option<usize>,
) -> Result<Vec<ScoredEdit>> {
    let bar = indicatif::ProgressBar::new(pairs.len() as u64);
    if pairs.len() < 10_000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut results = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(4096) {
        let completions: Vec<&str> = chunk.iter().map(|p| p.completion.as_str()).collect();
        let targets: Vec<&str> = chunk.iter().map(|p| p.target.as_str()).collect();
        let old_codes: Vec<Option<&str>> = chunk.iter().map(|p| p.old.as_deref()).collect();
        results.extend(recode_reward::score_edits_with_threads(
            &completions,
            &targets,
            &old_codes,
            mode,
            threads,
        )?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(results)
}

fn print_summary(results: &[RewardBreakdown], kinds: &[RewardKind], elapsed: std::time::Duration) {
    let n = results.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RewardBreakdown) -> f64| results.iter().map(f).sum::<f64>() / n;
    let frac =
        |f: &dyn Fn(&RewardBreakdown) -> bool| results.iter().filter(|r| f(r)).count() as f64 / n;
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    eprintln!(
        "scored {} rows in {:.3}s ({:.0} rows/s)",
        results.len(),
        elapsed.as_secs_f64(),
        results.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    eprintln!(
        "mean total ({}) {:.4} | format {:.4} em_star {:.4} es_star {:.4} similarity {:.4}",
        names.join("+"),
        mean(&|r| r.total_of(kinds)),
        mean(&|r| r.format),
        mean(&|r| r.em_star),
        mean(&|r| r.es_star),
        mean(&|r| r.similarity)
    );
    eprintln!(
        "format ok {:.1}% | code block {:.1}% | syntax ok {:.1}% | exact match {:.1}%",
        100.0 * frac(&|r| r.format > 0.0),
        100.0 * frac(&|r| r.has_code_block),
        100.0 * frac(&|r| r.syntax_ok),
        100.0 * frac(&|r| r.exact_match)
    );
}

/// Mean edit score and copy rate over the rows that gave their old code.
fn print_edit_summary(edits: &[Option<EditScore>]) {
    let given: Vec<&EditScore> = edits.iter().flatten().collect();
    if given.is_empty() {
        return;
    }
    let n = given.len() as f64;
    eprintln!(
        "rows with old_code {} | edit_es_star {:.4} | unchanged (copy of the old code) {:.1}%",
        given.len(),
        given.iter().map(|e| e.edit_es_star).sum::<f64>() / n,
        100.0 * given.iter().filter(|e| e.unchanged).count() as f64 / n
    );
}
