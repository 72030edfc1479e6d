//! # recode-reward — ReCode's rule-based rewards
//!
//! ReCode (arXiv 2506.20495) trains code LLMs on API updates with rewards computed from the
//! completion text alone: a **format** reward (+1/−1) for the
//! `<think>…</think><answer>```python …```</answer>` shape, and **EM\*** / **ES\*** rewards
//! comparing the answer's code with the reference new code after normalisation (comments and
//! blank lines removed). The GRPO training reward is `format + ES*` (range −3…3).
//!
//! ## API
//!
//! * [`score`]`(completion, target, mode) -> `[`RewardBreakdown`]: all components at once;
//!   [`RewardBreakdown::total`] is the training reward, [`RewardBreakdown::total_of`] sums a
//!   chosen set of [`RewardKind`]s.
//! * [`PreparedTarget`]: normalise a reference once and score its G completions against it
//!   with [`PreparedTarget::score`] (what an RL trainer should call per group).
//! * [`score_pairs`] / [`score_pairs_with_threads`]: parallel batches (rayon);
//!   [`score_edits`] adds the edit score of rows that give their old code.
//! * Building blocks: [`format_ok`]/[`format_reward`], [`extract_code_block`],
//!   [`normalize_code`], [`is_valid_python`], [`levenshtein`], [`es_star_from`].
//!
//! Scoring allocates only the normalised answer, its code points and the bit-vector masks;
//! it never panics, and stays linear-ish on megabyte inputs (see `tests/robustness.rs`).
//!
//! ## Modes
//!
//! [`Mode::Paper`] is bit-compatible with the published reward (`src/DAPO/reward.py` of the
//! ReCode repository), quirks included; it is checked against an independent Python
//! reference (`python/reference/reward_paper.py`) to 1e-12 on thousands of generated
//! completions. [`Mode::Fixed`] keeps the intent without the quirks. Every difference:
//!
//! | # | topic | paper | fixed | example input |
//! |---|---|---|---|---|
//! | 1 | placeholder collision | literal 10 is restored as literal 1 + `"0"` (`STRING_PLACEHOLDER_1` is a prefix of `_10`) | strings are never replaced | 11 lines `x{i} = '{i}'`: paper ends `x10 = '1'0` |
//! | 2 | quotes in comments | a `'` in a comment opens a "string" that swallows code up to the next `'` | comments found by a tokenizer, outside strings only | `# don't\nx = 'a'\ny = 1` → paper `y = 1`, fixed `x = 'a'\ny = 1` |
//! | 3 | `#` inside strings after escapes | strings have no escapes: `'it\'s # x'` ends at `\'`, the rest is a comment | escapes honoured | `s = 'it\'s # x'` → paper `s = 'it\'s`, fixed unchanged |
//! | 4 | docstrings | kept (the published triple-quote deletion never matches, strings were hidden first) | kept too (deleting them breaks bodies made only of a docstring) | — |
//! | 5 | trailing whitespace / indentation | kept, except `strip()` of the whole text (first line loses its indentation) | each line right-stripped, common indentation removed, `\r\n` → `\n` | `x = 1  # c` → paper `x = 1  `, fixed `x = 1` |
//! | 6 | code block choice | first `` ```python\n…\n``` `` anywhere, even in the reasoning | first block after the last `<answer>`; `` ```py ``, trailing spaces and `\r\n` accepted; closing fence must start a line | `` ```python\nold\n```</think><answer>```python\nnew\n```</answer> `` → paper `old`, fixed `new` |
//! | 7 | format: answer body | may contain more `<answer>`/`</answer>`/think tags | must not | `r</think><answer>a</answer><answer>b</answer>` → paper +1, fixed −1 |
//! | 8 | syntax grammar | Python 3.11 grammar (the reference interpreter); PEP 695/701 syntax is an error | newest grammar | `type X = int` → paper invalid, fixed valid |
//! | 9 | both sides empty in ES\* | published code raises `ZeroDivisionError`; here similarity 1 (ES\* = 2) as in the spec | similarity 1 | `` ```python\n\n``` `` vs `""` |
//!
//! Known divergences of paper mode from the published Python (which would crash or hang):
//! NUL bytes (`ast.parse` raises `ValueError` in 3.11: here invalid syntax); ASTs deeper than
//! CPython's recursion limit (`RecursionError`: here judged by the parser, with the guards in
//! [`syntax`]); the placeholder restore is capped at ~8× the input size + 1 MiB where the
//! published code would need exponential memory.

