//! Edit-script similarity: scores the *change* an answer makes to the old code against the
//! change the reference makes, instead of the answer's text against the reference's text.
//!
//! Why: in API-update data the new code is usually the old code with a few lines changed, so
//! ES* gives an unchanged copy of the input nearly full marks, and a policy trained on it can
//! learn to copy rather than migrate. Here a copy has an empty edit script and scores like any
//! answer with nothing right (similarity 0), while a correct migration still scores +2.
//! Not part of the paper's reward: select it explicitly (component `edit_es_star`).

use crate::levenshtein::levenshtein_chars;
use crate::{answer_code, es_star_from, normalize_code, Mode, PreparedTarget};

/// The line-level edit script turning `from` into `to`: one line per removed line (`-` + line)
/// and per added line (`+` + line), in order, from a longest common subsequence of lines.
/// Equal texts give the empty script.
pub fn line_edit_script(from: &str, to: &str) -> String {
    let a: Vec<&str> = from.lines().collect();
    let b: Vec<&str> = to.lines().collect();
    let mut out = String::new();
    for op in line_ops(&a, &b) {
        let (sign, line) = match op {
            LineOp::Remove(i) => ('-', a[i]),
            LineOp::Add(j) => ('+', b[j]),
        };
        out.push(sign);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One step of a line edit script: remove line `i` of the old text or add line `j` of the new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineOp {
    Remove(usize),
    Add(usize),
}

/// A minimal list of removals and additions (every other line kept), from a longest common
/// subsequence; ties prefer removing first.
fn line_ops(a: &[&str], b: &[&str]) -> Vec<LineOp> {
    // lcs[i][j] = LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            ops.push(LineOp::Remove(i));
            i += 1;
        } else {
            ops.push(LineOp::Add(j));
            j += 1;
        }
    }
    ops.extend((i..a.len()).map(LineOp::Remove));
    ops.extend((j..b.len()).map(LineOp::Add));
    ops
}

/// The old code and reference normalised once, to score many completions' edits.
#[derive(Clone, Debug)]
pub struct PreparedEdit {
    mode: Mode,
    old: String,
    target: String,
    target_script: Vec<char>,
}

/// An answer's edit score and the facts behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EditScore {
    /// −2 without a valid block; +2 on an exact match; else 3.5·`similarity` − 1.5.
    pub edit_es_star: f64,
    /// Edit similarity of the two edit scripts in [0, 1] (0 without a valid block).
    pub similarity: f64,
    /// The answer's normalised code equals the normalised old code (nothing was changed).
    pub unchanged: bool,
}

impl PreparedEdit {
    /// Normalises `old_code` for the mode of `target`, whose normalised text it reuses.
    pub fn new(old_code: &str, target: &PreparedTarget) -> Self {
        let mode = target.mode;
        let old = normalize_code(old_code, mode);
        let target = target.normalized().to_string();
        let target_script = line_edit_script(&old, &target).chars().collect();
        PreparedEdit {
            mode,
            old,
            target,
            target_script,
        }
    }

    /// True when an answer's normalised code is the old code as given (nothing was changed).
    pub fn is_unchanged(&self, code: &str) -> bool {
        code == self.old
    }

    /// Scores the edit of one completion (the text after the assistant prefix).
    pub fn score(&self, completion: &str) -> EditScore {
        self.score_code(answer_code(completion, self.mode).ok().as_deref())
    }

