//! `recode eval run`: prompts → completions (cached) → sandboxed verdicts → pass@k.
//!
//! Files in the output directory:
//! - `generations.jsonl`: one [`GenRecord`] per (problem id, sample); appended after every
//!   batch, so an interrupted run resumes by id and re-scoring never regenerates.
//! - `results.jsonl`: one [`CandidateResult`] per (problem, sample): completion, extracted code,
//!   verdict with and without the update, error class, times.
//! - `summary.json`: [`Summary`] (pass@1, pass@5, upass@1, per package, per update type).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use recode_data::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::arena::{assemble_job, PreparedSet, VerdictMode};
use crate::executor::{ExecResult, ExecutorPool, Job};
use crate::generate::{GenError, GenParams, Generator};
use crate::humaneval::{humaneval_job, HumanEvalProblem};
use crate::passk::{example_scores, mean_scores, CandidateOutcome};
use crate::prompt::{extract_answer, humaneval_messages, ArenaPrompt, ExtractSource, PromptError};

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bad line in the generation cache.
    #[error("{}:{line}: {source}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The JSON error (names the column and field).
        #[source]
        source: serde_json::Error,
    },
    /// Rendering a prompt failed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// Generation failed (what was generated before is kept in the cache).
    #[error(transparent)]
    Generate(#[from] GenError),
    /// Generations are missing and no generator was given.
    #[error("{0} generations missing from the cache and no model/endpoint given")]
    Missing(usize),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A loaded benchmark.
pub enum Benchmark {
    /// CodeUpdateArena (filtered, INSTALL rules and split tests ready).
    Arena(PreparedSet),
    /// HumanEval problems.
    HumanEval(Vec<HumanEvalProblem>),
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Arena {
        update: usize,
        example: usize,
    },
    HumanEval(usize),
    /// A task of a benchmark scored outside [`Benchmark`] (GitChameleon).
    Other,
}

/// One problem to solve: its id, grouping keys and chat prompt.
#[derive(Debug, Clone)]
pub struct Task {
    /// `prog_syn_id` or HumanEval `task_id`.
    pub id: String,
    /// Package of the updated API (`humaneval` for HumanEval).
    pub package: String,
    /// Update type (empty for HumanEval).
    pub update_type: String,
    /// The chat prompt.
    pub messages: Vec<ChatMessage>,
    target: Target,
}

impl Task {
    /// A task of a benchmark scored outside [`Benchmark`] (it only generates through
    /// [`generate_missing`] and the cache).
    pub fn new(
        id: impl Into<String>,
        package: impl Into<String>,
        update_type: impl Into<String>,
        messages: Vec<ChatMessage>,
    ) -> Task {
        Task {
            id: id.into(),
            package: package.into(),
            update_type: update_type.into(),
            messages,
            target: Target::Other,
        }
    }
}

impl Benchmark {
    /// `codeupdatearena` or `humaneval`.
    pub fn name(&self) -> &'static str {
        match self {
            Benchmark::Arena(_) => "codeupdatearena",
            Benchmark::HumanEval(_) => "humaneval",
        }
    }

    /// The problems (the first `limit` when given), with prompts rendered by `prompt`
    /// (CodeUpdateArena) or [`humaneval_messages`].
    pub fn tasks(&self, prompt: &ArenaPrompt, limit: Option<usize>) -> Result<Vec<Task>, RunError> {
        let mut out = Vec::new();
        match self {
            Benchmark::Arena(set) => {
                for (ui, u) in set.updates.iter().enumerate() {
                    for (ei, ex) in u.record.examples.iter().enumerate() {
                        out.push(Task {
                            id: ex.prog_syn_id.clone(),
                            package: u.record.update.package.clone(),
                            update_type: u.record.update.update_type.clone(),
                            messages: prompt.messages(&u.record.update, ex)?,
                            target: Target::Arena {
                                update: ui,
                                example: ei,
                            },
                        });
                    }
                }
            }
            Benchmark::HumanEval(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    out.push(Task {
                        id: p.task_id.clone(),
                        package: "humaneval".into(),
                        update_type: String::new(),
                        messages: humaneval_messages(p),
                        target: Target::HumanEval(i),
                    });
                }
            }
        }
        if let Some(limit) = limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The jobs judging `code` for `task`: (with_update, job) per test piece; HumanEval has one,
    /// counted as "with update". Verdicts are decided where `mode` says.
    pub fn programs(&self, task: &Task, code: &str, mode: VerdictMode) -> Vec<(bool, Job)> {
        match (self, task.target) {
            (Benchmark::Arena(set), Target::Arena { update, example }) => {
                let u = &set.updates[update];
                let ex = &u.record.examples[example];
                let mut v = Vec::new();
                for with in [true, false] {
                    for piece in &u.pieces[example] {
                        let install = with.then_some(u.install.as_str());
                        v.push((
                            with,
                            assemble_job(
                                ex,
                                &u.record.update.implementation,
                                install,
                                code,
                                piece,
                                mode,
                            ),
                        ));
                    }
                }
                v
            }
            (Benchmark::HumanEval(ps), Target::HumanEval(i)) => {
                vec![(true, humaneval_job(&ps[i], code, mode))]
            }
            _ => Vec::new(),
        }
    }
}

