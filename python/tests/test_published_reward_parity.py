"""Parity of recode's ``paper`` reward with ReCode's PUBLISHED reward.

The oracle is ``$RECODE_SHARED/reference/recode_reward.py``, byte-identical to ReCode's
``src/GRPO/reward.py`` (MIT), imported from ../shared at test time (the ``published_reward``
fixture; skipped, saying so, when ../shared is absent). It is not the project's own Python
reference (``python/reference/reward_paper.py``, compared in test_reward_parity.py): this file
checks recode against the code the paper actually trained with.

Completions: the seeded generator of test_reward_parity.py (real ReCode rows with comment,
blank-line and string edits, truncations, missing fences, broken syntax, nested think tags,
Unicode, placeholder collisions) plus, for real rows, one completion of each targeted kind
(exact, copy of the old code, truncated answer, missing tags, comments, string-literal quirks).

recode is scored through the CLI (``recode reward score --input``, paper mode) and through the
Python module; ``format``, ``em_star``, ``es_star`` and the GRPO total (format + ES*) must be
exactly equal (``==``, no tolerance) to the published ``format_reward``, ``em_star`` and
``es_star``. The published functions raise on two inputs instead of scoring them; those rows
are checked against recode's documented choice instead (see ``explained``).
"""

from __future__ import annotations

import json

import pytest

from test_reward_parity import generate_cases, load_rows

FENCE = "```python\n{}\n```"


def targeted_cases(rows: list[dict]) -> list[dict]:
    """For each row, one completion of every targeted kind against its ``new_code``."""
    cases = []
    strings = "\n".join(f"s{i} = 'v{i}'" for i in range(12))  # STRING_PLACEHOLDER_1 vs _10
    for row in rows:
        new, old = row["new_code"], row["old_code"]
        half = new[: len(new) // 2]
        kinds = [
            f" Update the call.</think>\n<answer>\n{FENCE.format(new)}\n</answer>",
            f" Keep it.</think>\n<answer>\n{FENCE.format(old)}\n</answer>",
            f" Truncated.</think>\n<answer>\n```python\n{half}",  # cut mid-answer
            f" Truncated.</think>\n<answer>\n{FENCE.format(half)}\n</answer>",
            f" No closing think tag\n<answer>\n{FENCE.format(new)}\n</answer>",
            f" No answer tags.</think>\n{FENCE.format(new)}",
            f" Bare code.</think>\n<answer>\n{new}\n</answer>",
            "\n".join(line + "  # don't keep" for line in new.split("\n")).join(
                [" Comments.</think>\n<answer>\n```python\n", "\n```\n</answer>"]
            ),
            f" Strings.</think>\n<answer>\n{FENCE.format(new + chr(10) + strings)}\n</answer>",
            f' Docstring.</think>\n<answer>\n{FENCE.format(chr(34) * 3 + "doc # x" + chr(34) * 3 + chr(10) + new)}\n</answer>',
            f" Two blocks.</think>\n<answer>\n{FENCE.format(old)}\n{FENCE.format(new)}\n</answer>\n",
        ]
        cases += [{"completion": c, "target": new} for c in kinds]
        cases.append({"completion": kinds[0], "target": new + "\n" + strings})
    return cases


@pytest.fixture(scope="module")
def scored_cases(published_reward):
    """The cases and their published scores, computed once (the published Levenshtein is a
    pure-Python O(n·m) table: ~6 ms a case)."""
    cases = generate_cases(1500) + targeted_cases(load_rows()[:100])
    return cases, [published_scores(published_reward, c) for c in cases]


def published_scores(pub, case: dict) -> dict | str:
    """The published components of one case, or the name of the exception it raises."""
    c, t = case["completion"], case["target"]
    try:
        return {
            "format": pub.format_reward([c])[0],
            "em_star": pub.em_star([c], [t])[0],
            "es_star": pub.es_star([c], [t])[0],
        }
    except Exception as e:  # noqa: BLE001 - the published code's own failure is the datum
        return type(e).__name__


def explained(pub, case: dict, got: dict, error: str) -> bool:
    """recode's documented score for an input the published reward cannot score.

    - ZeroDivisionError: answer and target both normalise to "" (published ``es_star`` divides
      by max(len) = 0); recode defines the similarity of two empty strings as 1 (ES* = +2, and
      EM* = +2 since they are equal).
    - ValueError: a NUL byte in the answer (Python < 3.12's ``ast.parse`` raises ValueError,
      which ``syntax_check`` does not catch; 3.12+ raises SyntaxError, which it does): recode
      treats it as a syntax error (EM* = ES* = -2), the published code's answer on 3.12+.
    Either way the format reward is the published one.
    """
    fmt_ok = got["format"] == pub.format_reward([case["completion"]])[0]
    if error == "ZeroDivisionError":
        block = pub.re.findall(r"```python\n(.*?)\n```", case["completion"], pub.re.DOTALL)
        empty = block and pub.remove_comments_and_blank_lines(block[0].strip()) == ""
        both_empty = empty and pub.remove_comments_and_blank_lines(case["target"]) == ""
        return fmt_ok and both_empty and got["similarity"] == 1.0 and got["es_star"] == 2.0 and got["em_star"] == 2.0
    if error == "ValueError":
        return fmt_ok and "\0" in case["completion"] and not got["syntax_ok"] and got["es_star"] == got["em_star"] == -2.0
    return False


def check(pub, scored: tuple[list[dict], list], got: list[dict]) -> None:
    cases, refs = scored
    assert len(got) == len(cases)
    mismatches, unexplained, raised = [], [], 0
    for i, (case, ref, g) in enumerate(zip(cases, refs, got)):
        if isinstance(ref, str):
            raised += 1
            if not explained(pub, case, g, ref):
                unexplained.append((i, ref, case, g))
            continue
        bad = [k for k in ("format", "em_star", "es_star") if g[k] != ref[k]]
        if g["total"] != ref["format"] + ref["es_star"]:
            bad.append("total")
        if bad:
            mismatches.append((i, bad, case, {k: (ref.get(k), g[k]) for k in ("format", "em_star", "es_star")}))
    assert not unexplained, unexplained[:5]
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ; first: {mismatches[:3]}"
    # The published code scores (nearly) everything: the exceptions are rare edge cases.
    assert raised <= 5, raised


def test_targeted_cases_cover_both_outcomes(published_reward):
    """The targeted kinds reach exact matches, near misses and format/block failures."""
    cases = targeted_cases(load_rows()[:20])
    scores = [published_scores(published_reward, c) for c in cases]
    assert all(isinstance(s, dict) for s in scores)
    em = {s["em_star"] for s in scores}
    assert {2.0, -1.5, -2.0} <= em, em
    assert {1.0, -1.0} <= {s["format"] for s in scores}


def test_cli_scores_equal_the_published_reward(published_reward, scored_cases, run_recode, tmp_path):
    cases = scored_cases[0]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    run_recode("reward", "score", "--input", rows, "--mode", "paper", "--reward", "format,es_star", "-o", out)
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [g["index"] for g in got] == list(range(len(cases)))
    check(published_reward, scored_cases, got)


def test_python_module_scores_equal_the_published_reward(published_reward, scored_cases):
    try:
        import recode
    except ImportError:
        pytest.fail("the recode wheel is not installed in this venv: run scripts/setup.sh", pytrace=False)
    cases = scored_cases[0]
    got = recode.score_batch([c["completion"] for c in cases], [c["target"] for c in cases], mode="paper")
    check(published_reward, scored_cases, [{**g, "total": g["score"]} for g in got])