pub mod batch;
pub mod edit;
pub mod extract;
pub mod format;
pub mod levenshtein;
pub mod normalize;
pub mod pyspace;
pub mod syntax;

pub use batch::{
    score_edits, score_edits_with_threads, score_pairs, score_pairs_with_threads, BatchError,
    ScoredEdit,
};
pub use edit::{line_edit_script, EditScore, PreparedEdit};
pub use extract::extract_code_block;
pub use format::{format_ok, format_reward};
pub use levenshtein::{levenshtein, levenshtein_chars};
pub use normalize::normalize_code;
pub use syntax::{is_valid_python, is_valid_python_version, PyVersion};

use serde::{Deserialize, Serialize};

/// Which reward definition to apply: the published one (quirks included) or the fixed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bit-compatible with the published ReCode reward.
    #[default]
    Paper,
    /// Same intent, quirks removed (see the crate docs table).
    Fixed,
}

/// Errors of this crate (parsing names of modes and reward components).
#[derive(Debug, thiserror::Error)]
pub enum RewardError {
    /// An unknown mode name.
    #[error("unknown reward mode {0:?} (expected \"paper\" or \"fixed\")")]
    UnknownMode(String),
    /// An unknown reward component name.
    #[error("unknown reward {0:?} (expected format, em_star, es_star, em or es)")]
    UnknownReward(String),
}

impl std::str::FromStr for Mode {
    type Err = RewardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "paper" => Ok(Mode::Paper),
            "fixed" => Ok(Mode::Fixed),
            _ => Err(RewardError::UnknownMode(s.to_string())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Paper => "paper",
            Mode::Fixed => "fixed",
        })
    }
}

impl Mode {
    /// The Python grammar the syntax check uses in this mode.
    pub fn python_version(self) -> PyVersion {
        match self {
            Mode::Paper => PyVersion::Py311,
            Mode::Fixed => PyVersion::Latest,
        }
    }
}

/// A reward component that can be selected and summed (paper's ablation: ES* beats the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// +1 / −1 for the think/answer shape.
    Format,
    /// −2 no block or bad syntax, +2 exact match, −1.5 otherwise.
    EmStar,
    /// −2 no block or bad syntax, else 3.5·similarity − 1.5.
    EsStar,
    /// Plain exact match of the normalised code: 1 or 0 (ablation baseline).
    Em,
    /// Plain edit similarity of the normalised code in [0, 1] (0 without a block).
    Es,
}

impl std::str::FromStr for RewardKind {
    type Err = RewardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "format" => Ok(RewardKind::Format),
            "em_star" | "em*" => Ok(RewardKind::EmStar),
            "es_star" | "es*" => Ok(RewardKind::EsStar),
            "em" => Ok(RewardKind::Em),
            "es" => Ok(RewardKind::Es),
            _ => Err(RewardError::UnknownReward(s.to_string())),
        }
    }
}

impl RewardKind {
    /// The name used in JSON output and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RewardKind::Format => "format",
            RewardKind::EmStar => "em_star",
            RewardKind::EsStar => "es_star",
            RewardKind::Em => "em",
            RewardKind::Es => "es",
        }
    }

    /// Parses a comma-separated list such as `format,es_star`.
    pub fn parse_list(s: &str) -> Result<Vec<RewardKind>, RewardError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect()
    }

    /// The training reward of the paper: format + ES*.
    pub const TRAINING: [RewardKind; 2] = [RewardKind::Format, RewardKind::EsStar];
}

/// All reward components of one completion, plus the facts they were computed from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardBreakdown {
    /// Format reward, +1 or −1.
    pub format: f64,
    /// EM*: −2, −1.5 or +2.
    pub em_star: f64,
    /// ES*: −2, or in [−1.5, 2].
    pub es_star: f64,
    /// Edit similarity of the normalised code in [0, 1]; 0 without a valid block.
    pub similarity: f64,
    /// A code block was found.
    pub has_code_block: bool,
    /// The normalised code block parses as Python.
    pub syntax_ok: bool,
    /// The normalised code equals the normalised target.
    pub exact_match: bool,
}

impl RewardBreakdown {
    /// The GRPO/DAPO training reward of the paper: `format + es_star`.
    pub fn total(&self) -> f64 {
        self.format + self.es_star
    }