/// One cached completion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenRecord {
    /// Problem id.
    pub id: String,
    /// Sample index (0..n).
    pub sample: usize,
    /// The model's text (after the assistant prefix when one was used).
    pub completion: String,
    /// Which generator wrote it.
    #[serde(default)]
    pub generator: String,
    /// Generation wall time attributed to this sample (batch time / samples), seconds.
    #[serde(default)]
    pub gen_secs: f64,
}

/// Reads the generation cache (absent file = empty). A torn last line (interrupted write) is
/// skipped with a warning; any other bad line is an error naming file and line.
pub fn load_generations(path: &Path) -> Result<HashMap<(String, usize), GenRecord>, RunError> {
    let mut out = HashMap::new();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(path)(e)),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io_err(path))?;
    let last = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<GenRecord>(line) {
            Ok(r) => {
                out.entry((r.id.clone(), r.sample)).or_insert(r);
            }
            Err(e) if i + 1 == last => {
                tracing::warn!("{}:{}: torn last line skipped ({e})", path.display(), i + 1)
            }
            Err(e) => {
                return Err(RunError::Cache {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source: e,
                })
            }
        }
    }
    Ok(out)
}

/// Number of (task, sample) pairs with no cached completion.
pub fn missing_generations(
    tasks: &[Task],
    n: usize,
    cache: &HashMap<(String, usize), GenRecord>,
) -> usize {
    tasks
        .iter()
        .map(|t| {
            (0..n)
                .filter(|s| !cache.contains_key(&(t.id.clone(), *s)))
                .count()
        })
        .sum()
}

/// Cuts a partial last line (an interrupted append) off `path`, so that new records start on
/// a line of their own; [`load_generations`] already ignores such a line.
fn drop_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()
}

