//! CodeUpdateArena records: loading, test splitting and naming, INSTALL rules and the
//! six-section test program (harness doc §1–§2, §7), paper-exact with an optional fix for
//! fragmented tests.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pyname::test_name;
use recode_sandbox::Job;

/// Errors while loading a CodeUpdateArena file; each names the file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid JSON.
    #[error("{path}:{line}: invalid JSON: {source}")]
    Json {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's error (names the column).
        #[source]
        source: serde_json::Error,
    },
    /// A required field is missing or has the wrong type.
    #[error("{path}:{line}: field `{field}`: {problem}")]
    Field {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Dotted field path, e.g. `prog_syn_examples[2].unit_tests`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// The `update` object of a record: one API change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArenaUpdate {
    /// Changed function, e.g. `torch.Tensor.view`.
    pub function_path: String,
    /// First component of the path.
    pub package: String,
    /// `ACTION-PLACE[-ASPECT]`, e.g. `modify-function-name`.
    pub update_type: String,
    /// One-sentence summary (prompt text).
    pub description: String,
    /// New documentation (prompt text).
    pub docstring: String,
    /// New signature (prompt text).
    pub signature: String,
    /// Why the change was made (unused by evaluation).
    pub rationale: String,
    /// Set-up code binding `old_<name>`.
    pub imports: String,
    /// Source of the new function.
    pub implementation: String,
    /// `[function_path]:[update_type]:[update-N]`.
    pub update_id: String,
}

/// One program-synthesis example attached to an update.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaExample {
    /// `update_id` + `:[prog_syn-M]`.
    pub prog_syn_id: String,
    /// Real-world scenario (prompt text).
    pub scenario: String,
    /// Task statement (prompt text).
    pub problem: String,
    /// Usually the `def` line of the solution.
    pub solution_signature: String,
    /// Unit tests, pieces separated by blank lines.
    pub unit_tests: String,
    /// Imports run first in every program.
    pub prog_syn_imports: String,
    /// Reference solution.
    pub ref_solution: String,
}

/// One JSON line: an update and its examples.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaRecord {
    /// The API update.
    pub update: ArenaUpdate,
    /// Its program-synthesis examples.
    pub examples: Vec<ArenaExample>,
    /// 1-based line in the source file.
    pub line: usize,
}

fn field_str(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    prefix: &str,
    path: &Path,
    line: usize,
) -> Result<String, LoadError> {
    match obj.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(LoadError::Field {
            path: path.to_path_buf(),
            line,
            field: format!("{prefix}{name}"),
            problem: format!("expected a string, found {}", json_kind(other)),
        }),
        None => Err(LoadError::Field {
            path: path.to_path_buf(),
            line,
            field: format!("{prefix}{name}"),
            problem: "missing".into(),
        }),
    }
}

/// A text field that the repository's original file (GitHub `leo-liuzy/CodeUpdateArena`,
/// `data/arena.jsonl`) holds as a list of strings: `unit_tests` (one test function each) and the
/// `imports` (one statement each). Read as the development file has them: joined with `sep`
/// (`"\n\n"` between tests, `"\n"` between imports; checked on all 358 of its examples).
fn field_text(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    sep: &str,
    prefix: &str,
    path: &Path,
    line: usize,
) -> Result<String, LoadError> {
    let Some(serde_json::Value::Array(items)) = obj.get(name) else {
        return field_str(obj, name, prefix, path, line);
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            serde_json::Value::String(s) => parts.push(s.as_str()),
            other => {
                return Err(LoadError::Field {
                    path: path.to_path_buf(),
                    line,
                    field: format!("{prefix}{name}[{i}]"),
                    problem: format!("expected a string, found {}", json_kind(other)),
                })
            }
        }
    }
    Ok(parts.join(sep))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads the fields of an update from `obj` (`prefix` names them in errors).
