//! Real interpreters and real registry installs (PyPI; network needed, as in CI): discovery,
//! builds on two interpreters, cache reuse, a failing install that leaves nothing behind,
//! parallel builders, an offline rebuild from the wheelhouse, sandbox read paths.

use std::path::Path;
use std::time::Instant;

use recode_venv::{
    find_interpreter, list_interpreters, sandbox_read_paths, EnvManager, EnvSpec, Interpreter,
    VenvError, COMPLETE_MARKER,
};

/// Two interpreters of different minor versions, oldest supported (>= 3.6) and newest.
fn two_interpreters() -> (Interpreter, Interpreter) {
    let all: Vec<Interpreter> = list_interpreters()
        .into_iter()
        .filter(|i| i.version_key() >= vec![3, 6])
        .collect();
    assert!(
        all.len() >= 2,
        "need two Python 3 interpreters, found {all:?}"
    );
    let newest = all[0].clone();
    let oldest = all.last().unwrap().clone();
    assert_ne!(newest.minor(), oldest.minor(), "{all:?}");
    (oldest, newest)
}

fn run_python(py: &Path, code: &str) -> String {
    let out = std::process::Command::new(py)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn finds_interpreters_by_minor_and_exact_version() {
    let (oldest, newest) = two_interpreters();
    for want in [&oldest, &newest] {
        let by_minor = find_interpreter(&want.minor()).unwrap();
        assert_eq!(by_minor.minor(), want.minor());
        assert_eq!(by_minor.version.split('.').count(), 3, "{by_minor:?}");
        let exact = find_interpreter(&by_minor.version).unwrap();
        assert_eq!(exact.version, by_minor.version);
        // The path really is that version, and never a pyenv shim.
        let v = run_python(
            &exact.path,
            "import sys; print('%d.%d.%d' % sys.version_info[:3])",
        );
        assert_eq!(v, exact.version);
        assert!(!exact.path.to_string_lossy().contains("/shims/"));
        // A path works as a request too.
        assert_eq!(
            find_interpreter(&exact.path.to_string_lossy())
                .unwrap()
                .version,
            exact.version
        );
    }
}

#[test]
fn missing_version_names_it_and_where_discovery_looked() {
    let err = find_interpreter("3.99").unwrap_err();
    assert!(matches!(err, VenvError::NoInterpreter { .. }));
    let msg = err.to_string();
    assert!(msg.contains("no Python 3.99 found"), "{msg}");
    assert!(msg.contains("versions"), "pyenv dir named: {msg}");
    let (oldest, _) = two_interpreters();
    assert!(
        msg.contains(&oldest.minor()),
        "available versions listed: {msg}"
    );
}

#[test]
fn builds_on_two_interpreters_records_freeze_and_reuses() {
    let cache = tempfile::tempdir().unwrap();
    let mgr = EnvManager::new(cache.path());
    let (oldest, newest) = two_interpreters();
    for python in [oldest, newest] {
        let spec = EnvSpec::new(python.clone(), ["packaging==21.3"]);
        let t = Instant::now();
        let v = mgr.ensure(&spec).unwrap();
        eprintln!(
            "Python {}: built in {:.1} s",
            python.version,
            t.elapsed().as_secs_f64()
        );
        assert!(!v.reused);
        assert_eq!(v.installed_version("packaging").as_deref(), Some("21.3"));
        assert!(
            v.installed_version("pyparsing").is_some(),
            "dependency installed: {:?}",
            v.freeze
        );
        assert!(v.dir.join(COMPLETE_MARKER).exists());
        let freeze = std::fs::read_to_string(v.dir.join("freeze.txt")).unwrap();
        assert!(freeze.contains("packaging==21.3"), "{freeze}");
        // The venv's interpreter is the requested one and imports the pinned version.
        let out = run_python(
            &v.python(),
            "import sys, packaging; print('%d.%d.%d' % sys.version_info[:3], packaging.__version__)",
        );
        assert_eq!(out, format!("{} 21.3", python.version));

        let t = Instant::now();
        let again = mgr.ensure(&spec).unwrap();
        assert!(again.reused);
        assert_eq!(again.dir, v.dir);
        assert_eq!(again.freeze, v.freeze);
        assert!(t.elapsed().as_secs_f64() < 1.0, "reuse is a lookup");
        assert!(mgr.lookup(&spec).is_some());
    }
    // Wheels landed in the shared wheelhouse.
    let wheels: Vec<_> = std::fs::read_dir(mgr.wheelhouse())
        .unwrap()
        .flatten()
        .collect();
    assert!(wheels.iter().any(|w| w
        .file_name()
        .to_string_lossy()
        .starts_with("packaging-21.3")));
}

#[test]
fn failing_install_is_clear_and_leaves_no_cache_entry() {
    let cache = tempfile::tempdir().unwrap();
    let mgr = EnvManager::new(cache.path());
    let (_, newest) = two_interpreters();
    let spec = EnvSpec::new(newest, ["packaging==99.0.1"]);
    let err = mgr.ensure(&spec).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, VenvError::Pip { .. }), "{msg}");
    assert!(msg.contains("packaging==99.0.1"), "{msg}");
    assert!(
        msg.contains("No matching distribution"),
        "pip's own line: {msg}"
    );
    assert!(msg.lines().count() <= 22, "only pip's last lines: {msg}");
    assert!(!mgr.env_dir(&spec).exists());
    assert!(mgr.lookup(&spec).is_none());
    // Nothing but lock files under envs/.
    for e in std::fs::read_dir(cache.path().join("envs"))
        .unwrap()
        .flatten()
    {
        assert!(
            e.file_name().to_string_lossy().ends_with(".lock"),
            "{:?}",
            e.path()
        );
    }
}

