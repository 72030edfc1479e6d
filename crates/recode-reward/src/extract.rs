//! Extraction of the answer's code block from a completion.

use crate::pyspace::py_strip;
use crate::Mode;
use memchr::memmem;

/// Returns the code block the reward scores, stripped, or `None` when there is none.
///
/// * Paper: the first `` ```python\n … \n``` `` anywhere in the completion, shortest body
///   (`re.findall(r"```python\n(.*?)\n```", s, re.S)[0].strip()`), even inside `<think>`.
/// * Fixed: the same fence searched after the last `<answer>` when there is one (else the
///   whole text); the opening line may be `` ```python `` or `` ```py `` with trailing spaces
///   and `\r\n`; the closing fence must start a line (indentation allowed).
///
/// ```
/// use recode_reward::{extract_code_block, Mode};
/// let c = "plan\n```python\nold()\n```\n</think>\n<answer>```python\nnew()\n```</answer>";
/// assert_eq!(extract_code_block(c, Mode::Paper), Some("old()"));
/// assert_eq!(extract_code_block(c, Mode::Fixed), Some("new()"));
/// ```
pub fn extract_code_block(completion: &str, mode: Mode) -> Option<&str> {
    match mode {
        Mode::Paper => extract_paper(completion),
        Mode::Fixed => extract_fixed(completion),
    }
}

fn extract_paper(s: &str) -> Option<&str> {
    const OPEN: &str = "```python\n";
    let start = memmem::find(s.as_bytes(), OPEN.as_bytes())? + OPEN.len();
    let end = memmem::find(&s.as_bytes()[start..], b"\n```")? + start;
    Some(py_strip(&s[start..end]))
}

fn extract_fixed(s: &str) -> Option<&str> {
    let region_start = s.rfind("<answer>").map_or(0, |p| p + "<answer>".len());
    let region = &s[region_start..];
    let mut search = 0;
    while let Some(rel) = region[search..].find("```py") {
        let fence = search + rel;
        let after = &region[fence + 5..];
        let after = after.strip_prefix("thon").unwrap_or(after);
        let rest = after.trim_start_matches([' ', '\t']);
        let body_start = rest
            .strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .map(|b| region.len() - b.len());
        search = fence + 5;
        let Some(body_start) = body_start else {
            continue;
        };
        let body = &region[body_start..];
        let mut line_start = 0;
        for line in body.split_inclusive('\n') {
            if line.trim_start_matches([' ', '\t']).starts_with("```") {
                let code = &body[..line_start];
                let code = code.trim_end_matches(crate::pyspace::is_py_space);
                return Some(code.trim_start_matches(['\n', '\r']));
            }
            line_start += line.len();
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_shortest_first() {
        assert_eq!(
            extract_paper("```python\na\n```\n```python\nb\n```"),
            Some("a")
        );
        assert_eq!(extract_paper("```python\n```"), None);
        assert_eq!(extract_paper("```python\n\n```"), Some(""));
        assert_eq!(extract_paper("```python\n  x\n```"), Some("x"));
        assert_eq!(extract_paper("```python x\n```"), None);
    }

    #[test]
    fn fixed_answer_region() {
        assert_eq!(extract_fixed("```py  \r\nx = 1\r\n```"), Some("x = 1"));
        assert_eq!(extract_fixed("```python\n    x\n    ```\n"), Some("    x"));
        assert_eq!(
            extract_fixed("```python\nx = '```'\n```"),
            Some("x = '```'")
        );
        assert_eq!(extract_fixed("```python\nx\n"), None);
    }
}
