//! GitChameleon records, environments and selection on the real data, against the figures of
//! `shared/docs/gitchameleon-harness.md` (counted there from the raw JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use recode_eval::gitchameleon::{env_specs, Dataset, LibrarySelection};

/// The data in `../shared/data/gitchameleon`, or `None` (the test is skipped, saying so).
fn data_dir() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::GITCHAMELEON.shared_or_skip(&checkout)
}

#[test]
fn records_and_environments_match_the_spec() {
    let Some(dir) = data_dir() else {
        return;
    };
    let d = Dataset::load(&dir).unwrap();
    assert_eq!(d.problems.len(), 328);
    for missing in [81, 235, 236] {
        assert!(d.get(missing).is_none());
    }
    assert_eq!(d.problems.iter().map(|p| p.id).max(), Some(330));
    let specs = env_specs(&d.problems);
    assert_eq!(specs.len(), 99);
    let mut per_python: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in &specs {
        let e = per_python.entry(s.python_version.as_str()).or_default();
        e.0 += 1;
        e.1 += s.problems.len();
    }
    assert_eq!(per_python["3.10"], (69, 219));
    assert_eq!(per_python["3.7"], (18, 67));
    assert_eq!(per_python["3.9"], (12, 42));
    // librosa 0.8.0: row 304 defines the env, so joblib 0.14 is installed for 304-312.
    let librosa = specs.iter().find(|s| s.key == "8d2950d1de2c").unwrap();
    assert_eq!(librosa.defined_by, 304);
    assert!(librosa.requirements.iter().any(|r| r == "joblib==0.14"));
    assert!(!librosa.ignored_extras(&d.problems).is_empty());
    // The ground truth is starting_code + solution for every row and has a hidden test.
    let gt = d.ground_truth().unwrap();
    assert_eq!(gt.len(), 328);
    for s in &gt {
        let p = d.get(s.id).unwrap();
        assert_eq!(
            s.text,
            format!("{}{}", p.starting_code, p.solution),
            "{}",
            s.id
        );
        assert!(d.hidden_test(s.id).unwrap().contains(&p.module()));
    }
}

#[test]
fn the_ci_slice_is_32_problems_in_two_environments() {
    let Some(dir) = data_dir() else {
        return;
    };
    let d = Dataset::load(&dir).unwrap();
    let sel = LibrarySelection::parse("sympy==1.13,scipy==1.9.2").unwrap();
    let chosen: Vec<_> = sel
        .select(&d.problems)
        .unwrap()
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(chosen.len(), 32);
    let specs = env_specs(&chosen);
    let keys: Vec<(&str, usize)> = specs
        .iter()
        .map(|s| (s.key.as_str(), s.problems.len()))
        .collect();
    assert_eq!(keys, [("7332ff8ded61", 17), ("42d3fe715e8c", 15)]);
    assert_eq!(
        specs[0].pins,
        ["pytest==7.2.0", "pytest-cov==4.1.0", "numpy==1.23"]
    );
}
