"""recode: ReCode's rule-based rewards (format, EM*, ES*) implemented in Rust.

verl: ``compute_score(data_source, solution_str, ground_truth, extra_info=None)`` returns
``{"score": format + es_star, "format": ..., "es_star": ..., "em_star": ...}``;
``compute_score_batch`` is the batch form. TRL: see ``recode.trl``. Batch functions release
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
