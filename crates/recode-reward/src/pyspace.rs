//! Python's notion of whitespace (`str.isspace`, `re`'s `\s`, `str.strip()`), which is wider
//! than Rust's `char::is_whitespace` (it includes U+001C..U+001F). Paper mode must use it to
//! be bit-compatible with the published Python reward.

/// True when Python's `str.isspace()` is true for this single character.
#[inline]
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | '\u{1C}'..='\u{1F}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Python's `s.strip()` with no argument.
#[inline]
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Length in bytes of the run of Python whitespace at the start of `s`.
#[inline]
pub fn py_space_prefix_len(s: &str) -> usize {
    s.find(|c: char| !is_py_space(c)).unwrap_or(s.len())
}
