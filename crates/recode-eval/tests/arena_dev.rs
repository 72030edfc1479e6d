//! The loader, splitter, namer and INSTALL rules on the real development file, checked against
//! counts computed independently (raw JSON) and against Python's own `ast` for test names.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use recode_eval::arena::{install_statements, load_arena, prepare, SplitMode};
use recode_eval::test_name;

/// The development file in `../shared/data`, or `None` (the test is skipped, saying so).
fn dev_file() -> Option<PathBuf> {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    recode_data::datasets::CODEUPDATEARENA.shared_or_skip(&checkout)
}

#[test]
fn counts_match_an_independent_count() {
    let Some(path) = dev_file() else {
        return;
    };
    // Independent count straight from the JSON values.
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut updates, mut examples, mut pieces) = (0, 0, 0);
    let mut types = BTreeSet::new();
    let mut packages: BTreeMap<String, usize> = BTreeMap::new();
    let mut renames = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        updates += 1;
        let ty = v["update"]["update_type"].as_str().unwrap().to_string();
        if ty == "modify-function-name" {
            renames += 1;
        }
        types.insert(ty);
        *packages
            .entry(v["update"]["package"].as_str().unwrap().into())
            .or_default() += 1;
        for e in v["prog_syn_examples"].as_array().unwrap() {
            examples += 1;
            pieces += e["unit_tests"].as_str().unwrap().matches("\n\n").count() + 1;
        }
    }
    assert_eq!((updates, examples, pieces), (91, 358, 2260));
    assert_eq!(types.len(), 15);
    assert_eq!(renames, 10);
    let want: BTreeMap<String, usize> = [
        ("itertools", 8),
        ("math", 27),
        ("numpy", 24),
        ("re", 15),
        ("sympy", 3),
        ("torch", 14),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(packages, want);

    // The library agrees, and every update of the dev file passes filter and INSTALL rules.
    let records = load_arena(&path).unwrap();
    let set = prepare(records, SplitMode::Paper);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    assert_eq!(set.updates.len(), 91);
    let ex: usize = set.updates.iter().map(|u| u.pieces.len()).sum();
    let pc: usize = set
        .updates
        .iter()
        .flat_map(|u| u.pieces.iter())
        .map(|p| p.len())
        .sum();
    assert_eq!((ex, pc), (358, 2260));
    let lib_renames = set
        .updates
        .iter()
        .filter(|u| u.install.starts_with("del "))
        .count();
    assert_eq!(lib_renames, 10);
    let glued: usize = prepare(load_arena(&path).unwrap(), SplitMode::GlueFragments)
        .updates
        .iter()
        .flat_map(|u| u.pieces.iter())
        .map(|p| p.len())
        .sum();
    assert!(glued < 2260, "gluing must merge the fragmented pieces");
}

#[test]
fn doc_install_examples_on_the_dev_file() {
    let Some(dev) = dev_file() else {
        return;
    };
    let records = load_arena(&dev).unwrap();
    let by_id: BTreeMap<_, _> = records
        .iter()
        .map(|r| (r.update.update_id.as_str(), &r.update))
        .collect();
    let cases = [
        (
            "[itertools.chain]:[add-argument-data_type]:[update-0]",
            "itertools.chain = chain",
        ),
        (
            "[math.log]:[modify-argument-data_type]:[update-0]",
            "math.log = log",
        ),
        (
            "[torch.Tensor.view]:[add-argument]:[update-0]",
            "torch.Tensor.view = view",
        ),
        (
            "[numpy.sum]:[modify-function-name]:[update-0]",
            "del numpy.sum\nsetattr(numpy, 'total', total)",
        ),
        (
            "[itertools.product]:[modify-function-name]:[update-0]",
            "del itertools.product\nsetattr(itertools, 'cartesian_product', cartesian_product)",
        ),
    ];
    for (id, want) in cases {
        let u = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} not in dev file"));
        assert_eq!(install_statements(u).unwrap(), want, "{id}");
    }
}

/// The original rule run by Python itself: parse, drop imports, unparse, `def NAME(` hits.
const PY_NAMES: &str = r#"
import ast, json, re, sys
out = []
for src in json.load(sys.stdin):
    try:
        tree = ast.parse(src)
    except SyntaxError:
        out.append(None)
        continue
    tree.body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    hits = re.findall(r"def\s+(\w+)\(", ast.unparse(tree), re.IGNORECASE)
    out.append(hits[0] if len(hits) == 1 else None)
json.dump(out, sys.stdout)
"#;

