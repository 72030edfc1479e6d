"""Parity of recode's Rust ``paper`` reward with the independent Python reference.

``generate_cases`` builds deterministic completions from the real ReCode training set
(correct answers, comment/blank-line/string edits, truncations, missing fences, broken
syntax, nested think tags, Unicode, placeholder collisions, quotes in comments...).

Run as a script to write cases with reference scores (used by the Rust integration test
``crates/recode-reward/tests/parity.rs``)::

    python python/tests/test_reward_parity.py --out cases.jsonl --n 6000

Under pytest, the same cases are scored by the installed ``recode`` Python module (if the
wheel is installed) and compared to 1e-12.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import reward_paper  # noqa: E402

DATA = Path(os.environ.get("RECODE_SHARED", HERE.parents[2] / "shared")) / "data/recode/api_update.jsonl"

UNICODE_BITS = ["é", "日本語", "🙂", "\u00a0", "\u2028", "\u3000", "Ω", "\x1c", "\u0301", "ß"]


def load_rows() -> list[dict]:
    if not DATA.exists():
        raise FileNotFoundError(f"{DATA} missing: the ReCode training data is required (README, section Data)")
    with DATA.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if isinstance(r.get("new_code"), str) and isinstance(r.get("old_code"), str)]


def _lines_edit(code: str, rng: random.Random) -> str:
    lines = code.split("\n")
    out = []
    for line in lines:
        r = rng.random()
        if r < 0.15:
            out.append(line + "  # note: it's " + rng.choice(["fine", "new", "\"quoted\""]))
        elif r < 0.25:
            out.append("")
            out.append(line)
        elif r < 0.3:
            out.append(" " * rng.randint(1, 6))
            out.append(line)
        elif r < 0.35:
            out.append("# " + rng.choice(["don't touch", "TODO", "'''", '"x"', "#"]))
            out.append(line)
        else:
            out.append(line)
    return "\n".join(out)


def _string_edit(code: str, rng: random.Random) -> str:
    choices = [
        lambda c: c.replace("'", '"'),
        lambda c: c.replace('"', "'"),
        lambda c: c + "\n" + "\n".join(f"s{i} = '{i}'" for i in range(rng.randint(9, 25))),
        lambda c: c + "\nmsg = 'it\\'s # not a comment'",
        lambda c: c + '\ndoc = """multi\n\n# line\n"""',
        lambda c: c + "\nt = '''unclosed",
        lambda c: c + "\nx = 'STRING_PLACEHOLDER_0'  # tricky",
        lambda c: c + "\nSTRING_PLACEHOLDER_1 = 'a' + 'b'",
        lambda c: '"""Module doc."""\n' + c,
        lambda c: c + "\nf = f\"{x!r:>10} # {y}\"",
    ]
    return rng.choice(choices)(code)


