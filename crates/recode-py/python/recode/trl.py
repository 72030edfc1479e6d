"""Reward functions with TRL's ``GRPOTrainer`` signature: ``f(completions, **kwargs)``.

The reference code comes from the dataset column ``target`` (also accepted: ``new_code``,
``ground_truth``, ``solution``). Completions may be plain strings or conversational
(``[{"role": "assistant", "content": ...}]``).

Conversational completions and the assistant prefix: the ReCode prompt ends with an open
assistant turn ``"Let me solve this step by step.\n<think>"`` (``recode data export --format
trl-jsonl`` writes it as the final ``assistant`` message). GRPOTrainer continues that message
and hands the reward functions ``[{"role": "assistant", "content": bootstrap + generated}]``,
where ``bootstrap`` is the final assistant message of the prompt. The reward is defined on
what the model wrote *after* the prefix (the format reward prepends ``<think>`` itself), so
the prefix is stripped from a conversational completion when it starts with it: the prompt's
own final assistant message when ``prompts`` still holds it, else :data:`ASSISTANT_PREFIX`.
Plain-string completions are scored as given (TRL prepends nothing to them). Example::

    from recode.trl import format_reward, es_star_reward
    trainer = GRPOTrainer(..., reward_funcs=[format_reward, es_star_reward])
"""

from __future__ import annotations

from typing import Any, Sequence

from . import _native

TARGET_COLUMNS = ("target", "new_code", "ground_truth", "solution")

#: The open assistant turn of ReCode's training prompt (``recode_data::prompt::ASSISTANT_PREFIX``).
ASSISTANT_PREFIX = "Let me solve this step by step.\n<think>"


def _bootstrap(prompt: Any) -> str | None:
    """The final assistant message of a conversational prompt (what TRL prepends), if any."""
    if isinstance(prompt, (list, tuple)) and prompt:
        last = prompt[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            return str(last.get("content", ""))
    return None


def _strip_prefix(text: str, prompt: Any = None) -> str:
    for prefix in (_bootstrap(prompt), ASSISTANT_PREFIX):
        if prefix and text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _text(completion: Any, prompt: Any = None) -> str:
    """The text the reward scores: what the model wrote after the assistant prefix."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _strip_prefix(str(completion.get("content", "")), prompt)
    if isinstance(completion, (list, tuple)):
        # Conversational: the assistant turn(s) of the completion, TRL's bootstrap removed.
        parts = [m.get("content", "") for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return _strip_prefix("".join(str(p) for p in parts), prompt)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def _texts(completions: Sequence[Any], kwargs: dict) -> list[str]:
    prompts = kwargs.get("prompts")
    if not isinstance(prompts, (list, tuple)) or len(prompts) != len(completions):
        prompts = [None] * len(completions)
    return [_text(c, p) for c, p in zip(completions, prompts)]


def _targets(n: int, kwargs: dict) -> list[str]:
    for name in TARGET_COLUMNS:
        if name in kwargs and kwargs[name] is not None:
            values = list(kwargs[name])
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
            return [str(v) for v in values]
    raise KeyError(f"no reference column: expected one of {TARGET_COLUMNS} in the dataset")


def _values(completions: Sequence[Any], reward: str, kwargs: dict) -> list[float]:
    texts = _texts(completions, kwargs)
    mode = kwargs.get("reward_mode", "paper")
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if mode else "paper"
    return _native.reward_values(texts, _targets(len(texts), kwargs), reward, mode)


def format_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """+1 / -1 for the ``<think>…</think><answer>…</answer>`` shape."""
    mode = kwargs.get("reward_mode", "paper")
    if isinstance(mode, (list, tuple)):
        mode = mode[0] if mode else "paper"
    return _native.format_rewards(_texts(completions, kwargs), mode)


def em_star_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """EM*: -2 no code/syntax error, +2 exact match after normalisation, -1.5 otherwise."""
    return _values(completions, "em_star", kwargs)


def es_star_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """ES*: -2 no code/syntax error, else 3.5 * edit similarity - 1.5."""
    return _values(completions, "es_star", kwargs)


def recode_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """The paper's GRPO training reward in one function: format + ES*."""
    return _values(completions, "format,es_star", kwargs)


__all__ = ["ASSISTANT_PREFIX", "format_reward", "em_star_reward", "es_star_reward", "recode_reward"]