/// Generates every missing completion and appends it to `cache_path` after each batch.
/// Returns the number of completions written. `progress(done, total)` follows the batches.
pub fn generate_missing(
    tasks: &[Task],
    generator: &dyn Generator,
    params: &GenParams,
    cache_path: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<usize, RunError> {
    let cache = load_generations(cache_path)?;
    let todo: Vec<&Task> = tasks
        .iter()
        .filter(|t| (0..params.n).any(|s| !cache.contains_key(&(t.id.clone(), s))))
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    drop_torn_tail(cache_path).map_err(io_err(cache_path))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cache_path)
        .map_err(io_err(cache_path))?;
    let describe = generator.describe();
    let mut written = 0;
    for (bi, batch) in todo.chunks(generator.batch_size().max(1)).enumerate() {
        let prompts: Vec<Vec<ChatMessage>> = batch.iter().map(|t| t.messages.clone()).collect();
        let p = GenParams {
            seed: params.seed.wrapping_add(bi as u64 * 1_000_003),
            ..params.clone()
        };
        let t0 = Instant::now();
        let outs = generator.generate(&prompts, &p)?;
        let per = t0.elapsed().as_secs_f64() / (batch.len() * params.n).max(1) as f64;
        let mut buf = String::new();
        for (task, samples) in batch.iter().zip(outs) {
            for (s, completion) in samples.into_iter().enumerate() {
                if cache.contains_key(&(task.id.clone(), s)) {
                    continue;
                }
                let rec = GenRecord {
                    id: task.id.clone(),
                    sample: s,
                    completion,
                    generator: describe.clone(),
                    gen_secs: per,
                };
                buf.push_str(&serde_json::to_string(&rec).unwrap_or_default());
                buf.push('\n');
                written += 1;
            }
        }
        file.write_all(buf.as_bytes())
            .and_then(|_| file.flush())
            .map_err(io_err(cache_path))?;
        progress(
            ((bi + 1) * generator.batch_size()).min(todo.len()),
            todo.len(),
        );
    }
    Ok(written)
}

/// Verdict of a candidate on all pieces, with or without the update.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Every piece passed.
    pub passed: bool,
    /// Pieces that passed.
    pub pieces_passed: usize,
    /// Pieces run.
    pub pieces: usize,
    /// Error class of the first failing piece (`passed` when none failed).
    pub error_class: String,
    /// Benchmark verdict text of the first failing piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

impl Verdict {
    fn from_results(results: &[&ExecResult]) -> Verdict {
        let first = results.iter().find(|r| !r.passed());
        Verdict {
            passed: first.is_none(),
            pieces_passed: results.iter().filter(|r| r.passed()).count(),
            pieces: results.len(),
            error_class: first.map_or_else(|| "passed".to_string(), |r| r.error_class()),
            first_failure: first.map(|r| r.verdict.clone()),
        }
    }
}

/// Per-candidate result line of `results.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateResult {
    /// Problem id.
    pub id: String,
    /// Sample index.
    pub sample: usize,
    /// Package of the updated API.
    pub package: String,
    /// Update type.
    pub update_type: String,
    /// The model's completion.
    pub completion: String,
    /// The code that was run.
    pub code: String,
    /// Where the code was found.
    pub extracted_from: ExtractSource,
    /// Verdict with the update installed (HumanEval: the verdict).
    pub with_update: Verdict,
    /// Verdict without the update (CodeUpdateArena only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_update: Option<Verdict>,
    /// Summed execution wall time of the candidate's programs, seconds.
    pub exec_secs: f64,
    /// Generation time attributed to the sample, seconds.
    pub gen_secs: f64,
}

