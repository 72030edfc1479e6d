//! The format reward: `<think>` reasoning `</think>` then one `<answer> … </answer>` at the end.

use crate::pyspace::is_py_space;
use crate::Mode;

/// True when the completion (with `<think>` prepended, as the prompt ends with it) has the
/// required shape.
///
/// * Paper: `re.search(r"^<think>([^<]*(?:<(?!/?think>)[^<]*)*)<\/think>\s*<answer>([\s\S]*?)<\/answer>\s*$", "<think>" + c, re.S)`:
///   the reasoning runs to the first `</think>` and must not contain `<think>`; the answer
///   body may contain anything, including more `<answer>`/`</answer>`/`<think>` tags.
///   `\s` is Python's whitespace.
/// * Fixed: same, but the answer body must not contain `<answer>`, `</answer>`, `<think>`
///   or `</think>`, so exactly one answer follows the reasoning.
///
/// ```
/// use recode_reward::{format_ok, Mode};
/// let c = " plan </think>\n<answer>a</answer><answer>b</answer>";
/// assert!(format_ok(c, Mode::Paper));
/// assert!(!format_ok(c, Mode::Fixed));
/// ```
pub fn format_ok(completion: &str, mode: Mode) -> bool {
    // The reasoning is everything before the first `</think>` of the completion.
    let Some(close) = completion.find("</think>") else {
        return false;
    };
    if completion[..close].contains("<think>") {
        return false;
    }
    let after = completion[close + "</think>".len()..].trim_start_matches(is_py_space);
    let Some(body_and_tail) = after.strip_prefix("<answer>") else {
        return false;
    };
    // `[\s\S]*?</answer>\s*$`: some `</answer>` followed only by whitespace; the last one is
    // the only candidate (text after any other one contains that last tag).
    let tail = body_and_tail.trim_end_matches(is_py_space);
    let Some(body) = tail.strip_suffix("</answer>") else {
        return false;
    };
    match mode {
        Mode::Paper => true,
        Mode::Fixed => !["<answer>", "</answer>", "<think>", "</think>"]
            .iter()
            .any(|t| body.contains(t)),
    }
}

/// The format reward: +1 when [`format_ok`], else −1.
pub fn format_reward(completion: &str, mode: Mode) -> f64 {
    if format_ok(completion, mode) {
        1.0
    } else {
        -1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let p = Mode::Paper;
        assert!(format_ok("r</think><answer>x</answer>", p));
        assert!(format_ok("r</think> \n<answer></answer>\n\u{1c}", p));
        assert!(!format_ok("r</think>x<answer>x</answer>", p));
        assert!(!format_ok("<think>r</think><answer>x</answer>", p));
        assert!(!format_ok("r</think><answer>x</answer>y", p));
        assert!(!format_ok("r<answer>x</answer>", p));
        assert!(format_ok("a<b>c</think><answer>x</answer>", p));
        assert!(format_ok("r</think><answer>x</think></answer>", p));
        assert!(!format_ok(
            "r</think><answer>x</think></answer>",
            Mode::Fixed
        ));
    }
}
