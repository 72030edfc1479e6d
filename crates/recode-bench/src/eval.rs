//! `recode bench eval`: CodeUpdateArena reference programs per second through recode's sandboxed
//! fork-server pool vs (a) a fresh `python` per program (`peers/eval_fresh.py`) and (b) the
//! benchmark's unguarded fork-per-program parent (`peers/eval_fork.py`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use recode_eval::arena::{load_arena, prepare, PreparedSet, SplitMode, VerdictMode};
use recode_eval::checkrefs::reference_programs;
use recode_eval::executor::{ExecConfig, ExecutorPool, Job};

use crate::Result;

/// The report's name (`"bench"` key).
pub const NAME: &str = "eval";

/// Peer (b): a pre-importing parent forking one unguarded child per program.
const PEER_FORK: &str = include_str!("../peers/eval_fork.py");
/// Peer (a): one fresh interpreter per program.
const PEER_FRESH: &str = include_str!("../peers/eval_fresh.py");

/// Options of `recode bench eval`.
#[derive(Debug, Clone)]
pub struct Options {
    /// CodeUpdateArena JSONL file.
    pub data: PathBuf,
    /// N examples spread evenly over the file, every package represented.
    pub limit: usize,
    /// The executor pool's settings; the peers use its interpreter, workers and timeouts.
    pub exec: ExecConfig,
    /// Measure recode alone.
    pub no_peer: bool,
}

/// Runs the benchmark; returns the report (recode judged and in-process, and both peers with
/// the ratios unless `no_peer`).
pub fn run(o: &Options) -> Result<serde_json::Value> {
    let set = load_spread(&o.data, o.limit)?;
    let (_, jobs) = reference_programs(&set, VerdictMode::Judged);
    let (_, whole) = reference_programs(&set, VerdictMode::InProcess);
    // The peers run the benchmark's whole programs; recode runs its judged jobs (the path every
    // evaluation takes) and, for the cost of judging, the same whole programs.
    let programs: Vec<String> = whole
        .iter()
        .filter_map(|j| match j {
            Job::Whole(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let cfg = o.exec.clone();
    let (python, workers) = (cfg.python.clone(), cfg.workers);
    let (timeout, hard) = (cfg.timeout_secs, cfg.hard_timeout_secs);
    let n = programs.len();
    eprintln!("{n} programs, {workers} workers");

    let t = Instant::now();
    let pool = ExecutorPool::start(cfg)?;
    let t_start = t.elapsed().as_secs_f64();
    let results = pool.run_jobs(&jobs, &|| {});
    let slowest = results.iter().map(|r| r.wall).fold(0.0, f64::max);
    let ours: Vec<String> = results.into_iter().map(|r| r.verdict).collect();
    let t_ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let in_process: Vec<String> = pool
        .run_all(&programs, &|| {})
        .into_iter()
        .map(|r| r.verdict)
        .collect();
    let t_in_process = t.elapsed().as_secs_f64();
    drop(pool);
    eprintln!(
        "recode: pool start-up (imports) {t_start:.1} s, programs {:.1} s, slowest program {slowest:.1} s",
        t_ours - t_start
    );

    let passed = |v: &[String]| v.iter().filter(|s| *s == "passed").count();
    let agree = |v: &[String]| {
        v.iter()
            .zip(&ours)
            .filter(|(a, b)| (*a == "passed") == (*b == "passed"))
            .count()
    };
    let rate = |t: f64| n as f64 / t;
    eprintln!("runner                       programs/s   passed  same pass/fail as recode");
    eprintln!(
        "recode (sandboxed fork srv)  {:>10.1}   {:>6}  {n}/{n}",
        rate(t_ours),
        passed(&ours)
    );
    let mut report = serde_json::json!({
        "data": o.data,
        "programs": n,
        "workers": workers,
        "recode": {
            "programs_per_s": rate(t_ours),
            "seconds": t_ours,
            "pool_startup_s": t_start,
            "slowest_program_s": slowest,
            "passed": passed(&ours),
            "verdicts": "judged",
        },
        // The same pool deciding verdicts in the program's own process (the harness's rule):
        // the cost of judging out of the candidate's reach is the ratio of the two.
        "recode_in_process": {
            "programs_per_s": rate(t_in_process + t_start),
            "passed": passed(&in_process),
            "same_pass_fail_as_judged": agree(&in_process),
        },
    });
    if o.no_peer {
        return Ok(report);
    }
    let t = Instant::now();
    let forked = in_lanes(n, workers, &|idx| {
        let batch: Vec<&String> = idx.iter().map(|&i| &programs[i]).collect();
        let input = serde_json::to_vec(&batch).unwrap_or_default();
        let args = [timeout.to_string(), hard.to_string()];
        let limit = hard * idx.len() as f64 + 120.0;
        let out = run_python(&python, PEER_FORK, &args, &input, limit);
        serde_json::from_str(&out).unwrap_or_else(|_| vec!["peer error".into(); idx.len()])
    });
    let t_fork = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let fresh = in_lanes(n, workers, &|idx| {
        idx.iter()
            .map(|&i| {
                let args = [timeout.to_string()];
                let v = run_python(&python, PEER_FRESH, &args, programs[i].as_bytes(), hard);
                if v.is_empty() {
                    "timed out".to_string()
                } else {
                    v
                }
            })
            .collect()
    });
    let t_fresh = t.elapsed().as_secs_f64();

    for (label, key, verdicts, secs) in [
        (
            "(b) unguarded fork parent   ",
            "unguarded_fork",
            &forked,
            t_fork,
        ),
        (
            "(a) fresh python per program",
            "fresh_python",
            &fresh,
            t_fresh,
        ),
    ] {
        eprintln!(
            "{label} {:>10.1}   {:>6}  {}/{n}",
            rate(secs),
            passed(verdicts),
            agree(verdicts)
        );
        report[key] = serde_json::json!({
            "programs_per_s": rate(secs),
            "seconds": secs,
            "passed": passed(verdicts),
            "same_pass_fail_as_recode": agree(verdicts),
        });
    }
    eprintln!(
        "recode / (a) = {:.1}x, recode / (b) = {:.2}x",
        t_fresh / t_ours,
        t_fork / t_ours
    );
    report["ratio_recode_over"] = serde_json::json!({
        "fresh_python": t_fresh / t_ours,
        "unguarded_fork": t_fork / t_ours,
    });
    Ok(report)
}

/// The file's examples thinned to `n` spread evenly over it (the file is sorted by package, and
/// its first examples import nothing heavy), prepared paper-exactly.
fn load_spread(data: &Path, n: usize) -> Result<PreparedSet> {
    let mut records = load_arena(data)?;
    let total: usize = records.iter().map(|r| r.examples.len()).sum();
    let mut index = 0;
    for r in records.iter_mut() {
        r.examples.retain(|_| {
            index += 1;
            opens_bucket(index - 1, n, total)
        });
    }
    records.retain(|r| !r.examples.is_empty());
    Ok(prepare(records, SplitMode::Paper))
}

/// Whether example `i` of `total` opens one of `n` equal buckets of the file (`n` clamped to
/// 1..=total): exactly `n` examples are picked, spread evenly.
fn opens_bucket(i: usize, n: usize, total: usize) -> bool {
    let n = n.min(total).max(1);
    i == 0 || (i * n) / total != ((i - 1) * n) / total
}

/// Runs `python -I -c script args…` with `input` on stdin, killing it after `limit` seconds;
/// returns stdout (empty if killed or it could not start).
fn run_python(python: &Path, script: &str, args: &[String], input: &[u8], limit: f64) -> String {
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new(python)
        .arg("-I")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return String::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut out) = stdout {
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
        }
        s
    });
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t.elapsed().as_secs_f64() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    reader.join().unwrap_or_default()
}