/// Runs every cached candidate of `tasks` (n samples each) through `pool`.
pub fn score(
    bench: &Benchmark,
    tasks: &[Task],
    n: usize,
    cache: &HashMap<(String, usize), GenRecord>,
    pool: &ExecutorPool,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<CandidateResult>, RunError> {
    let missing = missing_generations(tasks, n, cache);
    if missing > 0 {
        return Err(RunError::Missing(missing));
    }
    struct Cand<'a> {
        task: &'a Task,
        rec: &'a GenRecord,
        code: String,
        source: ExtractSource,
        range: std::ops::Range<usize>,
        with: Vec<bool>,
    }
    let mut programs = Vec::new();
    let mut cands = Vec::new();
    for task in tasks {
        for s in 0..n {
            let rec = &cache[&(task.id.clone(), s)];
            let (code, source) = extract_answer(&rec.completion);
            let start = programs.len();
            let mut with = Vec::new();
            for (w, p) in bench.programs(task, &code, VerdictMode::Judged) {
                with.push(w);
                programs.push(p);
            }
            cands.push(Cand {
                task,
                rec,
                code,
                source,
                range: start..programs.len(),
                with,
            });
        }
    }
    let results = pool.run_jobs(&programs, progress);
    let arena = matches!(bench, Benchmark::Arena(_));
    Ok(cands
        .into_iter()
        .map(|c| {
            let rs = &results[c.range.clone()];
            let pick = |w: bool| -> Vec<&ExecResult> {
                rs.iter()
                    .zip(&c.with)
                    .filter(|(_, &x)| x == w)
                    .map(|(r, _)| r)
                    .collect()
            };
            CandidateResult {
                id: c.task.id.clone(),
                sample: c.rec.sample,
                package: c.task.package.clone(),
                update_type: c.task.update_type.clone(),
                completion: c.rec.completion.clone(),
                code: c.code,
                extracted_from: c.source,
                with_update: Verdict::from_results(&pick(true)),
                without_update: arena.then(|| Verdict::from_results(&pick(false))),
                exec_secs: rs.iter().map(|r| r.wall).sum(),
                gen_secs: c.rec.gen_secs,
            }
        })
        .collect())
}

/// Scores of a group of problems (×100). pass@k is `None` when k > n (the benchmark's
/// estimator would print 100 there).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupScores {
    /// Problems in the group.
    pub examples: usize,
    /// Mean pass@1.
    #[serde(rename = "pass@1")]
    pub pass_at_1: Option<f64>,
    /// Mean pass@5.
    #[serde(rename = "pass@5")]
    pub pass_at_5: Option<f64>,
    /// Mean UPass@1: passes with the update and fails without (CodeUpdateArena).
    #[serde(rename = "upass@1", default, skip_serializing_if = "Option::is_none")]
    pub upass_at_1: Option<f64>,
    /// Mean pass@1 without the update (old API behaviour; CodeUpdateArena).
    #[serde(
        rename = "pass_old@1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pass_old_at_1: Option<f64>,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// `codeupdatearena` or `humaneval`.
    pub bench: String,
    /// The generator's description (model or endpoint).
    pub generator: String,
    /// Samples per problem.
    pub n: usize,
    /// Overall scores.
    #[serde(flatten)]
    pub overall: GroupScores,
    /// Candidates judged.
    pub candidates: usize,
    /// Per package of the updated API.
    pub per_package: BTreeMap<String, GroupScores>,
    /// Per update type (CodeUpdateArena).
    pub per_update_type: BTreeMap<String, GroupScores>,
    /// Error classes of the candidates (with update).
    pub error_classes: BTreeMap<String, usize>,
    /// Where code was extracted from (`answer`, `benchmark`, `none`).
    pub extraction: BTreeMap<String, usize>,
    /// Generation settings.
    pub settings: serde_json::Value,
    /// Total execution time of all programs (summed over workers), seconds.
    pub exec_secs: f64,
}

fn group_scores(results: &[&CandidateResult], n: usize) -> GroupScores {
    let mut by_id: BTreeMap<&str, Vec<CandidateOutcome>> = BTreeMap::new();
    let arena = results.iter().any(|r| r.without_update.is_some());
    for r in results {
        let frac = r.with_update.pieces_passed as f64 / r.with_update.pieces.max(1) as f64;
        by_id.entry(&r.id).or_default().push(CandidateOutcome {
            with_update: r.with_update.passed,
            without_update: r.without_update.as_ref().is_some_and(|v| v.passed),
            fraction_with: frac,
        });
    }
    let at = |k: usize| {
        (k <= n).then(|| {
            let per: Vec<_> = by_id.values().map(|c| example_scores(c, k)).collect();
            mean_scores(&per)
        })
    };
    let s1 = at(1).flatten();
    let s5 = at(5).flatten();
    GroupScores {
        examples: by_id.len(),
        pass_at_1: s1.as_ref().map(|s| s.pass_new),
        pass_at_5: s5.as_ref().map(|s| s.pass_new),
        upass_at_1: s1.as_ref().filter(|_| arena).map(|s| s.upass),
        pass_old_at_1: s1.as_ref().filter(|_| arena).map(|s| s.pass_old),
    }
}