fn parse_update(
    obj: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    path: &Path,
    line: usize,
) -> Result<ArenaUpdate, LoadError> {
    let s = |name: &str| field_str(obj, name, prefix, path, line);
    Ok(ArenaUpdate {
        function_path: s("function_path")?,
        package: s("package")?,
        update_type: s("update_type")?,
        description: s("description")?,
        docstring: s("docstring")?,
        signature: s("signature")?,
        rationale: s("rationale")?,
        imports: field_text(obj, "imports", "\n", prefix, path, line)?,
        implementation: s("implementation")?,
        update_id: s("update_id")?,
    })
}

/// Reads the fields of a program-synthesis example from `obj` (`prefix` names them in errors).
fn parse_example(
    obj: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    path: &Path,
    line: usize,
) -> Result<ArenaExample, LoadError> {
    let s = |name: &str| field_str(obj, name, prefix, path, line);
    // The original file names an example's imports `imports`.
    let imports = if !obj.contains_key("prog_syn_imports") && obj.contains_key("imports") {
        "imports"
    } else {
        "prog_syn_imports"
    };
    Ok(ArenaExample {
        prog_syn_id: s("prog_syn_id")?,
        scenario: s("scenario")?,
        problem: s("problem")?,
        solution_signature: s("solution_signature")?,
        unit_tests: field_text(obj, "unit_tests", "\n\n", prefix, path, line)?,
        prog_syn_imports: field_text(obj, imports, "\n", prefix, path, line)?,
        ref_solution: s("ref_solution")?,
    })
}

/// One line of a CodeUpdateArena file: an update with its examples, or one example with its
/// update's fields beside it (the layout of the published `arena-ungrouped.jsonl`).
enum Line {
    Grouped(ArenaRecord),
    Example(ArenaUpdate, ArenaExample),
}

fn parse_line(text: &str, path: &Path, line: usize) -> Result<Line, LoadError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| LoadError::Json {
        path: path.to_path_buf(),
        line,
        source: e,
    })?;
    let field_err = |field: &str, problem: &str| LoadError::Field {
        path: path.to_path_buf(),
        line,
        field: field.into(),
        problem: problem.into(),
    };
    let root = value
        .as_object()
        .ok_or_else(|| field_err("<record>", "expected a JSON object"))?;
    let u = match root.get("update") {
        Some(serde_json::Value::Object(u)) => u,
        Some(_) => return Err(field_err("update", "expected an object")),
        None if root.contains_key("prog_syn_id") => {
            return Ok(Line::Example(
                parse_update(root, "", path, line)?,
                parse_example(root, "", path, line)?,
            ))
        }
        None => return Err(field_err("update", "missing")),
    };
    let update = parse_update(u, "update.", path, line)?;
    let list = match root.get("prog_syn_examples") {
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return Err(field_err("prog_syn_examples", "expected an array")),
        None => return Err(field_err("prog_syn_examples", "missing")),
    };
    let mut examples = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| field_err(&format!("prog_syn_examples[{i}]"), "expected an object"))?;
        examples.push(parse_example(
            obj,
            &format!("prog_syn_examples[{i}]."),
            path,
            line,
        )?);
    }
    Ok(Line::Grouped(ArenaRecord {
        update,
        examples,
        line,
    }))
}

/// Parses one JSON line holding an update and its examples (`path`/`line` only label errors).
pub fn parse_record(text: &str, path: &Path, line: usize) -> Result<ArenaRecord, LoadError> {
    match parse_line(text, path, line)? {
        Line::Grouped(record) => Ok(record),
        Line::Example(..) => Err(LoadError::Field {
            path: path.to_path_buf(),
            line,
            field: "update".into(),
            problem: "missing (a line of one example: load the file with load_arena)".into(),
        }),
    }
}

