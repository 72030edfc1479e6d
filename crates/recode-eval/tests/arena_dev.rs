//! The loader, splitter, namer and INSTALL rules on the real development file, checked against
//! counts computed independently (raw JSON) and against Python's own `ast` for test names.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use recode_eval::arena::{install_statements, load_arena, prepare, SplitMode};
use recode_eval::test_name;

fn dev_file() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/codeupdatearena/arena-dev.jsonl");
    assert!(p.exists(), "missing {} (shared data)", p.display());
    p
}

#[test]
fn counts_match_an_independent_count() {
    let path = dev_file();
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
    let records = load_arena(&dev_file()).unwrap();
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
    let set = prepare(load_arena(&dev_file()).unwrap(), SplitMode::Paper);
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
