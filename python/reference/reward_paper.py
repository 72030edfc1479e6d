"""Independent Python reference of recode's ``paper`` reward mode.

Written from the method description (ARCHITECTURE.md, "Rewards") with regular expressions
and Python's own ``ast`` parser, to cross-check the Rust implementation
(``crates/recode-reward``) bit for bit. Deliberately simple: the Levenshtein distance is the
textbook two-row dynamic programme, the string/comment handling is the regex pipeline the
paper describes (placeholders, comment deletion, restore, blank-line removal).

Public functions: ``format_reward``, ``extract_code``, ``normalize``, ``syntax_ok``,
``levenshtein``, ``score`` (returns a dict with every component).
"""

from __future__ import annotations

import ast
import re
import warnings

_FORMAT_RE = re.compile(
    r"^<think>"  # prepended by the caller, the prompt ends with it
    r"(?P<reasoning>[^<]*(?:<(?!/?think>)[^<]*)*)"  # no nested think tags
    r"</think>\s*<answer>(?P<body>.*?)</answer>\s*$",
    re.DOTALL,
)
_BLOCK_RE = re.compile(r"```python\n(?P<code>.*?)\n```", re.DOTALL)
_LITERAL_RE = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'.*?'|\".*?\"", re.DOTALL)
_COMMENT_RE = re.compile(r"#.*?$|\"\"\".*?\"\"\"|'''.*?'''", re.DOTALL | re.MULTILINE)
_BLANK_RUN_RE = re.compile(r"\n\s*\n")
_BLANK_LINE_RE = re.compile(r"^\s*$\n", re.MULTILINE)
_TAG = "STRING_PLACEHOLDER_"


def format_reward(completion: str) -> float:
    """+1.0 when ``<think>`` + completion has the think/answer shape, else -1.0."""
    return 1.0 if _FORMAT_RE.search("<think>" + completion) else -1.0


def extract_code(completion: str) -> str | None:
    """First fenced python block (shortest body), stripped; None when absent."""
    m = _BLOCK_RE.search(completion)
    return None if m is None else m.group("code").strip()


def normalize(code: str) -> str:
    """Hide literals, drop comments and triple-quoted blocks, restore, drop blank lines."""
    literals: list[str] = []

    def hide(m: re.Match[str]) -> str:
        literals.append(m.group(0))
        return f"{_TAG}{len(literals) - 1}"

    text = _LITERAL_RE.sub(hide, code)
    text = _COMMENT_RE.sub("", text)
    for i, lit in enumerate(literals):
        text = text.replace(f"{_TAG}{i}", lit)
    text = _BLANK_RUN_RE.sub("\n", text)
    return _BLANK_LINE_RE.sub("", text.strip())


def syntax_ok(code: str) -> bool:
    """Parses as Python with this interpreter's ``ast``; any parser failure counts as invalid
    (SyntaxError, ValueError for NUL bytes, RecursionError/MemoryError for deep nesting)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance over code points (two-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def score(completion: str, target: str) -> dict:
    """All reward components of one completion against one reference (paper mode)."""
    out = {
        "format": format_reward(completion),
        "em_star": -2.0,
        "es_star": -2.0,
        "similarity": 0.0,
        "has_code_block": False,
        "syntax_ok": False,
        "exact_match": False,
    }
    out["total"] = out["format"] + out["es_star"]
    block = extract_code(completion)
    if block is None:
        return out
    out["has_code_block"] = True
    code = normalize(block)
    if not syntax_ok(code):
        return out
    out["syntax_ok"] = True
    ref = normalize(target)
    out["exact_match"] = code == ref
    out["em_star"] = 2.0 if code == ref else -1.5
    longest = max(len(code), len(ref))
    sim = 1.0 if longest == 0 else 1 - levenshtein(code, ref) / longest
    out["similarity"] = sim
    out["es_star"] = sim * 3.5 - 1.5
    out["total"] = out["format"] + out["es_star"]
    return out
