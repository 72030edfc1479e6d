//! `recode eval setup|check-refs|run --bench gitchameleon`: argument handling and printing;
//! the benchmark's logic is `recode_eval::gitchameleon`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use recode_eval::gitchameleon::check::{check_refs, CheckReport, Scorer};
use recode_eval::gitchameleon::run::{run_eval, tasks, GcSummary};
use recode_eval::gitchameleon::setup::{
    dir_bytes, ensure_all, estimated_bytes, lookup, EnvManager, EnvState, Interpreters,
};
use recode_eval::gitchameleon::{env_specs, Dataset, EnvSpec, LibrarySelection, Problem};

use super::common::cores;
use super::eval_args::{log_protections, plan_generation, CheckRefsArgs, RunArgs, SetupArgs};

/// The data directory: `--data`, else `$RECODE_SHARED/data/gitchameleon`, else
/// `../shared/data/gitchameleon`.
fn data_dir(data: Option<&Path>) -> PathBuf {
    if let Some(d) = data {
        return d.to_path_buf();
    }
    std::env::var_os("RECODE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
        .join("data/gitchameleon")
}

/// The dataset and the problems `--library` selects.
fn load(data: Option<&Path>, library: Option<&str>) -> anyhow::Result<(Dataset, Vec<Problem>)> {
    let dir = data_dir(data);
    let ds = Dataset::load(&dir)
        .with_context(|| format!("loading GitChameleon data from {}", dir.display()))?;
    let sel = LibrarySelection::parse(library.unwrap_or(""))?;
    let chosen: Vec<Problem> = sel.select(&ds.problems)?.into_iter().cloned().collect();
    Ok((ds, chosen))
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}} eta {{eta}} {{msg}}");
    pb.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Free bytes on the file system holding `path` (or its nearest existing ancestor).
fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `statvfs` is a plain C struct of integers, for which all-zero bytes are a valid
    // value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string that outlives the call; statvfs only writes into
    // `st`, which we own and pass by a unique pointer.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// System libraries some environments need at run time, checked by name in the linker cache.
fn missing_system_libraries(envs: &[EnvSpec]) -> Vec<String> {
    let cache = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let needs = |names: &[&str]| {
        envs.iter().any(|e| {
            names.iter().any(|n| {
                e.library == *n
                    || e.requirements
                        .iter()
                        .any(|r| r.to_lowercase().starts_with(n))
            })
        })
    };
    let mut out = Vec::new();
    if needs(&["librosa", "soundfile"]) && !cache.contains("libsndfile.so") {
        out.push("libsndfile (librosa/soundfile): apt-get install libsndfile1".to_string());
    }
    if needs(&["geopandas", "rtree"]) && !cache.contains("libspatialindex") {
        out.push("libspatialindex (rtree/geopandas): apt-get install libspatialindex-dev".into());
    }
    out
}

/// One line per environment: key, pin, Python, problems, built/cached/FAILED, time, size.
fn env_line(s: &EnvState) -> String {
    let note = s
        .python_note()
        .map(|n| format!(" [{n}]"))
        .unwrap_or_default();
    let head = format!(
        "  {} {:<28} py{:<5} {:>3} problems",
        s.env.key,
        s.env.pinned(),
        s.env.python_version,
        s.env.problems.len()
    );
    match &s.venv {
        Ok(v) => {
            let built = if v.reused { "cached" } else { "built" };
            let mut line = format!(
                "{head}  {built} {:>5.1} s  {:>6.0} MB{note}",
                v.build_secs,
                dir_bytes(&v.dir) as f64 / 1e6
            );
            for (req, why) in &v.failed_after {
                let last = why.lines().last().unwrap_or_default();
                line.push_str(&format!(
                    "\n      pin {req} failed (the harness ignores this too): {last}"
                ));
            }
            line
        }
        Err(f) if f.class == "not_built" => format!("{head}  not built{note}"),
        Err(f) => format!("{head}  FAILED ({}){note}", f.class),
    }
}

