//! The data stage on the real ReCode file, checked against counts made independently here
//! (raw `serde_json::Value` walking, and Python's own `ast` for syntax).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use recode_data::{clean, split, stats, LoadOptions};
use serde_json::Value;

fn raw_rows(data: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(data)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).unwrap() {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        })
        .collect()
}

fn load(data: &Path) -> recode_data::Dataset {
    recode_data::load(data.to_str().unwrap(), LoadOptions::default()).unwrap()
}

#[test]
fn stats_match_independent_counts() {
    let Some(data) = common::api_update() else {
        return;
    };
    let raw = raw_rows(&data);
    let report = stats::compute(&load(&data), recode_reward::Mode::Paper);
    assert_eq!(report.rows, raw.len());

    // Exact duplicates: rows whose canonical JSON (sorted keys) was seen before.
    let mut seen = HashSet::new();
    let dups = raw
        .iter()
        .filter(|m| {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            !seen.insert(serde_json::to_string(&sorted).unwrap())
        })
        .count();
    assert_eq!(report.exact_duplicates, dups);
    assert!(dups > 0, "the file is known to hold duplicates");

    // Nulls per field and the version prefix.
    for (field, n) in &report.null_fields {
        let want = raw.iter().filter(|m| m[field.as_str()].is_null()).count();
        assert_eq!(*n, want, "nulls in {field}");
    }
    let no_prefix = raw
        .iter()
        .filter(|m| {
            m["new_version"]
                .as_str()
                .is_some_and(|v| !v.starts_with("=="))
        })
        .count();
    assert_eq!(report.missing_version_prefix, no_prefix);

    // Libraries grouped case-insensitively.
    let mut by_lower: HashMap<String, usize> = HashMap::new();
    for m in &raw {
        *by_lower
            .entry(m["dependency"].as_str().unwrap().to_lowercase())
            .or_default() += 1;
    }
    let got: HashMap<String, usize> = report
        .per_dependency
        .iter()
        .map(|(k, v)| (k.to_lowercase(), *v))
        .collect();
    assert_eq!(got, by_lower);
    assert_eq!(
        report.per_dependency.get("Seaborn"),
        by_lower.get("seaborn")
    );
    assert_eq!(report.per_dependency.get("pandas"), by_lower.get("pandas"));
}

#[test]
fn syntax_errors_agree_with_python_ast() {
    let Some(data) = common::api_update() else {
        return;
    };
    let script = r#"
import ast, json, sys
old = new = 0
for line in open(sys.argv[1]):
    if not line.strip(): continue
    r = json.loads(line)
    for key in ("old_code", "new_code"):
        code = r[key]
        if code is None: continue
        try:
            ast.parse(code)
        except SyntaxError:
            if key == "old_code": old += 1
            else: new += 1
print(old, new)
"#;
    let stdout = common::python_stdout(script, &[&data]);
    let text = String::from_utf8(stdout).unwrap();
    let nums: Vec<usize> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let report = stats::compute(&load(&data), recode_reward::Mode::Paper);
    assert_eq!(
        (report.old_code_syntax_errors, report.new_code_syntax_errors),
        (nums[0], nums[1]),
        "ruff parser vs CPython ast"
    );
    assert!(nums[1] > 0, "the file is known to hold unparsable new_code");
}

/// `identical_old_new` and `empty_fields` against the independent Python reference of the
/// paper-mode normaliser (python/reference/reward_paper.py) and plain JSON walking.
#[test]
fn identical_and_empty_counts_agree_with_python_reference() {
    let Some(data) = common::api_update() else {
        return;
    };
    let reference = common::python_reference();
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[2])
from reward_paper import normalize
fields = ["dependency", "new_version", "description", "update_info", "old_code", "new_code"]
identical = 0
empty = {f: 0 for f in fields}
for line in open(sys.argv[1]):
    if not line.strip(): continue
    r = json.loads(line)
    o, n = r.get("old_code"), r.get("new_code")
    if isinstance(o, str) and isinstance(n, str) and normalize(o) == normalize(n):
        identical += 1
    for f in fields:
        v = r.get(f)
        if isinstance(v, str) and not v.strip():
            empty[f] += 1
