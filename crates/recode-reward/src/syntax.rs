//! Python 3 syntax check with a real Python parser (`ruff_python_parser`), guarded so that
//! adversarial input (deep nesting, megabytes of operators) cannot exhaust memory or stack.
//!
//! The guard mirrors limits CPython itself enforces in `ast.parse`: more than 200 nested
//! brackets is CPython's "too many nested parentheses" error, more than 100 indentation levels
//! is "too many levels of indentation", and a NUL byte is rejected (CPython 3.11 raises
//! `ValueError`, 3.12+ `SyntaxError`). Chains of prefix operators deeper than
//! [`MAX_PREFIX_CHAIN`] are rejected too: CPython raises `RecursionError` far earlier (≈3000).

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::PythonVersion;
use ruff_python_parser::{parse_unchecked, Mode as ParseMode, ParseOptions};

/// CPython's tokenizer limit on nested `(`, `[`, `{` (`MAXLEVEL`).
pub const MAX_BRACKET_DEPTH: usize = 200;
/// CPython's tokenizer limit on indentation levels (`MAXINDENT`).
pub const MAX_INDENT_DEPTH: usize = 100;
/// Longest accepted run of operators that each open a nested expression without an operand
/// in between (unary `-`/`+`/`~`, `not`, `await`, `lambda`, `**`, ternary `if`/`else`).
pub const MAX_PREFIX_CHAIN: usize = 5000;

/// Python grammar version used for a syntax check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PyVersion {
    /// Python 3.11: the interpreter of the reference environment (no PEP 695/701 syntax).
    Py311,
    /// The newest grammar the parser knows (3.14 with ruff 0.0.20).
    Latest,
}

/// True when `code` parses as a Python 3 module (newest grammar), like `ast.parse(code)`.
///
/// ```
/// assert!(recode_reward::is_valid_python("match x:\n    case 1:\n        pass\n"));
/// assert!(!recode_reward::is_valid_python("def f(:\n"));
/// ```
pub fn is_valid_python(code: &str) -> bool {
    is_valid_python_version(code, PyVersion::Latest)
}

/// True when `code` parses as a Python module under the grammar of `version`.
pub fn is_valid_python_version(code: &str, version: PyVersion) -> bool {
    if !within_cpython_limits(code) {
        return false;
    }
    match version {
        PyVersion::Latest => {
            let parsed = parse_unchecked(code, ParseOptions::from(ParseMode::Module));
            parsed.has_valid_syntax()
        }
        PyVersion::Py311 => {
            let opts =
                ParseOptions::from(ParseMode::Module).with_target_version(PythonVersion::PY311);
            let parsed = parse_unchecked(code, opts);
            parsed.has_no_syntax_errors()
        }
    }
}

/// Token-level pre-check of the limits described in the module doc; lexing is iterative so it
/// is safe on any input.
fn within_cpython_limits(code: &str) -> bool {
    if code.as_bytes().contains(&0) {
        return false;
    }
    let mut lexer = ruff_python_parser::lexer::lex(code, ParseMode::Module);
    let mut brackets = 0usize;
    let mut indent = 0usize;
    let mut unary_run = 0usize;
    let mut line_nesting = 0usize;
    loop {
        let kind = lexer.next_token();
        match kind {
            TokenKind::EndOfFile => return true,
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                brackets += 1;
                if brackets > MAX_BRACKET_DEPTH {
                    return false;
                }
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                brackets = brackets.saturating_sub(1);
            }
            TokenKind::Indent => {
                indent += 1;
                if indent > MAX_INDENT_DEPTH {
                    return false;
                }
            }
            TokenKind::Dedent => indent = indent.saturating_sub(1),
            _ => {}
        }
        match kind {
            // Unary prefixes nest one level each until an operand appears.
            TokenKind::Minus
            | TokenKind::Plus
            | TokenKind::Tilde
            | TokenKind::Not
            | TokenKind::Await
            | TokenKind::Lambda
            | TokenKind::Colon => {
                unary_run += 1;
                if unary_run > MAX_PREFIX_CHAIN {
                    return false;
                }
            }
            TokenKind::Name
            | TokenKind::Int
            | TokenKind::Float
            | TokenKind::Complex
            | TokenKind::String
            | TokenKind::FStringEnd
            | TokenKind::Rpar
            | TokenKind::Rsqb
            | TokenKind::Rbrace => unary_run = 0,
            _ => {}
        }
        match kind {
            // Right-recursive constructs nest through their operands: count per logical line.
            TokenKind::If | TokenKind::Else | TokenKind::Lambda | TokenKind::DoubleStar => {
                line_nesting += 1;
                if line_nesting > MAX_PREFIX_CHAIN {
                    return false;
                }
            }
            TokenKind::Newline => {
                line_nesting = 0;
                unary_run = 0;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_grammar() {
        for ok in [
            "x = f\"{a!r:>{w}}\"\n",
            "match p:\n    case [1, *rest]:\n        pass\n    case _:\n        pass\n",
            "if (n := 10) > 5:\n    pass\n",
            "@dec\nasync def f():\n    async with a as b:\n        await b\n",
            "try:\n    pass\nexcept* ValueError:\n    pass\n",
            "",
            "lambda: (yield)\n",
        ] {
            assert!(is_valid_python(ok), "{ok:?}");
        }
        for bad in [
            "def f(:\n",
            "x = = 1",
            "f() = 1",
            "print 'x'",
            "a\0b",
            "  x = 1",
        ] {
            assert!(!is_valid_python(bad), "{bad:?}");
        }
    }

    #[test]
    fn version_specific() {
        let pep695 = "type X = int\n";
        assert!(is_valid_python_version(pep695, PyVersion::Latest));
        assert!(!is_valid_python_version(pep695, PyVersion::Py311));
    }

    #[test]
    fn limits() {
        let ok = format!("{}{}", "(".repeat(200), ")".repeat(200));
        assert!(is_valid_python(&ok));
        let deep = format!("{}{}", "(".repeat(201), ")".repeat(201));
        assert!(!is_valid_python(&deep));
        let unary = format!("{}1", "-".repeat(100_000));
        assert!(!is_valid_python(&unary));
        let list = format!("[{}]", "-1, ".repeat(50_000));
        assert!(is_valid_python(&list));
    }
}
