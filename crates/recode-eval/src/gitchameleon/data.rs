//! GitChameleon records: `dataset.jsonl`, solution files (`ground_truth_solutions.jsonl` and
//! model answers in the same form) and the hidden tests (spec §1).
//!
//! Errors name the file, the 1-based line and the field. The loader checks what the harness
//! checks (`example_id`, `python_version`, `library`, `version`, `problem`, `starting_code`,
//! `solution` are strings, `additional_dependencies` a string or null) plus the fields recode
//! uses (`test` for the visible run, `extra_dependencies` for the install); metadata fields are
//! kept when present and never required.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

/// Errors while loading GitChameleon data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid JSON.
    #[error("{}:{line}: invalid JSON: {source}", path.display())]
    Json {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's error (names the column).
        #[source]
        source: serde_json::Error,
    },
    /// A line is JSON but not an object.
    #[error("{}:{line}: not a JSON object", path.display())]
    NotObject {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A field of a record is missing or has a bad value.
    #[error("{}:{line}: {}", path.display(), field_message(field, problem))]
    Field {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The field.
        field: String,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// Two problems share an `example_id`.
    #[error("{}:{line}: field `example_id`: {id} already on line {first_line}", path.display())]
    DuplicateId {
        /// File.
        path: PathBuf,
        /// 1-based line of the second one.
        line: usize,
        /// The id.
        id: u64,
        /// Line of the first one.
        first_line: usize,
    },
    /// A solution names a problem the data set does not have.
    #[error("{}:{line}: field `example_id`: {id} is not a problem of {}", path.display(), dataset.display())]
    UnknownId {
        /// The solutions file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The id.
        id: u64,
        /// The data set's `dataset.jsonl`.
        dataset: PathBuf,
    },
    /// A solution record has no answer field.
    #[error("{}:{line}: none of the fields `answer`, `solution`, `output`", path.display())]
    NoAnswer {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A problem's hidden test file is missing.
    #[error("problem {id}: hidden test {path} is missing")]
    MissingTest {
        /// Problem id.
        id: u64,
        /// The expected file.
        path: PathBuf,
    },
}

/// What is wrong with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// The field is absent.
    Missing,
    /// The value has another JSON type.
    WrongType {
        /// What the field holds (`a string`, `a list`, …).
        expected: &'static str,
        /// The value found.
        got: String,
    },
    /// The value does not parse (`` `x1` is not an integer``).
    Invalid(String),
}

fn field_message(field: &str, problem: &FieldProblem) -> String {
    match problem {
        FieldProblem::Missing => format!("field `{field}` is missing"),
        FieldProblem::WrongType { expected, got } => {
            format!("field `{field}`: expected {expected}, got {got}")
        }
        FieldProblem::Invalid(why) => format!("field `{field}`: {why}"),
    }
}

/// A field and what is wrong with it (placed at its file and line by the caller).
type FieldError = (String, FieldProblem);

fn wrong_type(name: &str, expected: &'static str, got: &Value) -> FieldError {
    (
        name.to_string(),
        FieldProblem::WrongType {
            expected,
            got: got.to_string(),
        },
    )
}

fn field_err(path: &Path, line: usize) -> impl Fn(FieldError) -> DataError + '_ {
    move |(field, problem)| DataError::Field {
        path: path.to_path_buf(),
        line,
        field,
        problem,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One problem of `dataset.jsonl`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// `example_id` as the harness converts it (`int()`): names `sample_<id>` and
    /// `hidden_tests/test_sample_<id>.py`.
    pub id: u64,
    /// `"3.7"`, `"3.9"` or `"3.10"`: the environment's interpreter.
    pub python_version: String,
    /// The pinned package (`pip install <library>==<version>`).
    pub library: String,
    /// Its version, possibly short (`"2"`, `"1.13"`).
    pub version: String,
    /// Space-separated requirements installed with the library (null read as `""`); part of
    /// the environment key.
    pub additional_dependencies: String,
    /// More requirements appended at install time, NOT part of the key (`""` when absent).
    pub extra_dependencies: String,
    /// The task in natural language.
    pub problem: String,
    /// Imports and the signature the answer completes.
    pub starting_code: String,
    /// Reference body (`starting_code + solution` is the ground truth).
    pub solution: String,
    /// Short assert-style check: the visible run's test (empty when absent).
    pub test: String,
    /// Metadata: the kind of API change (empty when absent).
    pub type_of_change: String,
    /// Metadata: the API the problem targets (empty when absent).
    pub name_of_class_or_func: String,
    /// Metadata: documentation links.
    pub docs: Vec<String>,
    /// 1-based line in `dataset.jsonl`.
    pub line: usize,
}

impl Problem {
    /// The module name the tests import: `sample_<id>`.
    pub fn module(&self) -> String {
        format!("sample_{}", self.id)
    }

    /// `library==version`, the label used for selection and reports.
    pub fn pinned(&self) -> String {
        format!("{}=={}", self.library, self.version)
    }
}

/// A JSON object with its 1-based line number.
type Numbered = (usize, Map<String, Value>);

/// Reads a JSONL file into (line number, object) pairs, skipping blank lines.
fn read_objects(path: &Path) -> Result<Vec<Numbered>, DataError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (path, line_no) = (path.to_path_buf(), i + 1);
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push((line_no, m)),
            Ok(_) => {
                return Err(DataError::NotObject {
                    path,
                    line: line_no,
                })
            }
            Err(source) => {
                return Err(DataError::Json {
                    path,
                    line: line_no,
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Field access with errors naming the field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<String, FieldError> {
        match self.obj.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(wrong_type(name, "a string", v)),
            None => Err((name.to_string(), FieldProblem::Missing)),
        }
    }

    /// A string, `""` when absent or null.
    fn optional(&self, name: &str) -> Result<String, FieldError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(wrong_type(name, "a string or null", v)),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, FieldError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| wrong_type(name, "strings", v))
                })
                .collect(),
            Some(v) => Err(wrong_type(name, "a list", v)),
        }
    }

    /// `example_id`: a JSON string of digits, as the harness's validator requires.
    fn id(&self) -> Result<u64, FieldError> {
        let s = self.string("example_id")?;
        s.trim().parse::<u64>().map_err(|_| {
            (
                "example_id".to_string(),
                FieldProblem::Invalid(format!("`{s}` is not an integer")),
            )
        })
    }
}

