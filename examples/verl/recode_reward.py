"""verl custom reward function: ReCode's format + ES* computed by the `recode` wheel.

verl loads it with ``custom_reward_function.path=examples/verl/recode_reward.py`` and
``custom_reward_function.name=compute_score`` (see ``run_dapo.sh``).

``solution_str`` is the decoded response. ``recode data export --format verl`` stores the
assistant prefix ``"Let me solve this step by step.\\n<think>"`` in
``extra_info["assistant_prefix"]`` (verl cannot continue an assistant turn); when the
response starts with it, it is stripped before scoring, so responses with and without the
prefix score the same. The returned dict's ``score`` is format + ES* (range -3..3); its other
keys (``format``, ``es_star``, ``em_star``, ...) land in verl's ``reward_extra_info``, and
``algorithm.filter_groups.metric=score`` filters DAPO groups on the total.
"""

from recode import compute_score as _compute_score


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """verl's signature; returns a dict whose ``score`` is format + ES* (range -3..3)."""
    return _compute_score(data_source, solution_str, ground_truth, extra_info)
