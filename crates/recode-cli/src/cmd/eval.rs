//! `recode eval`: the managed benchmark virtualenv (and the HumanEval data file), reference
//! checks on CodeUpdateArena with the sandboxed executor pool, model evaluation (`run`: local
//! model or OpenAI-compatible endpoint, cached generations, pass@k).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use recode_eval::arena::{load_arena, prepare, SplitMode, VerdictMode};
use recode_eval::checkrefs::{check_refs, reference_programs, CheckRefsReport};
use recode_eval::executor::ExecutorPool;
use recode_eval::humaneval::{self, fetch_humaneval, load_humaneval};
use recode_eval::prompt::{ArenaPrompt, ARENA_USER_TEMPLATE};
use recode_eval::run::{run_eval, Benchmark};
use recode_eval::setup::{default_venv_dir, ready_python, setup_venv};

pub use crate::cmd::eval_args::EvalCommand;
use crate::cmd::eval_args::{log_protections, plan_generation, CheckRefsArgs, RunArgs, SetupArgs};

/// Runs a `recode eval` subcommand.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Setup(a) => run_setup(a),
        EvalCommand::CheckRefs(a) => run_check_refs(a),
        EvalCommand::Run(a) => run_eval_cmd(a),
    }
}

fn run_setup(a: SetupArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::setup(&a);
    }
    let venv = a.venv.unwrap_or_else(default_venv_dir);
    let t = Instant::now();
    let report = setup_venv(&venv, &a.base_python, a.force)?;
    if report.installed {
        eprint!("{}", report.check);
        eprintln!(
            "eval virtualenv ready in {:.0} s: {}",
            t.elapsed().as_secs_f64(),
            venv.display()
        );
    } else {
        eprintln!("eval virtualenv up to date: {}", venv.display());
    }
    let python = ready_python(&venv)?;
    let he = fetch_humaneval(&python, &humaneval::default_cache_dir())
        .context("fetching the HumanEval data file")?;
    eprintln!("HumanEval data: {}", he.display());
    println!("export RECODE_EVAL_VENV={}", venv.display());
    Ok(())
}

fn progress_bar(len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} programs {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// The examples of a CodeUpdateArena file, or its first `limit` in file order (quick runs),
/// prepared paper-exactly or with fragmented tests glued (`fixed`).
fn load_prepared(
    data: &Path,
    fixed: bool,
    limit: Option<usize>,
) -> anyhow::Result<recode_eval::arena::PreparedSet> {
    let mut records = load_arena(data)?;
    if let Some(mut left) = limit {
        for r in records.iter_mut() {
            r.examples.truncate(left);
            left -= r.examples.len();
        }
    }
    records.retain(|r| !r.examples.is_empty());
    let mode = if fixed {
        SplitMode::GlueFragments
    } else {
        SplitMode::Paper
    };
    Ok(prepare(records, mode))
}

fn run_check_refs(a: CheckRefsArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::check(&a);
    }
    anyhow::ensure!(
        a.bench == "codeupdatearena",
        "check-refs supports --bench codeupdatearena or gitchameleon, got `{}`",
        a.bench
    );
    let set = load_prepared(&a.data, a.fixed_fragments, a.limit)?;
    for (id, line, why) in &set.rejected {
        tracing::warn!("{}:{line}: {id} rejected: {why}", a.data.display());
    }
    let cfg = a.exec.config()?;
    let pool = ExecutorPool::start(cfg).context("starting the executor pool")?;
    let mode = if a.judged {
        VerdictMode::Judged
    } else {
        VerdictMode::InProcess
    };
    let (refs, _) = reference_programs(&set, mode);
    let pb = progress_bar(refs.len());
    let (report, results) = check_refs(&set, &pool, mode, &|| pb.inc(1));
    pb.finish_and_clear();
    if let Some(out) = &a.out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        for (r, res) in refs.iter().zip(&results) {
            let ex = &set.updates[r.update].record.examples[r.example];
            let line = serde_json::json!({
                "id": ex.prog_syn_id, "piece": r.piece, "with_update": r.with_update,
                "verdict": res.verdict, "error_class": res.error_class(), "wall": res.wall,
            });
            writeln!(f, "{line}")?;
        }
    }
    print_report(&report, a.json);
    Ok(())
}

