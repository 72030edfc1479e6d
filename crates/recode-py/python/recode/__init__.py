"""recode: ReCode's rule-based rewards (format, EM*, ES*) implemented in Rust.

verl: ``compute_score(data_source, solution_str, ground_truth, extra_info=None)`` returns
``{"score": format + es_star, "format": ..., "es_star": ..., "em_star": ...}``;
``compute_score_batch`` is the batch form. ``solution_str`` may come with or without the
assistant prefix that ``recode data export --format verl`` stores in
``extra_info["assistant_prefix"]``: when it starts with that prefix, the prefix is stripped
before scoring (the reward is defined on the text after it). TRL: see ``recode.trl``. Batch functions release
the GIL and score in parallel. ``mode="paper"`` (default) is bit-compatible with the
published reward; ``mode="fixed"`` removes its quirks.
"""

from ._native import (  # noqa: F401
    compute_score,
    compute_score_batch,
    extract_code_block,
    format_rewards,
    is_valid_python,
    levenshtein,
    normalize_code,
    reward_values,
    score,
    score_batch,
)

__all__ = [
    "compute_score",
    "compute_score_batch",
    "extract_code_block",
    "format_rewards",
    "is_valid_python",
    "levenshtein",
    "normalize_code",
    "reward_values",
    "score",
    "score_batch",
]