/// Aggregates candidate results into the summary.
pub fn summarize(
    bench: &str,
    generator: &str,
    n: usize,
    results: &[CandidateResult],
    settings: serde_json::Value,
) -> Summary {
    let all: Vec<&CandidateResult> = results.iter().collect();
    let mut per_package: BTreeMap<String, Vec<&CandidateResult>> = BTreeMap::new();
    let mut per_type: BTreeMap<String, Vec<&CandidateResult>> = BTreeMap::new();
    let mut error_classes = BTreeMap::new();
    let mut extraction = BTreeMap::new();
    for r in results {
        per_package.entry(r.package.clone()).or_default().push(r);
        if !r.update_type.is_empty() {
            per_type.entry(r.update_type.clone()).or_default().push(r);
        }
        *error_classes
            .entry(r.with_update.error_class.clone())
            .or_insert(0) += 1;
        let src = serde_json::to_value(r.extracted_from)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *extraction.entry(src).or_insert(0) += 1;
    }
    Summary {
        bench: bench.to_string(),
        generator: generator.to_string(),
        n,
        overall: group_scores(&all, n),
        candidates: results.len(),
        per_package: per_package
            .into_iter()
            .map(|(k, v)| (k, group_scores(&v, n)))
            .collect(),
        per_update_type: per_type
            .into_iter()
            .map(|(k, v)| (k, group_scores(&v, n)))
            .collect(),
        error_classes,
        extraction,
        settings,
        exec_secs: results.iter().map(|r| r.exec_secs).sum(),
    }
}

/// Writes `results.jsonl` and `summary.json` into `dir`.
pub fn write_outputs(
    dir: &Path,
    results: &[CandidateResult],
    summary: &Summary,
) -> Result<(), RunError> {
    let path = dir.join("results.jsonl");
    let mut buf = String::new();
    for r in results {
        buf.push_str(&serde_json::to_string(r).unwrap_or_default());
        buf.push('\n');
    }
    std::fs::write(&path, buf).map_err(io_err(&path))?;
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(summary).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
    Ok(())
}

/// Everything `recode eval run` does after loading: generate what is missing (when a
/// generator is given), score every candidate, write results and summary into `dir`.
#[allow(clippy::too_many_arguments)]
pub fn run_eval(
    bench: &Benchmark,
    tasks: &[Task],
    generator: Option<&dyn Generator>,
    params: &GenParams,
    pool: &ExecutorPool,
    dir: &Path,
    gen_progress: &dyn Fn(usize, usize),
    exec_progress: &(dyn Fn() + Sync),
) -> Result<Summary, RunError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let cache_path = dir.join("generations.jsonl");
    if let Some(g) = generator {
        let written = generate_missing(tasks, g, params, &cache_path, gen_progress)?;
        tracing::info!(
            "{written} new generations cached in {}",
            cache_path.display()
        );
    }
    let cache = load_generations(&cache_path)?;
    let describe = generator.map(|g| g.describe()).unwrap_or_else(|| {
        tasks
            .first()
            .and_then(|t| cache.get(&(t.id.clone(), 0)))
            .map(|r| r.generator.clone())
            .unwrap_or_default()
    });
    let results = score(bench, tasks, params.n, &cache, pool, exec_progress)?;
    let mut settings = serde_json::to_value(params).unwrap_or_default();
    // What the scored programs ran under: a summary must say when a run was not sandboxed.
    settings["sandbox"] = serde_json::json!({
        "protections": pool.protections(),
        "verdicts": "judged",
    });
    let summary = summarize(bench.name(), &describe, params.n, &results, settings);
    write_outputs(dir, &results, &summary)?;
    Ok(summary)
}