/// An environment's entry in `setup --json`.
fn env_json(s: &EnvState) -> serde_json::Value {
    let mut v = serde_json::json!({
        "key": s.env.key,
        "library": s.env.pinned(),
        "python_version": s.env.python_version,
        "python": s.python,
        "problems": s.env.problems,
    });
    match &s.venv {
        Ok(venv) => {
            v["dir"] = serde_json::json!(venv.dir);
            v["build_secs"] = serde_json::json!(venv.build_secs);
            v["bytes"] = serde_json::json!(dir_bytes(&venv.dir));
            v["failed_pins"] = serde_json::json!(venv.failed_after);
        }
        Err(f) => v["failure"] = serde_json::json!(f),
    }
    v
}

/// `recode eval setup --bench gitchameleon`.
pub fn setup(a: &SetupArgs) -> anyhow::Result<()> {
    let (_, problems) = load(a.data.as_deref(), a.library.as_deref())?;
    let envs = env_specs(&problems);
    let mgr = EnvManager::from_env();
    let interps = Interpreters::default();
    let known: Vec<EnvState> = envs.iter().map(|e| lookup(&mgr, &interps, e)).collect();
    if a.status {
        for s in &known {
            eprintln!("{}", env_line(s));
        }
        let ready = known.iter().filter(|s| s.venv.is_ok()).count();
        eprintln!("{ready} of {} environments built", known.len());
        if a.json {
            let envs: Vec<serde_json::Value> = known.iter().map(env_json).collect();
            println!("{}", serde_json::json!({ "environments": envs }));
        }
        return Ok(());
    }
    let todo: Vec<&EnvSpec> = known
        .iter()
        .filter(|s| s.venv.is_err())
        .map(|s| &s.env)
        .collect();
    let estimate: u64 = todo.iter().map(|e| estimated_bytes(e)).sum();
    let free = free_bytes(mgr.root());
    eprintln!(
        "{} problems, {} environments: {} cached, {} to build (estimated {:.1} GiB with their \
         wheels; {} free under {})",
        problems.len(),
        envs.len(),
        envs.len() - todo.len(),
        todo.len(),
        gib(estimate),
        free.map_or("?".to_string(), |f| format!("{:.1} GiB", gib(f))),
        mgr.root().display()
    );
    if let Some(f) = free {
        anyhow::ensure!(
            estimate < f || a.force,
            "the build needs about {:.1} GiB and {:.1} GiB are free: select fewer with --library, \
             free space, or pass --force",
            gib(estimate),
            gib(f)
        );
    }
    for lib in missing_system_libraries(&envs) {
        eprintln!("warning: system library missing, its problems will be env_incomplete: {lib}");
    }
    let jobs = a.jobs.unwrap_or_else(cores);
    let t = Instant::now();
    let pb = bar(envs.len(), "environments");
    let states = ensure_all(&mgr, &envs, jobs, &|s: &EnvState| {
        // Printed as each finishes, also when the bar is hidden (no terminal).
        pb.suspend(|| eprintln!("{}", env_line(s)));
        pb.inc(1);
    });
    pb.finish_and_clear();
    let failed: Vec<&EnvState> = states.iter().filter(|s| s.venv.is_err()).collect();
    if a.json {
        let envs: Vec<serde_json::Value> = states.iter().map(env_json).collect();
        println!("{}", serde_json::json!({ "environments": envs }));
    }
    eprintln!(
        "{} of {} environments ready in {:.0} s; cache {}",
        states.len() - failed.len(),
        states.len(),
        t.elapsed().as_secs_f64(),
        mgr.root().display()
    );
    if failed.is_empty() {
        return Ok(());
    }
    let mut classes: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &failed {
        if let Err(f) = &s.venv {
            *classes.entry(f.class.as_str()).or_default() += 1;
        }
    }
    let by_class: Vec<String> = classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let mut msg = format!(
        "{} environment(s) could not be built ({}):",
        failed.len(),
        by_class.join(", ")
    );
    for s in failed {
        if let Err(f) = &s.venv {
            msg.push_str(&format!(
                "\n- {} ({}): {}",
                s.env.pinned(),
                f.class,
                f.detail
            ));
        }
    }
    anyhow::bail!(msg)
}