    /// Scores the edit of an answer's normalised code (`None`: no block, or it does not parse),
    /// e.g. the code [`PreparedTarget::score_with_code`] returned.
    pub fn score_code(&self, code: Option<&str>) -> EditScore {
        let Some(code) = code else {
            return EditScore {
                edit_es_star: -2.0,
                similarity: 0.0,
                unchanged: false,
            };
        };
        let unchanged = self.is_unchanged(code);
        if code == self.target {
            return EditScore {
                edit_es_star: 2.0,
                similarity: 1.0,
                unchanged,
            };
        }
        let script: Vec<char> = line_edit_script(&self.old, code).chars().collect();
        let max_len = script.len().max(self.target_script.len());
        let (similarity, edit_es_star) =
            es_star_from(levenshtein_chars(&script, &self.target_script), max_len);
        EditScore {
            edit_es_star,
            similarity,
            unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str) -> String {
        format!(" plan </think>\n<answer>\n```python\n{code}\n```\n</answer>")
    }

    /// Minimal number of line insertions + deletions, by plain recursion (an independent
    /// reference for the DP; exponential, so tiny inputs only).
    fn min_edits(a: &[&str], b: &[&str]) -> usize {
        match (a.split_first(), b.split_first()) {
            (None, _) => b.len(),
            (_, None) => a.len(),
            (Some((x, ra)), Some((y, rb))) if x == y => min_edits(ra, rb),
            (Some((_, ra)), Some((_, rb))) => (1 + min_edits(ra, b)).min(1 + min_edits(a, rb)),
        }
    }

    #[test]
    fn scripts_are_minimal_and_rebuild_the_target() {
        let lines = ["a", "b", "c", "x = 1", "y"];
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..400 {
            let (na, nb) = (next() % 7, next() % 7);
            let a: Vec<&str> = (0..na).map(|_| lines[next() % 5]).collect();
            let b: Vec<&str> = (0..nb).map(|_| lines[next() % 5]).collect();
            let ops = line_ops(&a, &b);
            assert_eq!(ops.len(), min_edits(&a, &b), "{a:?} -> {b:?}");
            // What is neither removed nor added is the same sequence on both sides.
            let lines_of = |removals: bool| -> Vec<usize> {
                ops.iter()
                    .filter_map(|o| match (o, removals) {
                        (LineOp::Remove(k), true) | (LineOp::Add(k), false) => Some(*k),
                        _ => None,
                    })
                    .collect()
            };
            let (removed, added) = (lines_of(true), lines_of(false));
            let kept = |xs: &[&str], drop: &[usize]| -> Vec<String> {
                (0..xs.len())
                    .filter(|k| !drop.contains(k))
                    .map(|k| xs[k].to_string())
                    .collect()
            };
            assert_eq!(
                kept(&a, &removed),
                kept(&b, &added),
                "{a:?} -> {b:?}: {ops:?}"
            );
            let script = line_edit_script(&a.join("\n"), &b.join("\n"));
            assert_eq!(script.lines().count(), ops.len());
        }
        assert_eq!(line_edit_script("x\ny", "x\ny"), "");
        assert_eq!(line_edit_script("x\ny", "x\nz"), "-y\n+z\n");
    }

    #[test]
    fn a_copy_of_the_old_code_scores_like_nothing_right() {
        let old = "import pandas as pd\ndf = df.append(other)\nprint(df)\n";
        let new = "import pandas as pd\ndf = pd.concat([df, other])\nprint(df)\n";
        for mode in [Mode::Paper, Mode::Fixed] {
            let e = PreparedEdit::new(old, &PreparedTarget::new(new, mode));
            let copy = e.score(&answer(old));
            assert!(copy.unchanged);
            assert_eq!((copy.similarity, copy.edit_es_star), (0.0, -1.5));
            // ES* nearly rewards the copy in full; the edit score does not.
            assert!(crate::score(&answer(old), new, mode).es_star > 1.0);
            let exact = e.score(&answer(new));
            assert_eq!((exact.edit_es_star, exact.unchanged), (2.0, false));
            // A migration with one character wrong is close to +2.
            let near = e.score(&answer(&new.replace("other]", "othr]")));
            assert!(
                near.edit_es_star > 1.5 && near.edit_es_star < 2.0,
                "{near:?}"
            );
            // No block, or a syntax error: −2.
            assert_eq!(
                e.score(" x </think><answer>none</answer>").edit_es_star,
                -2.0
            );
            assert_eq!(e.score(&answer("df = (")).edit_es_star, -2.0);
        }
    }

    #[test]
    fn similarity_is_edit_distance_of_the_scripts() {
        let old = "a = f(1)\nb = 2\n";
        let new = "a = g(1)\nb = 2\n";
        let wrong = "a = h(1)\nb = 2\n";
        let e = PreparedEdit::new(old, &PreparedTarget::new(new, Mode::Fixed));
        let s = e.score(&answer(wrong));
        let (x, y) = ("-a = f(1)\n+a = h(1)\n", "-a = f(1)\n+a = g(1)\n");
        let d = crate::levenshtein(x, y) as f64;
        let expect = 1.0 - d / x.chars().count().max(y.chars().count()) as f64;
        assert!((s.similarity - expect).abs() < 1e-15, "{s:?} vs {expect}");
        assert!((s.edit_es_star - (3.5 * expect - 1.5)).abs() < 1e-12);
    }
}
