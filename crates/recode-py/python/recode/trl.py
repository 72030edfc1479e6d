"""Reward functions with TRL's ``GRPOTrainer`` signature: ``f(completions, **kwargs)``.

The reference code comes from the dataset column ``target`` (also accepted: ``new_code``,
``ground_truth``, ``solution``). Completions may be plain strings or conversational
(``[{"role": "assistant", "content": ...}]``). Example::

    from recode.trl import format_reward, es_star_reward
    trainer = GRPOTrainer(..., reward_funcs=[format_reward, es_star_reward])
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _native

TARGET_COLUMNS = ("target", "new_code", "ground_truth", "solution")


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)):
        # Conversational: the assistant turn(s) of the completion.
        parts = [m.get("content", "") for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "".join(str(p) for p in parts)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def _targets(n: int, kwargs: dict) -> list[str]:
    for name in TARGET_COLUMNS:
        if name in kwargs and kwargs[name] is not None:
            values = list(kwargs[name])
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
            return [str(v) for v in values]
    raise KeyError(f"no reference column: expected one of {TARGET_COLUMNS} in the dataset")


def _values(completions: Sequence[Any], reward: str, kwargs: dict) -> list[float]:
    texts = [_text(c) for c in completions]
    mode = kwargs.get("reward_mode", "paper")
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if mode else "paper"
    return _native.reward_values(texts, _targets(len(texts), kwargs), reward, mode)


def format_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """+1 / -1 for the ``<think>…</think><answer>…</answer>`` shape."""
    mode = kwargs.get("reward_mode", "paper")
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if mode else "paper"
    return _native.format_rewards([_text(c) for c in completions], mode)


def em_star_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """EM*: -2 no code/syntax error, +2 exact match after normalisation, -1.5 otherwise."""
    return _values(completions, "em_star", kwargs)


def es_star_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """ES*: -2 no code/syntax error, else 3.5 * edit similarity - 1.5."""
    return _values(completions, "es_star", kwargs)


def recode_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """The paper's GRPO training reward in one function: format + ES*."""
    return _values(completions, "format,es_star", kwargs)


__all__ = ["format_reward", "em_star_reward", "es_star_reward", "recode_reward"]