#[test]
fn incomplete_env_is_rebuilt_and_offline_rebuild_uses_the_wheelhouse() {
    let cache = tempfile::tempdir().unwrap();
    let (_, newest) = two_interpreters();
    let spec = EnvSpec::new(newest, ["packaging==22.0"]);
    let online = EnvManager::new(cache.path());
    let built = online.ensure(&spec).unwrap();
    // A crashed build: directory present, marker missing.
    std::fs::remove_file(built.dir.join(COMPLETE_MARKER)).unwrap();
    assert!(online.lookup(&spec).is_none());
    // Offline: no index at all; everything comes from the wheelhouse.
    let offline = EnvManager::new(cache.path()).offline(true);
    let rebuilt = offline.ensure(&spec).unwrap();
    assert!(!rebuilt.reused);
    assert_eq!(
        rebuilt.installed_version("packaging").as_deref(),
        Some("22.0")
    );
}

#[test]
fn parallel_builders_of_one_spec_build_once() {
    let cache = tempfile::tempdir().unwrap();
    let (oldest, _) = two_interpreters();
    let spec = EnvSpec::new(oldest, ["packaging==21.3"]);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| EnvManager::new(cache.path()).ensure(&spec).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|v| !v.reused).count(),
        1,
        "exactly one build"
    );
    assert!(results.iter().all(|v| v.dir == results[0].dir));
}

#[test]
fn sandbox_read_paths_cover_venv_installation_and_executable() {
    let cache = tempfile::tempdir().unwrap();
    let (_, newest) = two_interpreters();
    let v = EnvManager::new(cache.path())
        .ensure(&EnvSpec::new(newest.clone(), Vec::<String>::new()))
        .unwrap();
    let paths = v.read_paths().unwrap();
    let covered = |p: &Path| {
        let p = std::fs::canonicalize(p).unwrap();
        paths.iter().any(|r| p.starts_with(r))
    };
    assert!(covered(&v.dir), "{paths:?}");
    assert!(covered(&newest.base_prefix), "{paths:?}");
    assert!(covered(&v.python()), "real executable: {paths:?}");
    assert!(covered(&v.dir.join("lib")), "{paths:?}");
    // None is inside another.
    for a in &paths {
        assert_eq!(
            paths.iter().filter(|b| a.starts_with(b)).count(),
            1,
            "{paths:?}"
        );
    }
    // The bare interpreter needs no venv directory.
    let bare = sandbox_read_paths(&newest.path).unwrap();
    assert!(
        !bare.iter().any(|p| p.starts_with(cache.path())),
        "{bare:?}"
    );
}

#[test]
fn follow_up_installs_run_in_order_and_their_failures_are_recorded() {
    let cache = tempfile::tempdir().unwrap();
    let mgr = EnvManager::new(cache.path());
    let (_, newest) = two_interpreters();
    let mut spec = EnvSpec::new(newest.clone(), ["packaging==21.3"]);
    spec.after = vec!["packaging==22.0".into(), "packaging==99.0.1".into()];
    assert_ne!(spec.key(), EnvSpec::new(newest, ["packaging==21.3"]).key());
    let v = mgr.ensure(&spec).unwrap();
    // The follow-up replaced what the main install chose; the impossible one did not fail
    // the build but is on record with pip's own line.
    assert_eq!(v.installed_version("packaging").as_deref(), Some("22.0"));
    assert_eq!(v.failed_after.len(), 1, "{:?}", v.failed_after);
    assert_eq!(v.failed_after[0].0, "packaging==99.0.1");
    assert!(v.failed_after[0].1.contains("No matching distribution"));
    assert_eq!(mgr.lookup(&spec).unwrap().failed_after, v.failed_after);
}

#[test]
fn parallel_builders_of_different_specs_share_the_wheelhouse_without_leftovers() {
    let cache = tempfile::tempdir().unwrap();
    let (_, newest) = two_interpreters();
    let specs = [
        EnvSpec::new(newest.clone(), ["packaging==21.3"]),
        EnvSpec::new(newest.clone(), ["packaging==21.3", "semver==3.0.2"]),
        EnvSpec::new(newest, ["packaging==99.0.1"]),
    ];
    // A builder killed mid-download left its private directory (pid 999999999 is not alive).
    let stale = cache.path().join("wheels/.incoming-999999999-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("partial.whl"), b"half").unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = specs
            .iter()
            .map(|spec| s.spawn(|| EnvManager::new(cache.path()).ensure(spec)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(results[2].is_err());
    // Every wheel was published whole; no private download directory is left behind, nor the
    // dead builder's.
    assert!(!stale.exists());
    let names: Vec<String> = std::fs::read_dir(cache.path().join("wheels"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".whl")), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("semver-3.0.2")),
        "{names:?}"
    );
}
