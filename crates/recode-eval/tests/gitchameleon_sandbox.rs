//! GitChameleon runs through the real sandbox in a real environment (scipy 1.9.2 on Python 3.10,
//! built through recode-venv and cached; network to PyPI on the first run): the ground truth
//! passes, a wrong answer fails, and a solution that writes outside its directory, into its
//! environment, or loops is contained. Needs root (namespaces), like the sandbox's own tests.

use std::path::PathBuf;

use recode_eval::gitchameleon::check::Scorer;
use recode_eval::gitchameleon::exec::PoolSettings;
use recode_eval::gitchameleon::setup::{ensure, server_python, EnvManager, Interpreters};
use recode_eval::gitchameleon::{env_specs, Dataset, LibrarySelection};

/// The data in `../shared/data/gitchameleon`, or `None` (the test is skipped, saying so).
fn data_dir() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::GITCHAMELEON.shared_or_skip(&checkout)
}

#[test]
fn runs_are_scored_and_contained() {
    let Some(dir) = data_dir() else {
        return;
    };
    let data = Dataset::load(&dir).unwrap();
    let sel = LibrarySelection::parse("scipy==1.9.2").unwrap();
    let problems: Vec<_> = sel
        .select(&data.problems)
        .unwrap()
        .into_iter()
        .cloned()
        .collect();
    let envs = env_specs(&problems);
    assert_eq!(envs.len(), 1);
    let state = ensure(&EnvManager::from_env(), &Interpreters::default(), &envs[0]);
    let venv = state
        .venv
        .clone()
        .expect("the scipy 1.9.2 environment builds");
    let settings = PoolSettings {
        server_python: server_python().unwrap(),
        workers: 2,
        memory_bytes: 2 << 30,
        read_only: Vec::new(),
        pass_env: Vec::new(),
        allow_unsandboxed: false,
        timeout_secs: 5.0,
    };
    let scorer = Scorer::new(&data, vec![state], &settings).unwrap();
    let p = &problems[0];
    let truth = data
        .ground_truth()
        .unwrap()
        .into_iter()
        .find(|s| s.id == p.id)
        .unwrap();

    // Host places a hostile solution tries to write: a directory of the host (not /tmp, which
    // is private in the sandbox), the directory above its own, the environment's scipy.
    let host_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let host_file = host_dir.path().join("escaped.txt");
    let scipy_init = venv
        .dir
        .join("lib/python3.10/site-packages/scipy/__init__.py");
    let scipy_before = std::fs::read(&scipy_init).unwrap();
    let writer = format!(
        "import os\nfor path in [{host:?}, '../escaped.txt', {lib:?}]:\n    try:\n        \
         with open(path, 'a') as f:\n            f.write('pwned')\n        print('WROTE', path)\n    \
         except OSError as e:\n        print('DENIED', path, type(e).__name__)\n\
         open('left_behind.txt', 'w').write('x')\n",
        host = host_file.to_string_lossy(),
        lib = scipy_init.to_string_lossy(),
    );
    let looper = "while True:\n    pass\n".to_string();
    let sees_leftover = "import os\nassert not os.path.exists('left_behind.txt'), 'shared dir'\n";
    let items = vec![
        (p.id, truth.text.clone()),
        (p.id, "pass".to_string()),
        (p.id, writer),
        (p.id, looper),
        (p.id, format!("{sees_leftover}{}", truth.text)),
    ];
    let t = std::time::Instant::now();
    let out = scorer.score(&items, true, &|| {}).unwrap();
    let wall = t.elapsed().as_secs_f64();

    assert!(out[0].hidden.passed, "ground truth: {:?}", out[0].hidden);
    assert!(out[0].visible.as_ref().unwrap().passed);
    // `pass` defines nothing: the test's import fails at collection (pytest status 2).
    assert!(!out[1].hidden.passed);
    assert_eq!(out[1].hidden.error_class, "exit:2", "{:?}", out[1].hidden);
    assert!(!out[1].visible.as_ref().unwrap().passed);

    let w = &out[2];
    assert!(!w.hidden.passed);
    assert!(!host_file.exists(), "a host file was written");
    assert!(!host_dir
        .path()
        .parent()
        .unwrap()
        .join("escaped.txt")
        .exists());
    assert_eq!(std::fs::read(&scipy_init).unwrap(), scipy_before);
    let visible = &w.visible.as_ref().unwrap().output;
    assert!(
        visible.contains("DENIED") && !visible.contains(&format!("WROTE {}", scipy_init.display())),
        "{visible}"
    );

    let l = &out[3];
    assert_eq!(l.hidden.error_class, "timeout", "{:?}", l.hidden);
    assert!(l.hidden.seconds < 10.0, "{}", l.hidden.seconds);
    assert_eq!(l.visible.as_ref().unwrap().error_class, "timeout");
    // The harness counts a timeout as a visible failure too.
    assert!(!l.visible.as_ref().unwrap().passed_harness);

    // Every run gets a fresh directory: nothing left by the writer is seen.
    assert!(out[4].hidden.passed, "{:?}", out[4].hidden);
    assert!(wall < 60.0, "{wall}");
}