#[test]
fn test_names_agree_with_python_ast() {
    let venv =
        std::env::var("RECODE_VENV").unwrap_or_else(|_| "/root/.cache/recode/venv-dev".into());
    let python = PathBuf::from(&venv).join("bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh (or set RECODE_VENV)",
        python.display()
    );
    let Some(dev) = dev_file() else {
        return;
    };
    let set = prepare(load_arena(&dev).unwrap(), SplitMode::Paper);
    let mut sources: Vec<String> = Vec::new();
    for u in &set.updates {
        sources.push(u.record.update.implementation.clone());
        for p in u.pieces.iter().flatten() {
            sources.push(p.clone());
        }
    }
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(PY_NAMES)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(&sources).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: Vec<Option<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(want.len(), sources.len());
    let mut unnamed = 0;
    for (src, w) in sources.iter().zip(&want) {
        assert_eq!(&test_name(src), w, "source:\n{src}");
        unnamed += usize::from(w.is_none());
    }
    assert!(unnamed > 0, "the fragmented pieces must have no name");
}

/// The hub's layout (`arena-ungrouped.jsonl`: one example a line, its update's fields beside it)
/// loads into the same records as the grouped file, whatever the order of the lines.
#[test]
fn one_example_a_line_loads_like_the_grouped_file() {
    let Some(dev) = dev_file() else {
        return;
    };
    let grouped = load_arena(&dev).unwrap();
    // Flatten, then interleave the updates (example 0 of every update, then example 1, …).
    let mut lines = Vec::new();
    let most = grouped.iter().map(|r| r.examples.len()).max().unwrap();
    for i in 0..most {
        for r in grouped.iter().filter(|r| i < r.examples.len()) {
            let mut row = serde_json::to_value(&r.update).unwrap();
            let ex = serde_json::to_value(&r.examples[i]).unwrap();
            row.as_object_mut()
                .unwrap()
                .extend(ex.as_object().unwrap().clone());
            lines.push(row.to_string());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("arena-ungrouped.jsonl");
    std::fs::write(&flat, lines.join("\n") + "\n").unwrap();
    let loaded = load_arena(&flat).unwrap();
    let ids = |rs: &[recode_eval::arena::ArenaRecord]| {
        rs.iter()
            .map(|r| {
                let ex: Vec<&str> = r.examples.iter().map(|e| e.prog_syn_id.as_str()).collect();
                format!("{} {ex:?}", r.update.update_id)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&loaded), ids(&grouped));
    let view = |rs: &[recode_eval::arena::ArenaRecord]| {
        serde_json::to_value(
            rs.iter()
                .map(|r| (&r.update, &r.examples))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    assert!(
        view(&loaded) == view(&grouped),
        "same ids, different fields"
    );
    // Each record is labelled with its first line.
    assert_eq!(loaded[1].line, 2);

    // The same update id with different update fields is refused, naming both lines.
    let mut changed: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    changed["docstring"] = "something else".into();
    lines.push(changed.to_string());
    std::fs::write(&flat, lines.join("\n") + "\n").unwrap();
    let e = load_arena(&flat).unwrap_err().to_string();
    let want = format!(
        "arena-ungrouped.jsonl:{}: field `update_id`: {}: the update's fields differ from line 1",
        lines.len(),
        grouped[0].update.update_id
    );
    assert!(e.contains(&want), "{e}");
}

/// The repository's original layout (GitHub `leo-liuzy/CodeUpdateArena`, `data/arena.jsonl`):
/// tests and imports as lists of strings, an example's imports under `imports`. Rebuilt from the
/// development file, it loads into the same records.
#[test]
fn lists_of_tests_and_imports_load_like_the_development_file() {
    let Some(dev) = dev_file() else {
        return;
    };
    let text = std::fs::read_to_string(&dev).unwrap();
    let split = |v: &serde_json::Value, sep: &str| -> serde_json::Value {
        v.as_str().unwrap().split(sep).collect::<Vec<_>>().into()
    };
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["update"]["imports"] = split(&v["update"]["imports"], "\n");
        for e in v["prog_syn_examples"].as_array_mut().unwrap() {
            e["unit_tests"] = split(&e["unit_tests"], "\n\n");
            let imports = e
                .as_object_mut()
                .unwrap()
                .remove("prog_syn_imports")
                .unwrap();
            e["imports"] = split(&imports, "\n");
        }
        lines.push(v.to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("arena.jsonl");
    std::fs::write(&original, lines.join("\n") + "\n").unwrap();
    let view = |rs: &[recode_eval::arena::ArenaRecord]| {
        serde_json::to_value(
            rs.iter()
                .map(|r| (&r.update, &r.examples))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let (want, got) = (load_arena(&dev).unwrap(), load_arena(&original).unwrap());
    assert_eq!(got.len(), 91);
    assert!(
        view(&got) == view(&want),
        "the original layout loads differently"
    );

    // A list holding something else than strings is refused, naming the element.
    let mut bad: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    bad["prog_syn_examples"][0]["unit_tests"][1] = 3.into();
    std::fs::write(&original, format!("{bad}\n")).unwrap();
    let e = load_arena(&original).unwrap_err().to_string();
    assert!(
        e.contains("arena.jsonl:1: field `prog_syn_examples[0].unit_tests[1]`: expected a string, found a number"),
        "{e}"
    );
}