/// Loads a CodeUpdateArena JSONL file (blank lines skipped): one update with its examples a
/// line (`{"update": …, "prog_syn_examples": […]}`), or one example a line with its update's
/// fields beside it, as published on the Hugging Face hub (`leo-liuzy/CodeUpdateArena`,
/// `arena-ungrouped.jsonl`); such lines are grouped by `update_id` in order of first appearance,
/// each record labelled with its first line, and an update whose fields differ between its
/// lines is an error naming both lines. Tests and imports may be strings or, as in the
/// repository's original `data/arena.jsonl`, lists of strings (see `field_text`).
pub fn load_arena(path: &Path) -> Result<Vec<ArenaRecord>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records: Vec<ArenaRecord> = Vec::new();
    let mut by_update: std::collections::HashMap<String, usize> = Default::default();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match parse_line(l, path, i + 1)? {
            Line::Grouped(record) => records.push(record),
            Line::Example(update, example) => match by_update.get(&update.update_id) {
                Some(&at) => {
                    let record = &mut records[at];
                    if record.update != update {
                        return Err(LoadError::Field {
                            path: path.to_path_buf(),
                            line: i + 1,
                            field: "update_id".into(),
                            problem: format!(
                                "{}: the update's fields differ from line {}",
                                update.update_id, record.line
                            ),
                        });
                    }
                    record.examples.push(example);
                }
                None => {
                    by_update.insert(update.update_id.clone(), records.len());
                    records.push(ArenaRecord {
                        update,
                        examples: vec![example],
                        line: i + 1,
                    });
                }
            },
        }
    }
    Ok(records)
}

/// How test pieces are cut out of `unit_tests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum SplitMode {
    /// Paper-exact: cut at every `\n\n` (blank lines inside a test fragment it, §7).
    #[default]
    Paper,
    /// Fixed: a piece whose first line is indented is glued back onto the previous one.
    GlueFragments,
}

/// Splits `unit_tests` into test pieces (harness doc §1; `GlueFragments` is the §7 fix).
pub fn split_tests(unit_tests: &str, mode: SplitMode) -> Vec<String> {
    let raw = unit_tests.split("\n\n");
    match mode {
        SplitMode::Paper => raw.map(str::to_string).collect(),
        SplitMode::GlueFragments => {
            let mut out: Vec<String> = Vec::new();
            for piece in raw {
                let indented = piece.starts_with(' ') || piece.starts_with('\t');
                match out.last_mut() {
                    Some(prev) if indented => {
                        prev.push_str("\n\n");
                        prev.push_str(piece);
                    }
                    _ => out.push(piece.to_string()),
                }
            }
            out
        }
    }
}

/// Parsed `update_type`: `ACTION-PLACE[-ASPECT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateType {
    /// `add`, `modify` or `deprecate`.
    pub action: String,
    /// `function`, `argument` or `output`.
    pub place: String,
    /// Optional aspect (`name`, `semantics`, `data_type`, `default_value(s)`, `supported_value(s)`).
    pub aspect: Option<String>,
}

impl UpdateType {
    /// Parses `ACTION-PLACE[-ASPECT]`; `None` when it has fewer than two parts.
    pub fn parse(s: &str) -> Option<UpdateType> {
        let mut it = s.splitn(3, '-');
        let action = it.next()?.to_string();
        let place = it.next()?.to_string();
        let aspect = it.next().map(str::to_string);
        Some(UpdateType {
            action,
            place,
            aspect,
        })
    }

    /// Whether the original harness's taxonomy filter keeps this type (§2).
    pub fn passes_filter(&self) -> bool {
        let a = self.aspect.as_deref();
        match (self.action.as_str(), self.place.as_str()) {
            ("add", "argument") => matches!(
                a,
                None | Some("semantics" | "data_type" | "default_value(s)" | "supported_value(s)")
            ),
            ("modify", "argument") => matches!(
                a,
                Some(
                    "name" | "semantics" | "data_type" | "default_value(s)" | "supported_value(s)"
                )
            ),
            ("add" | "modify", "output") => matches!(a, Some("semantics" | "data_type")),
            ("modify", "function") => matches!(a, Some("name" | "semantics")),
            ("add", "function") => a.is_none(),
            _ => false,
        }
    }
}