fn parse_problem(obj: &Map<String, Value>, line: usize) -> Result<Problem, FieldError> {
    let f = Fields { obj };
    let python_version = f.string("python_version")?;
    if !matches!(python_version.split('.').collect::<Vec<_>>()[..], [a, b] if a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
    {
        return Err((
            "python_version".to_string(),
            FieldProblem::Invalid(format!("`{python_version}` is not MAJOR.MINOR")),
        ));
    }
    Ok(Problem {
        id: f.id()?,
        python_version,
        library: f.string("library")?,
        version: f.string("version")?,
        additional_dependencies: f.optional("additional_dependencies")?,
        extra_dependencies: f.optional("extra_dependencies")?,
        problem: f.string("problem")?,
        starting_code: f.string("starting_code")?,
        solution: f.string("solution")?,
        test: f.optional("test")?,
        type_of_change: f.optional("type_of_change")?,
        name_of_class_or_func: f.optional("name_of_class_or_func")?,
        docs: f.strings("docs")?,
        line,
    })
}

/// The benchmark's files: `dataset.jsonl`, `ground_truth_solutions.jsonl`, `hidden_tests/`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data directory.
    pub dir: PathBuf,
    /// Problems in file order.
    pub problems: Vec<Problem>,
}

impl Dataset {
    /// Loads `dir/dataset.jsonl`; a duplicate `example_id` is an error naming both lines.
    pub fn load(dir: &Path) -> Result<Dataset, DataError> {
        let path = dir.join("dataset.jsonl");
        let mut problems = Vec::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (line, obj) in read_objects(&path)? {
            let p = parse_problem(&obj, line).map_err(field_err(&path, line))?;
            if let Some(first_line) = seen.insert(p.id, line) {
                return Err(DataError::DuplicateId {
                    path: path.clone(),
                    line,
                    id: p.id,
                    first_line,
                });
            }
            problems.push(p);
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            problems,
        })
    }

    /// The problem with this id.
    pub fn get(&self, id: u64) -> Option<&Problem> {
        self.problems.iter().find(|p| p.id == id)
    }

    /// Path of a problem's hidden test: `hidden_tests/test_sample_<id>.py`.
    pub fn hidden_test_path(&self, id: u64) -> PathBuf {
        self.dir
            .join("hidden_tests")
            .join(format!("test_sample_{id}.py"))
    }

    /// The text of a problem's hidden test.
    pub fn hidden_test(&self, id: u64) -> Result<String, DataError> {
        let path = self.hidden_test_path(id);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DataError::MissingTest { id, path })
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The ground truth (`ground_truth_solutions.jsonl`), checked against the dataset.
    pub fn ground_truth(&self) -> Result<Vec<Solution>, DataError> {
        load_solutions(&self.dir.join("ground_truth_solutions.jsonl"), self)
    }
}

