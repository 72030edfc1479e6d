//! Static checks before any run: both snippets parse, they differ after normalisation, and
//! each uses the API its change is about (the off-target check, on the AST).

use std::collections::BTreeSet;

use recode_reward::{is_valid_python, normalize_code, Mode};
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Keyword, Stmt};
use ruff_python_parser::{parse, Mode as ParseMode, ParseOptions};

use crate::diff::ChangeRef;

/// A static rejection: reason and evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticReject {
    /// `syntax`, `identical` or `off_target`.
    pub reason: &'static str,
    /// What was found.
    pub evidence: String,
}

/// Identifiers a snippet uses: names, attribute names, imported modules and names (every
/// dotted part), keyword-argument names.
pub fn identifiers(code: &str) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl<'a> Visitor<'a> for Names {
        fn visit_stmt(&mut self, stmt: &'a Stmt) {
            match stmt {
                Stmt::Import(i) => {
                    for a in &i.names {
                        self.0.extend(a.name.id.split('.').map(str::to_string));
                    }
                }
                Stmt::ImportFrom(i) => {
                    if let Some(m) = &i.module {
                        self.0.extend(m.id.split('.').map(str::to_string));
                    }
                    for a in &i.names {
                        self.0.insert(a.name.id.to_string());
                    }
                }
                _ => {}
            }
            visitor::walk_stmt(self, stmt);
        }
        fn visit_expr(&mut self, expr: &'a Expr) {
            match expr {
                Expr::Name(n) => {
                    self.0.insert(n.id.to_string());
                }
                Expr::Attribute(a) => {
                    self.0.insert(a.attr.id.to_string());
                }
                _ => {}
            }
            visitor::walk_expr(self, expr);
        }
        fn visit_keyword(&mut self, k: &'a Keyword) {
            if let Some(arg) = &k.arg {
                self.0.insert(arg.id.to_string());
            }
            visitor::walk_keyword(self, k);
        }
    }
    let Ok(parsed) = parse(code, ParseOptions::from(ParseMode::Module)) else {
        return BTreeSet::new();
    };
    let mut names = Names(BTreeSet::new());
    if let Some(module) = parsed.syntax().as_module() {
        for stmt in &module.body {
            names.visit_stmt(stmt);
        }
    }
    names.0
}

/// Runs the static checks; `None` when the pair may go on to the runs.
pub fn static_checks(
    old_code: &str,
    new_code: &str,
    change_id: Option<&str>,
) -> Option<StaticReject> {
    for (side, code) in [("old_code", old_code), ("new_code", new_code)] {
        if !is_valid_python(code) {
            return Some(StaticReject {
                reason: "syntax",
                evidence: format!("{side} does not parse as Python 3"),
            });
        }
    }
    if normalize_code(old_code, Mode::Fixed) == normalize_code(new_code, Mode::Fixed) {
        return Some(StaticReject {
            reason: "identical",
            evidence: "old_code and new_code are equal after normalisation".into(),
        });
    }
    let change = change_id.and_then(ChangeRef::parse)?;
    let (old_names, new_names) = change.required_names();
    for (side, code, names) in [
        ("old_code", old_code, old_names),
        ("new_code", new_code, new_names),
    ] {
        let used = identifiers(code);
        if let Some(missing) = names.iter().find(|n| !used.contains(*n)) {
            return Some(StaticReject {
                reason: "off_target",
                evidence: format!(
                    "{side} does not use `{missing}` ({} {})",
                    change.kind, change.symbol
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_cover_imports_attributes_and_keywords() {
        let ids = identifiers("import a.b as c\nfrom x.y import z\nprint(c.attr(k=1), z)\n");
        for n in ["a", "b", "c", "x", "y", "z", "attr", "k", "print"] {
            assert!(ids.contains(n), "{n} in {ids:?}");
        }
    }

    #[test]
    fn checks_in_order() {
        assert_eq!(
            static_checks("x = (", "x = 1", None).unwrap().reason,
            "syntax"
        );
        assert_eq!(
            static_checks("x = 1  # a", "x = 1", None).unwrap().reason,
            "identical"
        );
        let id = "packaging@21.3..22.0:param_added:packaging.utils.canonicalize_version:strip_trailing_zero";
        let old =
            "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0'))";
        let on = "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0', strip_trailing_zero=False))";
        assert!(static_checks(old, on, Some(id)).is_none());
        let off = "from packaging.utils import canonicalize_version\nprint(canonicalize_version('1.0.0'))";
        let r = static_checks(old, off, Some(id)).unwrap();
        assert_eq!(r.reason, "off_target");
        assert!(r.evidence.contains("strip_trailing_zero"), "{r:?}");
        // An id that is not recode's format skips the off-target check.
        assert!(static_checks(old, off, Some("my-own-id")).is_none());
    }

    #[test]
    fn renames_need_the_old_name_in_old_code_and_the_new_in_new_code() {
        let id = "click@7.1.2..8.1.7:renamed:click.core.MultiCommand.resultcallback>click.core.MultiCommand.result_callback";
        let old = "import click\n@click.group()\ndef cli(): pass\n@cli.resultcallback()\ndef done(r): pass\n";
        let new = old.replace("resultcallback", "result_callback");
        assert!(static_checks(old, &new, Some(id)).is_none());
        assert_eq!(
            static_checks(&new, old, Some(id)).unwrap().reason,
            "off_target"
        );
    }
}
