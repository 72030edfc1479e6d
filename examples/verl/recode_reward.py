"""verl custom reward function: ReCode's format + ES* computed by the `recode` wheel.

verl loads it with ``custom_reward_function.path=examples/verl/recode_reward.py`` and
``custom_reward_function.name=compute_score``.
"""

from recode import compute_score as _compute_score


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """verl's signature; returns a dict whose ``score`` is format + ES* (range -3..3)."""
    return _compute_score(data_source, solution_str, ground_truth, extra_info)