/// Runs `n` programs in `workers` parallel lanes, `lane(indices)` returning the verdicts of the
/// programs at indices i, i+workers, …; the verdicts in program order.
fn in_lanes(
    n: usize,
    workers: usize,
    lane: &(dyn Fn(Vec<usize>) -> Vec<String> + Sync),
) -> Vec<String> {
    let mut verdicts = vec![String::new(); n];
    let lanes: Vec<Vec<usize>> = (0..workers)
        .map(|w| (w..n).step_by(workers).collect())
        .collect();
    let outs: Vec<(Vec<usize>, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = lanes
            .into_iter()
            .map(|idx| s.spawn(move || (idx.clone(), lane(idx))))
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (idx, vs) in outs {
        for (i, v) in idx.into_iter().zip(vs) {
            verdicts[i] = v;
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::{in_lanes, opens_bucket};

    /// The spread picks exactly n examples (all when n exceeds the file), the first among them.
    #[test]
    fn the_spread_picks_exactly_n_examples_evenly() {
        for (n, total) in [(1, 7), (3, 10), (40, 1000), (10, 10), (50, 7)] {
            let picked: Vec<usize> = (0..total).filter(|&i| opens_bucket(i, n, total)).collect();
            assert_eq!(picked.len(), n.min(total), "n={n} total={total}");
            assert_eq!(picked[0], 0);
        }
        let picked: Vec<usize> = (0..10).filter(|&i| opens_bucket(i, 3, 10)).collect();
        assert_eq!(picked, [0, 4, 7]);
    }

    /// Lanes see every index once and the verdicts come back in program order.
    #[test]
    fn lanes_return_verdicts_in_program_order() {
        let v = in_lanes(7, 3, &|idx| idx.iter().map(|i| format!("p{i}")).collect());
        let want: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
        assert_eq!(v, want);
    }
}