def _mutate_code(code: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.2:
        return code
    if r < 0.4:
        return _lines_edit(code, rng)
    if r < 0.55:
        return _string_edit(code, rng)
    if r < 0.65:  # truncation
        return code[: rng.randint(0, max(0, len(code)))]
    if r < 0.75:  # broken syntax
        pos = rng.randint(0, len(code))
        return code[:pos] + rng.choice(["(", ")", ":", " def ", "\n  x = ", "'", "]"]) + code[pos:]
    if r < 0.85:  # unicode
        pos = rng.randint(0, len(code))
        return code[:pos] + rng.choice(UNICODE_BITS) + code[pos:]
    if r < 0.9:
        return "\n".join("    " + line for line in code.split("\n"))
    # character-level edits
    chars = list(code)
    for _ in range(rng.randint(1, 8)):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.33:
            del chars[i]
        elif op < 0.66:
            chars[i] = rng.choice("abcxyz_ .()=\n")
        else:
            chars.insert(i, rng.choice("abc_1"))
    return "".join(chars)


def _wrap(code: str, other: str, rng: random.Random) -> str:
    reasoning = rng.choice(
        [
            " I need to update the API call.",
            "\nFirst, the old call is deprecated.\nUse <b>new</b> form.",
            "",
            " nested <think> tag",
            " mentions </think> early </think>",
            " plan with 日本語 and 🙂",
            f"\n```python\n{other}\n```\nthat was the old code.",
        ]
    )
    fence_open = rng.choice(["```python\n"] * 8 + ["```py\n", "```\n", "```python \n", "```Python\n", ""])
    fence_close = rng.choice(["\n```"] * 8 + ["```", "\n``", ""])
    answer_body = f"{fence_open}{code}{fence_close}"
    shape = rng.random()
    if shape < 0.55:
        tail = f"</think>\n<answer>\n{answer_body}\n</answer>"
    elif shape < 0.65:
        tail = f"</think><answer>{answer_body}</answer>" + rng.choice(["", "\n", " \t\n", "\x1c", "\u00a0", " trailing"])
    elif shape < 0.72:
        tail = f"</think>\n<answer>{answer_body}</answer>\n<answer>again</answer>"
    elif shape < 0.78:
        tail = f"\n<answer>{answer_body}</answer>"  # missing </think>
    elif shape < 0.84:
        tail = f"</think>\nHere it is:\n<answer>{answer_body}</answer>"
    elif shape < 0.9:
        tail = f"</think>\n<answer>{answer_body}"  # truncated, no </answer>
    elif shape < 0.95:
        tail = f"</think>\n{answer_body}"
    else:
        tail = f"<think>again</think>\n<answer>{answer_body}</answer>"
    return reasoning + tail


def generate_cases(n: int, seed: int = 20250625) -> list[dict]:
    """Deterministic (completion, target) pairs built from the real data set."""
    rng = random.Random(seed)
    rows = load_rows()
    cases = []
    for _ in range(n):
        row = rng.choice(rows)
        target = row["new_code"]
        source = target if rng.random() < 0.7 else row["old_code"]
        code = _mutate_code(source, rng)
        if rng.random() < 0.1:
            target = _mutate_code(target, rng)
        cases.append({"completion": _wrap(code, row["old_code"], rng), "target": target})
    # Hand-written edge cases.
    cases += [
        {"completion": "x</think><answer>```python\n\n```</answer>", "target": ""},
        {"completion": "x</think><answer>```python\n```</answer>", "target": "x"},
        {"completion": "", "target": ""},
        {"completion": "</think><answer>```python\ntype X = int\n```</answer>", "target": "type X = int"},
        {"completion": "</think><answer>```python\nx = 1\0\n```</answer>", "target": "x = 1"},
        {"completion": "</think><answer>```python\n" + "(" * 201 + ")" * 201 + "\n```</answer>", "target": "()"},
    ]
    return cases


def reference_scores(cases: list[dict]) -> list[dict]:
    return [reward_paper.score(c["completion"], c["target"]) for c in cases]


KEYS = ("format", "em_star", "es_star", "similarity")
FLAGS = ("has_code_block", "syntax_ok", "exact_match")


def compare(ref: dict, got: dict) -> list[str]:
    bad = [k for k in KEYS if abs(ref[k] - got[k]) > 1e-12]
    bad += [k for k in FLAGS if bool(ref[k]) != bool(got[k])]
    return bad


def test_reference_self_checks():
    assert reward_paper.levenshtein("kitten", "sitting") == 3
    assert reward_paper.normalize("# don't\nx = 'a'\ny = 1") == "y = 1"
    code = "".join(f"x{i} = '{i}'\n" for i in range(11))
    assert reward_paper.normalize(code).endswith("x10 = '1'0")


def test_parity_with_python_module(api_update):  # the fixture skips when the data is absent
    try:
        import recode  # noqa: F401
    except ImportError:
        import pytest

        pytest.fail("the recode wheel is not installed in this venv: run scripts/setup.sh")
    import recode

    cases = generate_cases(3000)
    refs = reference_scores(cases)
    got = recode.score_batch([c["completion"] for c in cases], [c["target"] for c in cases], mode="paper")
    mismatches = [(i, compare(r, g)) for i, (r, g) in enumerate(zip(refs, got)) if compare(r, g)]
    assert not mismatches, mismatches[:10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=20250625)
    ap.add_argument("--no-reference", action="store_true", help="write pairs only (benchmarks)")
    args = ap.parse_args()
    cases = generate_cases(args.n, args.seed)
    refs = [{} for _ in cases] if args.no_reference else reference_scores(cases)
    with open(args.out, "w", encoding="utf-8") as f:
        for case, ref in zip(cases, refs):
            f.write(json.dumps({**case, "reference": ref}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
