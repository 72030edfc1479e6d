"""The ``recode`` wheel called exactly as verl's reward managers and TRL's GRPOTrainer call it."""

from __future__ import annotations

import copy
import inspect
import json
import threading

import pytest


try:
    import recode  # type: ignore[no-redef]
    import recode.trl
except ImportError:  # pragma: no cover - the failure must be loud, not a skip
    pytest.fail("the recode wheel is not installed: run scripts/setup.sh (maturin build + pip install)", pytrace=False)

GOOD = " I will use the new API.</think>\n<answer>\n```python\nimport jax.numpy as jnp\nx = jnp.unstack(a)\n```\n</answer>"
TARGET = "import jax.numpy as jnp\nx = jnp.unstack(a)"
PREFIX = "Let me solve this step by step.\n<think>"


def trl_completions(prompts, completions_text):
    """Exactly what TRL's GRPOTrainer._generate_and_score_completions hands reward functions.

    For conversational prompts it pops a final assistant message (the one it continued with
    ``continue_final_message``) off each prompt *in place* and prepends its content to the
    decoded completion:

        bootstrap = prompt.pop()["content"] if prompt[-1]["role"] == "assistant" else ""
        completions.append([{"role": "assistant", "content": bootstrap + completion}])
    """
    completions = []
    for prompt, completion in zip(prompts, completions_text):
        bootstrap = prompt.pop()["content"] if prompt[-1]["role"] == "assistant" else ""
        completions.append([{"role": "assistant", "content": bootstrap + completion}])
    return completions


def recode_prompt(user="update the code"):
    return [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": user},
        {"role": "assistant", "content": PREFIX},
    ]


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


def test_verl_assistant_prefix_with_and_without():
    info = {"index": 0, "split": "train", "assistant_prefix": PREFIX}
    for solution in (GOOD, PREFIX + GOOD):
        out = recode.compute_score(data_source="recode", solution_str=solution, ground_truth=TARGET, extra_info=info)
        assert (out["score"], out["format"]) == (3.0, 1.0), solution
    # Only a *leading* prefix is stripped; without extra_info the text is scored as given.
    assert recode.compute_score("recode", "x" + PREFIX + GOOD, TARGET, info)["format"] == -1.0
    assert recode.compute_score("recode", PREFIX + GOOD, TARGET)["format"] == -1.0
    outs = recode.compute_score_batch(
        data_sources=["recode"] * 3,
        solution_strs=[PREFIX + GOOD, GOOD, PREFIX + GOOD],
        ground_truths=[TARGET] * 3,
        extra_infos=[info, info, None],
    )
    assert [o["score"] for o in outs] == [3.0, 3.0, -1.0 + 2.0]


def test_verl_exported_extra_info(run_recode, api_update, tmp_path):
    # Rows of `recode data export --format verl`, fed as verl's NaiveRewardManager feeds them.
    pq = pytest.importorskip("pyarrow.parquet")
    clean = tmp_path / "clean.jsonl"
    run_recode("data", "clean", api_update, clean)
    out = tmp_path / "train.parquet"
    run_recode("data", "export", clean, out, "--format", "verl")
    rows = pq.read_table(out).slice(0, 4).to_pylist()
    for row in rows:
        info = row["extra_info"]
        assert info["assistant_prefix"] == PREFIX
        gt = row["reward_model"]["ground_truth"]
        response = f" Use the new API.</think>\n<answer>\n```python\n{gt}\n```\n</answer>"
        for solution in (response, info["assistant_prefix"] + response):
            res = recode.compute_score(
                data_source=row["data_source"], solution_str=solution, ground_truth=gt, extra_info=info
            )
            assert res["format"] == 1.0 and res["es_star"] == 2.0, (solution[:80], res)


def test_trl_conversational_bootstrap_is_stripped():
    generated = [GOOD, "nothing", " think</think><answer>```python\nx = (\n```</answer>"]
    prompts = [recode_prompt() for _ in generated]
    original = copy.deepcopy(prompts)
    completions = trl_completions(prompts, generated)
    assert completions[0][0]["content"].startswith(PREFIX)  # what TRL really passes
    assert all(p[-1]["role"] == "user" for p in prompts)  # TRL popped the assistant turn
    kwargs = {"prompts": prompts, "target": [TARGET] * 3, "completion_ids": [[1], [2], [3]]}
    assert recode.trl.format_reward(completions, **kwargs) == [1.0, -1.0, 1.0]
    assert recode.trl.es_star_reward(completions, **kwargs) == [2.0, -2.0, -2.0]
    assert recode.trl.recode_reward(completions, **kwargs) == [3.0, -3.0, -1.0]
    # Same scores as the plain text the model generated after the prefix.
    assert recode.trl.recode_reward(completions, **kwargs) == recode.trl.recode_reward(generated, **kwargs)
    # A prompt whose final assistant message is not ReCode's: that bootstrap is stripped.
    custom = [[{"role": "user", "content": "u"}, {"role": "assistant", "content": "Sure.\n<think>"}]]
    conv = trl_completions(copy.deepcopy(custom), [GOOD])
    assert recode.trl.format_reward(conv, prompts=custom) == [1.0]
    # Unmutated prompts (a caller keeping the original) work too.
    assert recode.trl.format_reward(completions, prompts=original, target=[TARGET] * 3) == [1.0, -1.0, 1.0]


def test_trl_exported_rows(run_recode, api_update, tmp_path):
    # Rows of `recode data export --format trl-jsonl` through TRL's completion construction.
    clean = tmp_path / "clean.jsonl"
    run_recode("data", "clean", api_update, clean)
    out = tmp_path / "trl.jsonl"
    run_recode("data", "export", clean, out, "--format", "trl-jsonl")
    with out.open(encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(4)]
    assert all(r["prompt"][-1] == {"role": "assistant", "content": PREFIX} for r in rows)
    generated = [f" plan</think>\n<answer>\n```python\n{r['target']}\n```\n</answer>" for r in rows]
    prompts = [r["prompt"] for r in rows]
    completions = trl_completions(prompts, generated)
    kwargs = {"prompts": prompts, "target": [r["target"] for r in rows]}
    assert recode.trl.format_reward(completions, **kwargs) == [1.0] * 4
    assert recode.trl.recode_reward(completions, **kwargs) == [3.0] * 4


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