/// Why an update cannot be evaluated (the harness rejects the whole record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Rejection {
    /// `update_type` is not `ACTION-PLACE[-ASPECT]`.
    #[error("update_type `{0}` is malformed")]
    BadUpdateType(String),
    /// The taxonomy filter drops this type (all `deprecate-*`, `add-function-semantics`, …).
    #[error("update_type `{0}` is rejected by the taxonomy filter")]
    Filtered(String),
    /// The type passes the filter but has no INSTALL rule (`modify-function-semantics`).
    #[error("update_type `{0}` has no INSTALL rule")]
    NoInstallRule(String),
    /// `function_path` has no parent (no dot).
    #[error("function_path `{0}` has no parent")]
    NoParent(String),
    /// The implementation has no single `def` name.
    #[error("implementation has no unique function name")]
    NoNewName,
    /// The INSTALL precondition on old/new names is false.
    #[error("{update_type}: new name `{new}` vs old name `{old}` breaks the precondition")]
    NamePrecondition {
        /// The update type.
        update_type: String,
        /// Old name (last path component).
        old: String,
        /// New name (from the implementation).
        new: String,
    },
}

/// Builds the INSTALL statements of an update (harness doc §2), or why it is rejected.
pub fn install_statements(update: &ArenaUpdate) -> Result<String, Rejection> {
    let ty = UpdateType::parse(&update.update_type)
        .ok_or_else(|| Rejection::BadUpdateType(update.update_type.clone()))?;
    if !ty.passes_filter() {
        return Err(Rejection::Filtered(update.update_type.clone()));
    }
    let path = &update.function_path;
    let (parent, old) = path
        .rsplit_once('.')
        .ok_or_else(|| Rejection::NoParent(path.clone()))?;
    let new = test_name(&update.implementation).ok_or(Rejection::NoNewName)?;
    let precondition = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Rejection::NamePrecondition {
                update_type: update.update_type.clone(),
                old: old.to_string(),
                new: new.clone(),
            })
        }
    };
    match (ty.action.as_str(), ty.place.as_str(), ty.aspect.as_deref()) {
        (_, "argument" | "output", _) => {
            precondition(new == old)?;
            Ok(format!("{path} = {new}"))
        }
        ("modify", "function", Some("name")) => {
            precondition(new != old)?;
            Ok(format!(
                "del {parent}.{old}\nsetattr({parent}, '{new}', {new})"
            ))
        }
        ("add", "function", None) => {
            precondition(new != old)?;
            Ok(format!("setattr({parent}, '{new}', {new})"))
        }
        _ => Err(Rejection::NoInstallRule(update.update_type.clone())),
    }
}

/// `banner(L, body)`: comment lines around a section (never change a verdict).
pub fn banner(label: &str, body: &str) -> String {
    format!("########## Start: {label} ##########\n{body}\n##########  End : {label} ##########")
}

/// Where the verdict of a test program is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerdictMode {
    /// In a judge process the candidate cannot reach (the default; see `recode_sandbox::Job`).
    #[default]
    Judged,
    /// In the program's own process, as the benchmark's harness does: forgeable by the
    /// candidate; kept to measure parity with the published harness.
    InProcess,
}

/// The trusted parts around the candidate: sections 1–3 (set-up) and 5–6 (test + call).
fn trusted_sections(
    example: &ArenaExample,
    implementation: &str,
    install: Option<&str>,
    piece: &str,
) -> (String, String) {
    let mut setup = vec![
        banner("Import statement(s)", &example.prog_syn_imports),
        banner(
            "Updated API implementation",
            &banner("New function implementation", implementation),
        ),
    ];
    if let Some(install) = install {
        setup.push(banner("Update statement(s)", install));
    }
    let name = test_name(piece);
    let test = format!("{piece}\n{}()", name.as_deref().unwrap_or("None"));
    (setup.join("\n"), test)
}

