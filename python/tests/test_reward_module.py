"""The ``recode`` wheel called exactly as verl's reward managers and TRL's GRPOTrainer call it."""

from __future__ import annotations

import inspect
import threading

import pytest


try:
    import recode  # type: ignore[no-redef]
    import recode.trl
except ImportError:  # pragma: no cover - the failure must be loud, not a skip
    pytest.fail("the recode wheel is not installed: run scripts/setup.sh (maturin build + pip install)", pytrace=False)

GOOD = " I will use the new API.</think>\n<answer>\n```python\nimport jax.numpy as jnp\nx = jnp.unstack(a)\n```\n</answer>"
TARGET = "import jax.numpy as jnp\nx = jnp.unstack(a)"


def test_verl_compute_score_keywords():
    # verl's NaiveRewardManager: compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)
    out = recode.compute_score(data_source="recode", solution_str=GOOD, ground_truth=TARGET, extra_info={"index": 0})
    assert out["score"] == 3.0
    assert (out["format"], out["es_star"], out["em_star"]) == (1.0, 2.0, 2.0)
    bad = recode.compute_score("recode", "no answer", TARGET)
    assert bad["score"] == -3.0
    fixed = recode.compute_score("recode", GOOD, TARGET, {"reward_mode": "fixed"})
    assert fixed["score"] == 3.0
    params = list(inspect.signature(recode.compute_score).parameters)
    assert params[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]


def test_verl_batch_and_errors():
    outs = recode.compute_score_batch(["recode"] * 3, [GOOD, "x", GOOD], [TARGET, TARGET, "y = 1"], [None] * 3)
    assert [o["score"] for o in outs][:2] == [3.0, -3.0]
    assert outs[2]["es_star"] < 2.0
    with pytest.raises(ValueError):
        recode.score_batch(["a"], [], mode="paper")
    with pytest.raises(ValueError):
        recode.score("a", "b", mode="nope")


def test_trl_signature_plain_and_conversational():
    completions = [GOOD, "nothing"]
    conv = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "nothing"}]]
    kwargs = {"prompts": ["p", "p"], "target": [TARGET, TARGET], "completion_ids": [[1], [2]]}
    for c in (completions, conv):
        assert recode.trl.format_reward(c, **kwargs) == [1.0, -1.0]
        assert recode.trl.es_star_reward(c, **kwargs) == [2.0, -2.0]
        assert recode.trl.em_star_reward(c, **kwargs) == [2.0, -2.0]
        assert recode.trl.recode_reward(c, **kwargs) == [3.0, -3.0]
    with pytest.raises(KeyError):
        recode.trl.es_star_reward(completions, prompts=["p", "p"])


def test_batch_releases_gil():
    # A Python thread keeps running while a large batch is scored natively.
    n = 20000
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)

    t = threading.Thread(target=spin)
    t.start()
    recode.score_batch([GOOD] * n, [TARGET + "\ny = 2"] * n)
    stop.set()
    t.join()
    assert len(ticks) > 100


def test_helpers():
    assert recode.levenshtein("kitten", "sitting") == 3
    assert recode.is_valid_python("match x:\n    case 1:\n        pass\n")
    assert recode.extract_code_block("```python\nx\n```") == "x"
    assert recode.normalize_code("x = 1  # c\n\n", mode="fixed") == "x = 1"