    /// One component's value.
    pub fn get(&self, kind: RewardKind) -> f64 {
        let valid = self.has_code_block && self.syntax_ok;
        match kind {
            RewardKind::Format => self.format,
            RewardKind::EmStar => self.em_star,
            RewardKind::EsStar => self.es_star,
            RewardKind::Em => f64::from(u8::from(valid && self.exact_match)),
            RewardKind::Es => self.similarity,
        }
    }

    /// Sum of the chosen components (e.g. `[Format, EmStar]` for the EM* ablation).
    pub fn total_of(&self, kinds: &[RewardKind]) -> f64 {
        kinds.iter().map(|&k| self.get(k)).sum()
    }
}

/// ES* from an edit distance: `3.5·(1 − dist/max_len) − 1.5`, with similarity 1 when both
/// strings are empty; the operation order matches the published Python bit for bit.
pub fn es_star_from(distance: usize, max_len: usize) -> (f64, f64) {
    let similarity = if max_len == 0 {
        1.0
    } else {
        1.0 - (distance as f64 / max_len as f64)
    };
    (similarity, similarity * 3.5 - 1.5)
}

/// A reference solution normalised once, to score many completions against it.
#[derive(Clone, Debug)]
pub struct PreparedTarget {
    mode: Mode,
    normalized: String,
    chars: Vec<char>,
}

impl PreparedTarget {
    /// Normalises `target` for `mode`.
    pub fn new(target: &str, mode: Mode) -> Self {
        let normalized = normalize_code(target, mode);
        let chars = normalized.chars().collect();
        PreparedTarget {
            mode,
            normalized,
            chars,
        }
    }

    /// The normalised reference text.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// Scores one completion (the text after the assistant prefix) against this target.
    pub fn score(&self, completion: &str) -> RewardBreakdown {
        self.score_with_code(completion).0
    }

    /// [`PreparedTarget::score`] plus the answer's normalised code when it has a block that
    /// parses, so further scores of the same answer (e.g. [`PreparedEdit`]) need not parse again.
    pub fn score_with_code(&self, completion: &str) -> (RewardBreakdown, Option<String>) {
        let mode = self.mode;
        let format = format_reward(completion, mode);
        let mut out = RewardBreakdown {
            format,
            em_star: -2.0,
            es_star: -2.0,
            similarity: 0.0,
            has_code_block: false,
            syntax_ok: false,
            exact_match: false,
        };
        let code = match answer_code(completion, mode) {
            Ok(code) => code,
            Err(AnswerFault::NoBlock) => return (out, None),
            Err(AnswerFault::Syntax) => {
                out.has_code_block = true;
                return (out, None);
            }
        };
        out.has_code_block = true;
        out.syntax_ok = true;
        out.exact_match = code == self.normalized;
        out.em_star = if out.exact_match { 2.0 } else { -1.5 };
        let (distance, max_len) = if out.exact_match {
            (0, self.chars.len())
        } else {
            let chars: Vec<char> = code.chars().collect();
            let max_len = chars.len().max(self.chars.len());
            (levenshtein_chars(&chars, &self.chars), max_len)
        };
        (out.similarity, out.es_star) = es_star_from(distance, max_len);
        (out, Some(code))
    }
}

/// Why an answer has no usable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnswerFault {
    /// No python block.
    NoBlock,
    /// The normalised block does not parse.
    Syntax,
}

/// The normalised code of a completion's answer block, if it has one that parses.
pub(crate) fn answer_code(completion: &str, mode: Mode) -> Result<String, AnswerFault> {
    let block = extract_code_block(completion, mode).ok_or(AnswerFault::NoBlock)?;
    let code = normalize_code(block, mode);
    if is_valid_python_version(&code, mode.python_version()) {
        Ok(code)
    } else {
        Err(AnswerFault::Syntax)
    }
}

/// Scores one completion against one reference solution: all components.
///
/// ```
/// use recode_reward::{score, Mode};
/// let c = " plan </think>\n<answer>\n```python\nx = new_api(1)\n```\n</answer>";
/// let r = score(c, "x = new_api(1)\n", Mode::Paper);
/// assert_eq!((r.format, r.em_star, r.es_star, r.total()), (1.0, 2.0, 2.0, 3.0));
/// ```
pub fn score(completion: &str, target: &str, mode: Mode) -> RewardBreakdown {
    PreparedTarget::new(target, mode).score(completion)
}