/// Assembles the test program for one candidate and one test piece (harness doc §2).
///
/// `install` is `Some(INSTALL)` for the with-update run and `None` for the without run
/// (section 3 left out, §3).
pub fn assemble_program(
    example: &ArenaExample,
    implementation: &str,
    install: Option<&str>,
    candidate: &str,
    piece: &str,
) -> String {
    let (setup, test) = trusted_sections(example, implementation, install, piece);
    format!("{setup}\n{candidate}\n{test}")
}

/// The job judging one candidate on one test piece: the same sections as
/// [`assemble_program`], with the verdict decided where `mode` says.
pub fn assemble_job(
    example: &ArenaExample,
    implementation: &str,
    install: Option<&str>,
    candidate: &str,
    piece: &str,
    mode: VerdictMode,
) -> Job {
    match mode {
        VerdictMode::InProcess => Job::Whole(assemble_program(
            example,
            implementation,
            install,
            candidate,
            piece,
        )),
        VerdictMode::Judged => {
            let (setup, test) = trusted_sections(example, implementation, install, piece);
            Job::Judged {
                setup,
                candidate: candidate.to_string(),
                test,
            }
        }
    }
}

/// An update that passed the filter, with its INSTALL statements and split tests.
#[derive(Debug, Clone)]
pub struct PreparedUpdate {
    /// The record.
    pub record: ArenaRecord,
    /// INSTALL statements.
    pub install: String,
    /// Test pieces per example (same order as `record.examples`).
    pub pieces: Vec<Vec<String>>,
}

/// Result of preparing a whole file: usable updates and rejected ones.
#[derive(Debug, Clone, Default)]
pub struct PreparedSet {
    /// Updates ready to run.
    pub updates: Vec<PreparedUpdate>,
    /// Rejected updates: (update_id, line, reason).
    pub rejected: Vec<(String, usize, Rejection)>,
}

