//! The GitChameleon prompt (the harness has none, spec §3.5) and its code extraction (§1).
//!
//! The prompt is fixed: recode's choice, documented here and in the README so that runs stay
//! comparable. One user turn (no system turn, no assistant prefix):
//!
//! ````text
//! Library: {library}=={version}, Python {python_version}.
//! Problem: {problem}
//! [Documentation: {docs, comma-separated}]        (only with `with_docs`)
//!
//! Complete the code below so that it works with exactly this version of {library}. Reply with
//! the complete Python module (the imports and the completed function, nothing else) in one
//! ```python code block.
//!
//! ```python
//! {starting_code}
//! ```
//! ````
//!
//! The answer must be a whole module because the harness runs the extracted code as
//! `sample_<id>.py` without prepending the starting code.

use std::sync::OnceLock;

use recode_data::ChatMessage;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::data::Problem;

/// The user turn for `p` (see the module docs); `with_docs` adds the documentation links.
pub fn user_prompt(p: &Problem, with_docs: bool) -> String {
    let mut s = format!(
        "Library: {}=={}, Python {}.\nProblem: {}\n",
        p.library,
        p.version,
        p.python_version,
        p.problem.trim()
    );
    if with_docs && !p.docs.is_empty() {
        s.push_str(&format!("Documentation: {}\n", p.docs.join(", ")));
    }
    s.push_str(&format!(
        "\nComplete the code below so that it works with exactly this version of {}. Reply with \
         the complete Python module (the imports and the completed function, nothing else) in \
         one ```python code block.\n\n```python\n{}\n```\n",
        p.library,
        p.starting_code.trim_end()
    ));
    s
}

/// The chat messages for `p`.
pub fn messages(p: &Problem, with_docs: bool) -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", user_prompt(p, with_docs))]
}

/// Where the scored code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSource {
    /// The body of the first ```` ```python ```` fence.
    Fence,
    /// No such fence: the whole text (the harness's fallback).
    Whole,
}

/// The harness's extraction: the text captured by the first match of
/// ```` ```python(.*?)``` ```` (newline after `python` included), else the whole text. Only the
/// exact ```` ```python ```` opener counts (spec §1 ⚠).
pub fn extract_code(text: &str) -> (String, CodeSource) {
    static FENCE: OnceLock<Regex> = OnceLock::new();
    let re = FENCE.get_or_init(|| Regex::new(r"(?s)```python(.*?)```").expect("static regex"));
    match re.captures(text) {
        Some(c) => (c[1].to_string(), CodeSource::Fence),
        None => (text.to_string(), CodeSource::Whole),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_is_the_harness_rule() {
        let t = "x\n```python\nimport a\n```\n```python\nb\n```";
        assert_eq!(extract_code(t), ("\nimport a\n".into(), CodeSource::Fence));
        // Other openers are not recognised: the whole text, fences included, is the code.
        for t in ["```py\na\n```", "```Python\na\n```", "```\na\n```", "pass"] {
            assert_eq!(extract_code(t), (t.to_string(), CodeSource::Whole));
        }
        // An unclosed fence does not match either.
        assert_eq!(extract_code("```python\na").1, CodeSource::Whole);
    }

    #[test]
    fn prompt_carries_the_pin_and_the_starting_code() {
        let p = Problem {
            id: 3,
            python_version: "3.10".into(),
            library: "scipy".into(),
            version: "1.9.2".into(),
            additional_dependencies: String::new(),
            extra_dependencies: String::new(),
            problem: "Compute it. ".into(),
            starting_code: "import scipy\ndef f(x):\n".into(),
            solution: String::new(),
            test: String::new(),
            type_of_change: String::new(),
            name_of_class_or_func: String::new(),
            docs: vec!["https://d".into()],
            line: 1,
        };
        let u = user_prompt(&p, false);
        assert!(u.starts_with("Library: scipy==1.9.2, Python 3.10.\nProblem: Compute it.\n"));
        assert!(
            u.ends_with("```python\nimport scipy\ndef f(x):\n```\n"),
            "{u}"
        );
        assert!(!u.contains("https://d"));
        assert!(user_prompt(&p, true).contains("Documentation: https://d\n"));
        assert_eq!(messages(&p, false)[0].role, "user");
    }
}
