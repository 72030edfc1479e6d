//! Code normalisation applied to both the extracted answer and the reference before EM*/ES*.
//!
//! * [`Mode::Paper`] reproduces the published `remove_comments_and_blank_lines` exactly,
//!   quirks included (see the crate docs), with linear-time algorithms instead of regex passes.
//! * [`Mode::Fixed`] uses a small Python tokenizer: comments are removed only outside string
//!   literals, strings are never touched, trailing whitespace and blank lines are dropped and
//!   the common indentation is removed.

use crate::pyspace::{is_py_space, py_strip};
use crate::Mode;
use memchr::memmem;

/// The placeholder stem the published code uses for hidden string literals.
const PLACEHOLDER: &str = "STRING_PLACEHOLDER_";

/// Normalises `code` for comparison, in the given mode.
///
/// ```
/// use recode_reward::{normalize_code, Mode};
/// let code = "x = 1  # set x\n\n\ny = 'a # b'\n";
/// assert_eq!(normalize_code(code, Mode::Paper), "x = 1  \ny = 'a # b'");
/// assert_eq!(normalize_code(code, Mode::Fixed), "x = 1\ny = 'a # b'");
/// ```
pub fn normalize_code(code: &str, mode: Mode) -> String {
    match mode {
        Mode::Paper => normalize_paper(code),
        Mode::Fixed => normalize_fixed(code),
    }
}

/// Paper mode: hide strings, delete comments, restore strings, collapse blank lines, strip.
fn normalize_paper(code: &str) -> String {
    let (hidden, strings) = hide_strings(code);
    let uncommented = delete_comments(&hidden);
    let restored = restore_strings(&uncommented, &strings, code.len());
    let collapsed = collapse_blank_lines(&restored);
    // The published code then runs `re.sub(r"^\s*$\n", "", ..., flags=re.M)`; after the
    // collapse and the strip no line start is followed by whitespace containing a newline,
    // so that pass never matches (checked by the parity tests) and is omitted.
    py_strip(&collapsed).to_string()
}

/// Finds `pat` in `hay` starting at byte `from`; returns the absolute start.
#[inline]
fn find_from(hay: &[u8], pat: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    memmem::find(&hay[from..], pat).map(|p| p + from)
}

/// The published string pass: `re.sub(r'(\'\'\'(.*?)\'\'\'|"""(.*?)"""|\'(.*?)\'|"(.*?)")',
/// placeholder, code, flags=re.DOTALL)`: no escapes, no prefixes, shortest match first.
/// Returns the text with `STRING_PLACEHOLDER_<i>` in place of the i-th literal, and the literals.
fn hide_strings(code: &str) -> (String, Vec<&str>) {
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut strings = Vec::new();
    // A failed search from position p fails from every later position too: remember it.
    let mut no_triple_from = [usize::MAX; 2];
    let mut no_single_from = [usize::MAX; 2];
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\'' && b != b'"' {
            i += 1;
            continue;
        }
        let q = usize::from(b == b'"');
        let quote = [b];
        let triple = [b, b, b];
        let mut end = None;
        if bytes[i..].starts_with(&triple) && i + 3 < no_triple_from[q] {
            match find_from(bytes, &triple, i + 3) {
                Some(j) => end = Some(j + 3),
                None => no_triple_from[q] = i + 3,
            }
        }
        if end.is_none() && i + 1 < no_single_from[q] {
            match find_from(bytes, &quote, i + 1) {
                Some(j) => end = Some(j + 1),
                None => no_single_from[q] = i + 1,
            }
        }
        match end {
            Some(e) => {
                out.push_str(&code[copied..i]);
                out.push_str(PLACEHOLDER);
                push_decimal(&mut out, strings.len());
                strings.push(&code[i..e]);
                copied = e;
                i = e;
            }
            None => i += 1,
        }
    }
    out.push_str(&code[copied..]);
    (out, strings)
}

fn push_decimal(out: &mut String, n: usize) {
    use std::fmt::Write;
    let _ = write!(out, "{n}");
}