/// Applies the taxonomy filter and INSTALL rules and splits every example's tests.
pub fn prepare(records: Vec<ArenaRecord>, mode: SplitMode) -> PreparedSet {
    let mut set = PreparedSet::default();
    for record in records {
        match install_statements(&record.update) {
            Ok(install) => {
                let pieces = record
                    .examples
                    .iter()
                    .map(|e| split_tests(&e.unit_tests, mode))
                    .collect();
                set.updates.push(PreparedUpdate {
                    record,
                    install,
                    pieces,
                });
            }
            Err(reason) => {
                set.rejected
                    .push((record.update.update_id.clone(), record.line, reason))
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(path: &str, ty: &str, implementation: &str) -> ArenaUpdate {
        ArenaUpdate {
            function_path: path.into(),
            package: path.split('.').next().unwrap_or_default().into(),
            update_type: ty.into(),
            description: String::new(),
            docstring: String::new(),
            signature: String::new(),
            rationale: String::new(),
            imports: String::new(),
            implementation: implementation.into(),
            update_id: format!("[{path}]:[{ty}]:[update-0]"),
        }
    }

    #[test]
    fn install_rules_match_the_doc_examples() {
        let u = update(
            "numpy.sum",
            "modify-function-name",
            "def total(a):\n    return 1\n",
        );
        assert_eq!(
            install_statements(&u).unwrap(),
            "del numpy.sum\nsetattr(numpy, 'total', total)"
        );
        let u = update(
            "torch.Tensor.view",
            "add-argument",
            "# c\ndef view(*shape, dim=None):\n    pass\n",
        );
        assert_eq!(install_statements(&u).unwrap(), "torch.Tensor.view = view");
        let u = update("pkg.f", "add-function", "def g():\n    pass\n");
        assert_eq!(install_statements(&u).unwrap(), "setattr(pkg, 'g', g)");
        let u = update(
            "math.log",
            "modify-argument-data_type",
            "def log(x):\n  pass",
        );
        assert_eq!(install_statements(&u).unwrap(), "math.log = log");
    }

    #[test]
    fn rejections() {
        let r = |p: &str, t: &str, i: &str| install_statements(&update(p, t, i)).unwrap_err();
        assert!(matches!(
            r("a.f", "deprecate-function", "def f(): pass"),
            Rejection::Filtered(_)
        ));
        assert!(matches!(
            r("a.f", "add-function-semantics", "def g(): pass"),
            Rejection::Filtered(_)
        ));
        assert!(matches!(
            r("a.f", "modify-function-semantics", "def f(): pass"),
            Rejection::NoInstallRule(_)
        ));
        assert!(matches!(
            r("a.f", "add-argument", "def g(): pass"),
            Rejection::NamePrecondition { .. }
        ));
        assert!(matches!(
            r("a.f", "modify-function-name", "def f(): pass"),
            Rejection::NamePrecondition { .. }
        ));
        assert!(matches!(
            r("a.f", "add-argument", "def f(:"),
            Rejection::NoNewName
        ));
        assert!(matches!(
            r("f", "add-argument", "def f(): pass"),
            Rejection::NoParent(_)
        ));
        assert!(matches!(
            r("a.f", "weird", "def f(): pass"),
            Rejection::BadUpdateType(_)
        ));
    }

    #[test]
    fn split_and_glue() {
        let t = "def test_a():\n    x = 1\n\n    assert x\n\ndef test_b():\n    pass";
        assert_eq!(split_tests(t, SplitMode::Paper).len(), 3);
        let glued = split_tests(t, SplitMode::GlueFragments);
        assert_eq!(glued.len(), 2);
        assert_eq!(glued[0], "def test_a():\n    x = 1\n\n    assert x");
        // Python's str.split semantics for three newlines.
        assert_eq!(split_tests("a\n\n\nb", SplitMode::Paper), vec!["a", "\nb"]);
    }

    #[test]
    fn program_sections() {
        let ex = ArenaExample {
            prog_syn_id: "x".into(),
            scenario: String::new(),
            problem: String::new(),
            solution_signature: String::new(),
            unit_tests: String::new(),
            prog_syn_imports: "import math".into(),
            ref_solution: String::new(),
        };
        let p = assemble_program(
            &ex,
            "def log(x): pass",
            Some("math.log = log"),
            "CAND",
            "def test_x():\n    pass",
        );
        let expected = "########## Start: Import statement(s) ##########\nimport math\n##########  End : Import statement(s) ##########\n\
########## Start: Updated API implementation ##########\n########## Start: New function implementation ##########\ndef log(x): pass\n##########  End : New function implementation ##########\n##########  End : Updated API implementation ##########\n\
########## Start: Update statement(s) ##########\nmath.log = log\n##########  End : Update statement(s) ##########\n\
CAND\ndef test_x():\n    pass\ntest_x()";
        assert_eq!(p, expected);
        let without = assemble_program(&ex, "def log(x): pass", None, "", "    # tail only");
        assert!(!without.contains("Update statement(s)"));
        assert!(without.ends_with("\n\n    # tail only\nNone()"));
    }

    #[test]
    fn load_errors_name_file_line_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.jsonl");
        std::fs::write(&p, "\n{\"update\": {\"function_path\": 3}}\n").unwrap();
        let e = load_arena(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl:2: field `update.function_path`"),
            "{e}"
        );
        std::fs::write(&p, "{not json").unwrap();
        let e = load_arena(&p).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl:1: invalid JSON"), "{e}");
        // One example a line: its fields are named without a prefix.
        std::fs::write(&p, "{\"prog_syn_id\": \"x\", \"update_id\": 1}\n").unwrap();
        let e = load_arena(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl:1: field `function_path`: missing"),
            "{e}"
        );
    }
}