/// One line of a solution file: the code to score for a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Solution {
    /// Problem id.
    pub id: u64,
    /// The text under the first present key of `answer`, `solution`, `output`.
    pub text: String,
    /// 1-based line in the file.
    pub line: usize,
}

/// Reads a solution file as the harness does: `example_id` must be a JSON string naming a
/// problem of `data`, the text is under the first present key of `answer`, `solution`,
/// `output`; duplicate lines are kept (each is scored).
pub fn load_solutions(path: &Path, data: &Dataset) -> Result<Vec<Solution>, DataError> {
    let known: BTreeMap<u64, ()> = data.problems.iter().map(|p| (p.id, ())).collect();
    let mut out = Vec::new();
    for (line, obj) in read_objects(path)? {
        let f = Fields { obj: &obj };
        let id = f.id().map_err(field_err(path, line))?;
        if !known.contains_key(&id) {
            return Err(DataError::UnknownId {
                path: path.to_path_buf(),
                line,
                id,
                dataset: data.dir.join("dataset.jsonl"),
            });
        }
        let key = ["answer", "solution", "output"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .ok_or_else(|| DataError::NoAnswer {
                path: path.to_path_buf(),
                line,
            })?;
        let text = f.string(key).map_err(field_err(path, line))?;
        out.push(Solution { id, text, line });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, extra: &str) -> String {
        format!(
            r#"{{"example_id": "{id}", "python_version": "3.10", "library": "scipy", "version": "1.9.2", "additional_dependencies": null, "problem": "p", "starting_code": "import scipy\n", "solution": "x = 1", "test": "assert x == 1"{extra}}}"#
        )
    }

    fn write_data(lines: &[String]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dataset.jsonl"), lines.join("\n") + "\n").unwrap();
        dir
    }

    #[test]
    fn loads_and_defaults() {
        let dir = write_data(&[row("7", r#", "extra_dependencies": "joblib==0.14""#)]);
        let d = Dataset::load(dir.path()).unwrap();
        let p = &d.problems[0];
        assert_eq!((p.id, p.line), (7, 1));
        assert_eq!(p.additional_dependencies, "");
        assert_eq!(p.extra_dependencies, "joblib==0.14");
        assert_eq!(p.module(), "sample_7");
        assert_eq!(p.pinned(), "scipy==1.9.2");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = row("1", "").replace(r#""library": "scipy""#, r#""library": 3"#);
        let dir = write_data(&[row("0", ""), bad]);
        assert!(matches!(
            Dataset::load(dir.path()).unwrap_err(),
            DataError::Field { line: 2, field, problem: FieldProblem::WrongType { .. }, .. }
                if field == "library"
        ));
        let e = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("dataset.jsonl:2:") && e.contains("`library`"),
            "{e}"
        );
        let dir = write_data(&[row("0", ""), row("0", "")]);
        let e = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("already on line 1"), "{e}");
        let dir = write_data(&[row("x1", "")]);
        let e = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`example_id`"), "{e}");
        let missing = row("0", "").replace(r#""problem": "p", "#, "");
        let dir = write_data(&[missing]);
        let e = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`problem` is missing"), "{e}");
    }

    #[test]
    fn solutions_follow_the_harness() {
        let dir = write_data(&[row("3", "")]);
        let d = Dataset::load(dir.path()).unwrap();
        let sol = dir.path().join("s.jsonl");
        std::fs::write(
            &sol,
            "{\"example_id\": \"3\", \"output\": \"o\", \"answer\": \"a\"}\n\
             {\"example_id\": \"3\", \"solution\": \"s\"}\n",
        )
        .unwrap();
        let s = load_solutions(&sol, &d).unwrap();
        assert_eq!(s.len(), 2, "duplicates are each kept");
        assert_eq!((s[0].text.as_str(), s[1].text.as_str()), ("a", "s"));
        std::fs::write(&sol, "{\"example_id\": 3, \"answer\": \"a\"}\n").unwrap();
        let e = load_solutions(&sol, &d).unwrap_err().to_string();
        assert!(
            e.contains("s.jsonl:1:") && e.contains("expected a string"),
            "{e}"
        );
        std::fs::write(&sol, "{\"example_id\": \"4\", \"answer\": \"a\"}\n").unwrap();
        let e = load_solutions(&sol, &d).unwrap_err().to_string();
        assert!(e.contains("4 is not a problem"), "{e}");
    }
}