/// The published comment pass: `re.sub(r'#.*?$|"""(.*?)"""|\'\'\'(.*?)\'\'\'', '', s,
/// flags=re.M | re.S)`: `#` up to the next `\n`, or a triple-quoted block.
fn delete_comments(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let end = match b {
            b'#' => Some(memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |p| p + i)),
            b'"' | b'\'' if bytes[i..].starts_with(&[b, b, b]) => {
                find_from(bytes, &[b, b, b], i + 3).map(|j| j + 3)
            }
            _ => None,
        };
        match end {
            Some(e) => {
                out.push_str(&s[copied..i]);
                copied = e;
                i = e;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// The published restore: `for i, orig in enumerate(strings): s = s.replace(f"STRING_PLACEHOLDER_{i}", orig)`.
///
/// Computed in one pass: an occurrence `STRING_PLACEHOLDER_<digits>` present from step `s`
/// on is replaced at the first step `t >= s` whose decimal is a prefix of `<digits>` (so
/// `_1` captures `_10`..`_19`), by the literal as it looks after steps `> t`, followed by the
/// unused digits. Literals are quoted at both ends, so replacements never create new
/// occurrences across their borders. Output is capped near `cap_hint * 8 + 1 MiB` bytes
/// (the published code would need exponential memory on adversarial input).
fn restore_strings(s: &str, strings: &[&str], cap_hint: usize) -> String {
    let finder = memmem::Finder::new(PLACEHOLDER);
    let cap = cap_hint.saturating_mul(8).saturating_add(1 << 20);
    // Literals that themselves contain the placeholder stem are expanded first, last to
    // first, each referring only to later literals (already expanded).
    let mut expanded: Vec<Option<String>> = vec![None; strings.len()];
    let mut total = 0usize;
    for t in (0..strings.len()).rev() {
        if total <= cap && finder.find(strings[t].as_bytes()).is_some() {
            let mut buf = String::new();
            expand_into(
                &mut buf,
                strings[t],
                t + 1,
                strings,
                &expanded,
                &finder,
                cap,
            );
            total += buf.len();
            expanded[t] = Some(buf);
        }
    }
    let mut out = String::with_capacity(s.len() + strings.iter().map(|x| x.len()).sum::<usize>());
    expand_into(&mut out, s, 0, strings, &expanded, &finder, cap);
    out
}

/// Appends `text` to `out` with placeholders replaced as described in [`restore_strings`],
/// for occurrences that appear at step `from`.
fn expand_into(
    out: &mut String,
    text: &str,
    from: usize,
    strings: &[&str],
    expanded: &[Option<String>],
    finder: &memmem::Finder<'_>,
    cap: usize,
) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut pos = 0;
    while let Some(rel) = finder.find(&bytes[pos..]) {
        let start = pos + rel;
        let digits_start = start + PLACEHOLDER.len();
        let digits_len = bytes[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let digits = &bytes[digits_start..digits_start + digits_len];
        pos = digits_start + digits_len;
        if let Some((t, used)) = first_step(digits, from, strings.len()) {
            if out.len() > cap {
                break;
            }
            out.push_str(&text[copied..start]);
            match &expanded[t] {
                Some(e) => out.push_str(e),
                None => out.push_str(strings[t]),
            }
            copied = digits_start + used;
        }
    }
    out.push_str(&text[copied..]);
}

/// The first replacement step `t` in `from..count` whose decimal form is a prefix of
/// `digits`, with the number of digits it consumes.
fn first_step(digits: &[u8], from: usize, count: usize) -> Option<(usize, usize)> {
    let first = *digits.first()?;
    if first == b'0' {
        return (from == 0 && count > 0).then_some((0, 1));
    }
    let mut value = 0usize;
    for (n, &d) in digits.iter().enumerate() {
        value = value.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        if value >= count {
            return None;
        }
        if value >= from {
            return Some((value, n + 1));
        }
    }
    None
}

/// `re.sub(r'\n\s*\n', '\n', s)`: a newline followed by a whitespace run that contains a
/// newline collapses, up to the last newline of the run, into one newline.
fn collapse_blank_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while let Some(rel) = memchr::memchr(b'\n', &bytes[i..]) {
        let nl = i + rel;
        let rest = &s[nl + 1..];
        let run = rest
            .char_indices()
            .find(|&(_, c)| !is_py_space(c))
            .map_or(rest.len(), |(p, _)| p);
        match rest[..run].rfind('\n') {
            Some(last) => {
                out.push_str(&s[copied..=nl]);
                copied = nl + 1 + last + 1;
                i = copied;
            }
            None => i = nl + 1 + run,
        }
        if i >= bytes.len() {
            break;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Fixed mode: tokenizer-aware comment removal, trailing whitespace and blank lines dropped,
/// common indentation removed; string literals are left as written.
fn normalize_fixed(code: &str) -> String {
    let uncommented = strip_comments_tokenized(code);
    let lines: Vec<&str> = uncommented
        .split('\n')
        .map(|l| l.trim_end_matches(is_py_space))
        .filter(|l| !l.is_empty())
        .collect();
    let indent = common_indent(&lines);
    let mut out = String::with_capacity(uncommented.len());
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&line[indent..]);
    }
    out
}

/// Length in bytes of the longest space/tab prefix shared by all lines.
fn common_indent(lines: &[&str]) -> usize {
    let Some(first) = lines.first() else {
        return 0;
    };
    let mut len = first.len() - first.trim_start_matches([' ', '\t']).len();
    for line in &lines[1..] {
        len = first.as_bytes()[..len]
            .iter()
            .zip(line.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
    }
    len
}

/// Removes `#` comments that are outside string literals; `\r\n` and `\r` become `\n`.
/// Strings are recognised with Python's rules: optional prefix, single or triple quotes,
/// backslash escapes (which also protect quotes in raw strings), single-quoted strings end
/// at an unescaped newline.
fn strip_comments_tokenized(code: &str) -> String {
    let code = if code.contains('\r') {
        std::borrow::Cow::Owned(code.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(code)
    };
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                out.push_str(&code[copied..i]);
                let end = memchr::memchr(b'\n', &bytes[i..]).map_or(bytes.len(), |p| p + i);
                copied = end;
                i = end;
            }
            q @ (b'\'' | b'"') => i = skip_string(bytes, i, q),
            _ => i += 1,
        }
    }
    out.push_str(&code[copied..]);
    out
}

/// Returns the byte index just after the string literal whose opening quote is at `start`.
fn skip_string(bytes: &[u8], start: usize, q: u8) -> usize {
    let triple = bytes[start..].starts_with(&[q, q, q]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' if !triple => return i,
            b if b == q => {
                if !triple {
                    return i + 1;
                }
                if bytes[i..].starts_with(&[q, q, q]) {
                    return i + 3;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_placeholder_collision() {
        // 11 literals: the 11th (index 10) is restored as literal 1 followed by "0".
        let code: String = (0..11).map(|i| format!("x{i} = '{i}'\n")).collect();
        let out = normalize_code(&code, Mode::Paper);
        assert!(out.ends_with("x10 = '1'0"), "{out}");
        assert_eq!(normalize_code(&code, Mode::Fixed), code.trim_end());
    }

    #[test]
    fn paper_quote_in_comment() {
        let code = "# don't\nx = 'a'\ny = 1";
        assert_eq!(normalize_code(code, Mode::Paper), "y = 1");
        assert_eq!(normalize_code(code, Mode::Fixed), "x = 'a'\ny = 1");
    }

    #[test]
    fn paper_keeps_docstrings() {
        let code = "def f():\n    \"\"\"Doc.\"\"\"\n    return 1\n";
        assert_eq!(normalize_code(code, Mode::Paper), code.trim());
    }

    #[test]
    fn collapse() {
        assert_eq!(collapse_blank_lines("a\n \n\t\n  b\n\nc"), "a\n  b\nc");
        assert_eq!(collapse_blank_lines("a\n  b"), "a\n  b");
        assert_eq!(collapse_blank_lines("\n\n"), "\n");
    }

    #[test]
    fn first_step_rules() {
        assert_eq!(first_step(b"10", 0, 11), Some((1, 1)));
        assert_eq!(first_step(b"10", 2, 11), Some((10, 2)));
        assert_eq!(first_step(b"05", 0, 11), Some((0, 1)));
        assert_eq!(first_step(b"05", 1, 11), None);
        assert_eq!(first_step(b"", 0, 11), None);
        assert_eq!(first_step(b"7", 0, 5), None);
    }
}