print(json.dumps({"identical": identical, "empty": empty}))
"#;
    let stdout = common::python_stdout(script, &[&data, &reference]);
    let want: Value = serde_json::from_slice(&stdout).unwrap();
    let report = stats::compute(&load(&data), recode_reward::Mode::Paper);
    assert_eq!(
        report.identical_old_new as u64,
        want["identical"].as_u64().unwrap()
    );
    assert!(
        report.identical_old_new > 0,
        "the file is known to hold identical pairs"
    );
    for (field, n) in &report.empty_fields {
        let w = want["empty"][field.as_str()].as_u64();
        assert_eq!(Some(*n as u64), w, "empty {field}");
    }
}

/// The copy baseline (mean ES* of answering with the old code) against the independent Python
/// reference reward (python/reference/reward_paper.py), on the first 120 rows of the real file
/// (the pure-Python edit distance is slow on all of them). Tolerance 1e-12: both average the
/// same per-row floating-point values.
#[test]
fn copy_baseline_agrees_with_python_reference() {
    let Some(data) = common::api_update() else {
        return;
    };
    let reference = common::python_reference();
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(120)
        .collect();
    std::fs::write(&head, lines.join("\n") + "\n").unwrap();
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[2])
from reward_paper import score
total, n = 0.0, 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    o, t = r.get("old_code"), r.get("new_code")
    if isinstance(o, str) and isinstance(t, str):
        total += score(" </think>\n<answer>\n```python\n" + o + "\n```\n</answer>", t)["es_star"]
        n += 1
print(json.dumps({"mean": total / n, "n": n}))
"#;
    let stdout = common::python_stdout(script, &[&head, &reference]);
    let want: Value = serde_json::from_slice(&stdout).unwrap();
    let ds = recode_data::load(head.to_str().unwrap(), LoadOptions::default()).unwrap();
    let got = stats::compute(&ds, recode_reward::Mode::Paper)
        .copy_es_star
        .expect("rows have both codes");
    let want = want["mean"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "recode {got} vs Python {want}");
    assert!(
        want > -2.0 && want < 2.0,
        "a copy is neither always exact nor always unparsable: {want}"
    );
}

/// Token-length percentiles of the targets against Hugging Face's Python `tokenizers` and
/// numpy's nearest-rank (`inverted_cdf`) percentiles, with the real Qwen tokenizer.
#[test]
fn target_token_percentiles_agree_with_python_tokenizers() {
    let Some(data) = common::api_update() else {
        return;
    };
    let dir = std::env::var_os("RECODE_QWEN_TOKENIZER_DIR")
        .map(std::path::PathBuf::from)
        .expect("RECODE_QWEN_TOKENIZER_DIR (scripts/setup.sh installs the Qwen tokenizer)");
    let tokenizer = dir.join("tokenizer.json");
    let script = r#"
import json, sys
import numpy as np
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[2])
lens = []
for line in open(sys.argv[1]):
    if not line.strip(): continue
    code = json.loads(line).get("new_code")
    if isinstance(code, str):
        lens.append(len(tok.encode(code, add_special_tokens=False).ids))
pct = {f"p{p}": int(np.percentile(lens, p, method="inverted_cdf")) for p in (50, 90, 95, 99)}
pct["max"] = max(lens)
print(json.dumps(pct))
"#;
    let stdout = common::python_stdout(script, &[&data, &tokenizer]);
    let want: Value = serde_json::from_slice(&stdout).unwrap();
    let t = recode_data::template::ChatTemplate::chatml();
    let got = stats::token_lengths(&load(&data), &tokenizer, &t).unwrap();
    let target = got.target.expect("targets present");
    let as_json = serde_json::json!({
        "p50": target.p50, "p90": target.p90, "p95": target.p95, "p99": target.p99, "max": target.max,
    });
    assert_eq!(as_json, want);
    let prompt = got.prompt.expect("prompts present");
    assert!(
        prompt.p50 > target.p50,
        "a prompt holds the old code and the update note"
    );
}