fn print_report(report: &CheckRefsReport, json: bool) {
    println!(
        "{} examples, {} programs in {:.1} s ({:.1} programs/s)",
        report.total, report.programs, report.seconds, report.programs_per_sec
    );
    println!(
        "pass with update: {}/{}   fail without update: {}/{}",
        report.pass_with_update, report.total, report.fail_without_update, report.total
    );
    for (pkg, c) in &report.per_package {
        println!(
            "  {pkg:<10} {:>3} examples  pass with {:>3}  fail without {:>3}",
            c.total, c.pass_with_update, c.fail_without_update
        );
    }
    for f in &report.failures {
        let pieces: Vec<String> = f
            .pieces
            .iter()
            .map(|p| format!("test {} {} ({})", p.piece, p.error_class, p.verdict))
            .collect();
        println!("  FAIL {} [{}] {}", f.id, f.kind, pieces.join("; "));
    }
    for (id, why) in &report.rejected {
        println!("  REJECTED {id}: {why}");
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
}

fn load_benchmark(a: &RunArgs, python: &Path) -> anyhow::Result<Benchmark> {
    match a.bench.as_str() {
        "codeupdatearena" => {
            let data = a
                .data
                .as_ref()
                .context("--bench codeupdatearena needs --data FILE.jsonl")?;
            let set = load_prepared(data, a.fixed_fragments, None)?;
            for (id, line, why) in &set.rejected {
                tracing::warn!("{}:{line}: {id} rejected: {why}", data.display());
            }
            Ok(Benchmark::Arena(set))
        }
        "humaneval" => {
            let path = match &a.data {
                Some(p) => p.clone(),
                None => fetch_humaneval(python, &humaneval::default_cache_dir())?,
            };
            Ok(Benchmark::HumanEval(load_humaneval(&path)?))
        }
        other => anyhow::bail!("unknown --bench `{other}` (codeupdatearena or humaneval)"),
    }
}

fn run_eval_cmd(a: RunArgs) -> anyhow::Result<()> {
    if a.bench == "gitchameleon" {
        return crate::cmd::gitchameleon::run(&a);
    }
    let cfg = a.exec.config()?;
    let bench = load_benchmark(&a, &cfg.python)?;
    let template = match &a.user_template {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => ARENA_USER_TEMPLATE.to_string(),
    };
    let prompt = ArenaPrompt::new(&template, !a.no_prefix && a.endpoint.is_none())?;
    let tasks = bench.tasks(&prompt, a.limit)?;
    let (params, generator) = plan_generation(&a, &tasks)?;
    let gen_bar = ProgressBar::new(tasks.len() as u64);
    gen_bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} problems generated, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if generator.is_none() {
        gen_bar.finish_and_clear();
    }
    let pool = ExecutorPool::start(cfg).context("starting the executor pool")?;
    log_protections(&pool);
    let exec_bar = ProgressBar::no_length();
    exec_bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} programs run {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let summary = run_eval(
        &bench,
        &tasks,
        generator.as_deref(),
        &params,
        &pool,
        &a.output,
        &|done, total| {
            gen_bar.set_length(total as u64);
            gen_bar.set_position(done as u64);
            if done == total {
                gen_bar.finish_and_clear();
            }
        },
        &|| exec_bar.inc(1),
    )?;
    exec_bar.finish_and_clear();
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
    println!(
        "{} {} problems x {}: pass@1 {}  pass@5 {}  upass@1 {}",
        summary.bench,
        summary.overall.examples,
        summary.n,
        pct(summary.overall.pass_at_1),
        pct(summary.overall.pass_at_5),
        pct(summary.overall.upass_at_1)
    );
    for (pkg, g) in &summary.per_package {
        println!(
            "  {pkg:<10} {:>4} problems  pass@1 {:>5}  pass@5 {:>5}  upass@1 {:>5}",
            g.examples,
            pct(g.pass_at_1),
            pct(g.pass_at_5),
            pct(g.upass_at_1)
        );
    }
    println!("summary: {}", a.output.join("summary.json").display());
    Ok(())
}