fn states(problems: &[Problem]) -> Vec<EnvState> {
    let mgr = EnvManager::from_env();
    let interps = Interpreters::default();
    env_specs(problems)
        .iter()
        .map(|e| lookup(&mgr, &interps, e))
        .collect()
}

/// `recode eval check-refs --bench gitchameleon`.
pub fn check(a: &CheckRefsArgs) -> anyhow::Result<()> {
    let (ds, problems) = load(Some(&a.data), a.library.as_deref())?;
    let truth = ds.ground_truth()?;
    let scorer = Scorer::new(&ds, states(&problems), &a.exec.pool_settings()?)
        .context("starting the sandbox pool")?;
    let ids: Vec<u64> = problems.iter().map(|p| p.id).collect();
    let pb = bar(ids.len() * 2, "runs");
    let (report, outcomes) = check_refs(&scorer, &ds, &truth, &ids, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if let Some(out) = &a.out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        for (id, o) in ids.iter().zip(&outcomes) {
            writeln!(
                f,
                "{}",
                serde_json::json!({"id": id, "hidden": o.hidden, "visible": o.visible})
            )?;
        }
    }
    print_check(&report, a.json);
    Ok(())
}

fn print_check(r: &CheckReport, json: bool) {
    println!(
        "{} problems in {:.1} s: ground truth passing {}/{}, failing {}, env_incomplete {}; \
         visible runs passing {} (harness rule: {})",
        r.total,
        r.seconds,
        r.passed,
        r.total,
        r.failed,
        r.env_incomplete,
        r.visible_passed,
        r.visible_passed_harness
    );
    for (v, c) in &r.per_version {
        println!(
            "  {v:<28} {:>3} problems  passed {:>3}  failed {:>3}  env_incomplete {:>3}",
            c.total, c.passed, c.failed, c.env_incomplete
        );
    }
    for f in &r.failures {
        let reason = f.reason.lines().last().unwrap_or_default();
        println!(
            "  FAIL {} [{}] {}: {reason}",
            f.id, f.library, f.error_class
        );
    }
    for f in &r.incomplete {
        println!("  ENV_INCOMPLETE {} [{}]: {}", f.id, f.library, f.reason);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
}

/// `recode eval run --bench gitchameleon`.
pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    let (ds, problems) = load(a.data.as_deref(), a.library.as_deref())?;
    let mut chosen: Vec<&Problem> = problems.iter().collect();
    if let Some(limit) = a.limit {
        chosen.truncate(limit);
    }
    let tasks = tasks(&chosen, a.prompt_docs);
    let (params, generator) = plan_generation(a, &tasks)?;
    let owned: Vec<Problem> = chosen.iter().map(|p| (*p).clone()).collect();
    let scorer = Scorer::new(&ds, states(&owned), &a.exec.pool_settings()?)
        .context("starting the sandbox pool")?;
    if let Some(pool) = scorer.pool() {
        log_protections(pool);
    }
    let gen_bar = bar(tasks.len(), "problems generated");
    let exec_bar = bar(tasks.len() * a.n * 2, "runs");
    let summary = run_eval(
        &chosen,
        &tasks,
        generator.as_deref(),
        &params,
        &scorer,
        &a.output,
        &|done, total| {
            gen_bar.set_length(total as u64);
            gen_bar.set_position(done as u64);
        },
        &|| exec_bar.inc(1),
    )?;
    gen_bar.finish_and_clear();
    exec_bar.finish_and_clear();
    print_summary(&summary, &a.output);
    Ok(())
}

fn print_summary(s: &GcSummary, out: &Path) {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
    let ks: Vec<String> = s
        .pass_at_k
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect();
    println!(
        "gitchameleon {} problems x {}: {}  visible pass@1 {:.1}  env_incomplete {}",
        s.summary.overall.examples,
        s.summary.n,
        ks.join("  "),
        s.visible_pass_at_1,
        s.env_incomplete.len()
    );
    for (lib, g) in &s.summary.per_package {
        println!(
            "  {lib:<14} {:>4} problems  pass@1 {:>5}",
            g.examples,
            pct(g.pass_at_1)
        );
    }
    println!("summary: {}", out.join("summary.json").display());
}
