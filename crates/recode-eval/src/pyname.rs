//! The harness's test-name rule (doc §1), with a real Python parser (ruff_python_parser).
//!
//! The original parses the piece with Python's `ast`, drops imports, re-prints the tree and
//! collects `def NAME(` hits (case-insensitive): exactly one hit is the name. In the re-printed
//! text such hits come from function definitions (nested and `async` ones included) and from
//! string literals that contain `def NAME(`; comments are gone. We count exactly those two
//! sources on ruff's AST instead of re-printing, so no Python is needed to load data.
//! Parsing targets Python 3.11 (the benchmark's interpreter): syntax newer than that counts as
//! unparsable. `python/tests/test_eval_names.py` checks this against Python's own `ast` on the
//! whole development file.

use std::sync::LazyLock;

use regex::Regex;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{PythonVersion, Stmt, StringLiteral};
use ruff_python_parser::{parse, Mode, ParseOptions};

static DEF_IN_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)def +([A-Za-z_][A-Za-z0-9_]*)\(").expect("static regex"));

struct DefCollector {
    names: Vec<String>,
}

impl<'a> Visitor<'a> for DefCollector {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(_) | Stmt::ImportFrom(_) => return,
            Stmt::FunctionDef(f) => self.names.push(f.name.id.to_string()),
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_string_literal(&mut self, s: &'a StringLiteral) {
        for cap in DEF_IN_TEXT.captures_iter(&s.value) {
            self.names.push(cap[1].to_string());
        }
    }
}

/// The name after the only `def` of a Python source; `None` if unparsable or not unique.
pub fn test_name(source: &str) -> Option<String> {
    let options = ParseOptions::from(Mode::Module).with_target_version(PythonVersion::PY311);
    let parsed = parse(source, options).ok()?;
    if !parsed.unsupported_syntax_errors().is_empty() {
        return None;
    }
    let module = parsed.into_syntax();
    let module = module.as_module()?;
    let mut collector = DefCollector { names: Vec::new() };
    collector.visit_body(&module.body);
    if collector.names.len() == 1 {
        collector.names.pop()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::test_name;

    #[test]
    fn names() {
        assert_eq!(test_name("def test_a():\n    pass"), Some("test_a".into()));
        assert_eq!(
            test_name("# comment def nope(\nimport os\ndef t():\n    pass\n"),
            Some("t".into())
        );
        assert_eq!(test_name("    x = 1\n"), None, "indentation error");
        assert_eq!(test_name("# only a comment"), None);
        assert_eq!(test_name("def a():\n    def b():\n        pass"), None);
        assert_eq!(test_name("async def a():\n    pass"), Some("a".into()));
        assert_eq!(test_name("def a():\n    s = 'DEF b('"), None);
        assert_eq!(test_name("def a[T](x):\n    pass"), None, "3.12 syntax");
    }
}