#[test]
fn clean_drops_what_stats_found_and_output_is_clean() {
    let Some(data) = common::api_update() else {
        return;
    };
    let ds = load(&data);
    let (kept, report) = clean::clean(&ds.rows, &clean::CleanOptions::default());
    assert_eq!(report.input_rows, ds.rows.len());
    assert_eq!(
        report.output_rows + report.dropped_rows.len(),
        report.input_rows
    );
    assert_eq!(kept.len(), report.output_rows);

    // Cleaning its own output finds nothing more to drop or rewrite.
    let again_rows: Vec<_> = kept
        .iter()
        .enumerate()
        .map(|(i, e)| recode_data::Row {
            line: i + 1,
            example: e.clone(),
        })
        .collect();
    let (again, r2) = clean::clean(&again_rows, &clean::CleanOptions::default());
    assert_eq!(again, kept);
    assert!(r2.dropped_rows.is_empty());
    assert_eq!(r2.renamed_dependencies + r2.canonicalised_versions, 0);

    let ds2 = recode_data::Dataset {
        rows: again_rows,
        ..Default::default()
    };
    let s = stats::compute(&ds2, recode_reward::Mode::Paper);
    assert_eq!(s.exact_duplicates, 0);
    assert_eq!(s.identical_old_new, 0);
    assert_eq!(s.new_code_syntax_errors, 0);
    assert_eq!(s.missing_version_prefix, 0);
    assert!(s
        .null_fields
        .iter()
        .filter(|(f, _)| *f != "description")
        .all(|(_, n)| *n == 0));
    assert_eq!(s.dependency_spellings.len(), 0, "one spelling per library");

    // Every rule can be switched off.
    let none = clean::CleanOptions {
        drop_null_required: false,
        drop_duplicates: false,
        drop_identical: false,
        drop_unparsable_target: false,
        canonicalise_names: false,
        canonicalise_versions: false,
        mode: recode_reward::Mode::Paper,
    };
    let (all, r3) = clean::clean(&ds.rows, &none);
    assert_eq!(all.len(), ds.rows.len());
    assert!(r3.dropped_rows.is_empty());
    let raw: Vec<_> = ds.examples().cloned().collect();
    assert_eq!(all, raw);
}

#[test]
fn split_is_deterministic_stratified_and_disjoint() {
    let Some(data) = common::api_update() else {
        return;
    };
    let ds = load(&data);
    let ex: Vec<_> = ds.examples().cloned().collect();
    let a = split::split(&ex, 0.05, 7).unwrap();
    let b = split::split(&ex, 0.05, 7).unwrap();
    let c = split::split(&ex, 0.05, 8).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.val, c.val);
    assert_eq!(a.train.len() + a.val.len(), ex.len());
    let train: HashSet<_> = a.train.iter().collect();
    assert!(a.val.iter().all(|i| !train.contains(i)));
    // Per library, validation holds round(n * 0.05) rows.
    let mut n: HashMap<String, (usize, usize)> = HashMap::new();
    for (i, e) in ex.iter().enumerate() {
        let k = e.dependency.clone().unwrap().to_lowercase();
        let entry = n.entry(k).or_default();
        entry.0 += 1;
        if a.val.binary_search(&i).is_ok() {
            entry.1 += 1;
        }
    }
    for (lib, (total, val)) in n {
        assert_eq!(val, (total as f64 * 0.05).round() as usize, "{lib}");
    }
    assert!(split::split(&ex, 1.5, 0).is_err());
}

#[test]
fn splitmix64_matches_published_sequence() {
    // Reference outputs of SplitMix64 seeded with 0 (Steele, Lea & Flood; Vigna's C code).
    let mut r = split::SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
}
