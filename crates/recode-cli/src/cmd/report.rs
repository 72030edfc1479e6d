//! `recode report`: self-contained HTML pages with inline SVG charts (the `recode-report`
//! crate draws them; this module parses the arguments and writes the files).
//!
//! - `recode report train RUN_DIR` (shorthand `recode report RUN_DIR`): the curves in
//!   `metrics.jsonl` of a `recode train` or `recode sft` run.
//! - `recode report runs A B …`: several training runs overlaid.
//! - `recode report eval DIR` and `recode report compare A B`: evaluation summaries of
//!   `recode eval run`.
//! - `recode report results DIR -o docs/results.md`: the learning run's results page
//!   (Markdown) from the artifacts `scripts/learning-stages.sh` commits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

/// Subcommands of `recode report`.
#[derive(Subcommand)]
#[command(
    after_help = "Shorthand: `recode report RUN_DIR [-o OUT.html]` is `recode report \
                        train RUN_DIR [-o OUT.html]`."
)]
pub enum ReportCommand {
    /// Training curves of a `recode train` / `recode sft` run directory (metrics.jsonl).
    Train(TrainReportArgs),
    /// One evaluation result of `recode eval run`.
    Eval(EvalReportArgs),
    /// Compare evaluation results (e.g. base vs trained); the first is the baseline.
    Compare(CompareArgs),
    /// Overlay several training runs (e.g. SFT, then GRPO and DAPO from it): validation ES*,
    /// exact match and format rate per step, and the rollout reward, one line per run; each
    /// run's last validation is compared prompt by prompt with the first run's (paired
    /// bootstrap interval of ΔES*, McNemar test of exact match), also printed on stdout.
    Runs(RunsArgs),
    /// The learning run's results page (Markdown) from the small artifacts
    /// `scripts/learning-stages.sh` commits (split.json, test/*.jsonl, arena/*/results.jsonl,
    /// stages/*.json): the test-split table with paired bootstrap intervals against SFT and
    /// against copying the old code, McNemar for exact match, CodeUpdateArena pass@1, the split
    /// hashes, commands and wall times. Missing stages show as "not run yet".
    Results(ResultsArgs),
    /// `recode report RUN_DIR …`: shorthand for `recode report train RUN_DIR …`.
    #[command(external_subcommand)]
    RunDir(Vec<OsString>),
}

/// Arguments of `recode report train`.
#[derive(Parser)]
#[command(name = "recode report train")]
pub struct TrainReportArgs {
    /// Run directory holding metrics.jsonl (and validation_start.json when validation ran).
    pub run_dir: PathBuf,
    /// Output HTML file [default: RUN_DIR/report.html].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `recode report eval`.
#[derive(Args)]
pub struct EvalReportArgs {
    /// `recode eval run` output directory, or its summary.json.
    pub result: PathBuf,
    /// Label of the run [default: the directory name].
    #[arg(long)]
    pub label: Option<String>,
    /// Output HTML file [default: report.html next to summary.json].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Arguments of `recode report compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// Two or more `recode eval run` output directories or summary.json files; the first is
    /// the baseline the others' differences refer to.
    #[arg(required = true, num_args = 2..)]
    pub results: Vec<PathBuf>,
    /// Comma-separated labels, one per result [default: the shortest path suffixes that
    /// tell the directories apart].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output HTML file.
    #[arg(short, long, default_value = "compare.html")]
    pub output: PathBuf,
}

/// Arguments of `recode report runs`.
#[derive(Args)]
pub struct RunsArgs {
    /// Run directories of `recode train` / `recode sft` (metrics.jsonl, validation_start.json).
    #[arg(required = true, num_args = 1..)]
    pub run_dirs: Vec<PathBuf>,
    /// Comma-separated labels, one per run [default: the shortest path suffixes that tell
    /// the directories apart].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output HTML file.
    #[arg(short, long, default_value = "runs.html")]
    pub output: PathBuf,
}

/// Arguments of `recode report results`.
#[derive(Args)]
pub struct ResultsArgs {
    /// Directory of the committed artifacts (e.g. results/learning).
    pub dir: PathBuf,
    /// Output Markdown file.
    #[arg(short, long, default_value = "docs/results.md")]
    pub output: PathBuf,
}

/// Runs a `recode report` subcommand.
pub fn run(cmd: ReportCommand) -> anyhow::Result<()> {
    match cmd {
        ReportCommand::Train(a) => run_train(&a),
        ReportCommand::Eval(a) => run_eval(&a),
        ReportCommand::Compare(a) => write_html(
            &a.output,
            &recode_report::compare_report(&a.results, &a.labels)?,
        ),
        ReportCommand::Runs(a) => run_runs(&a),
        ReportCommand::Results(a) => {
            if !a.dir.is_dir() {
                bail!("{}: no such results directory", a.dir.display());
            }
            write_html(&a.output, &recode_report::results_markdown(&a.dir)?)
        }
        ReportCommand::RunDir(args) => {
            let argv = std::iter::once(OsString::from("recode report")).chain(args);
            run_train(&TrainReportArgs::try_parse_from(argv).unwrap_or_else(|e| e.exit()))
        }
    }
}

/// Writes a page (HTML or Markdown) atomically and prints its path.
fn write_html(path: &Path, html: &str) -> anyhow::Result<()> {
    recode_data::atomic::write_atomic(path, html.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}

fn run_train(a: &TrainReportArgs) -> anyhow::Result<()> {
    if !a.run_dir.is_dir() {
        bail!(
            "{}: no such run directory (subcommands: train, runs, eval, compare)",
            a.run_dir.display()
        );
    }
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.run_dir.join("report.html"));
    write_html(&out, &recode_report::train_report_html(&a.run_dir)?)
}

fn run_eval(a: &EvalReportArgs) -> anyhow::Result<()> {
    let page = recode_report::eval_report(&a.result, a.label.as_deref())?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| page.summary_file.with_file_name("report.html"));
    write_html(&out, &page.html)
}

fn run_runs(a: &RunsArgs) -> anyhow::Result<()> {
    let report = recode_report::runs_report(&a.run_dirs, &a.labels)?;
    for line in &report.lines {
        println!("{line}");
    }
    write_html(
        &a.output,
        &recode_report::render_training_report(&report.page)?,
    )
}
