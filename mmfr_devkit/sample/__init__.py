"""Deterministic synthetic sample of MMFineReason in hub layout (for demos, tests, benchmarks).

``write_sample(out_dir)`` writes the bundled demo sample; ``expected_reasons``
tells, for every row id, why the pipeline must drop it (None = it survives).
"""

from .generate import FEATURES, describe, iter_rows, write_sample
from .plan import (
    ANSWER_TAG_EXEMPT_SUBSETS,
    REASON_STAGE,
    REASONS,
    REPAIRS,
    SAMPLE_SUBSETS,
    STAGE_REASONS,
    RowSpec,
    default_kinds,
    expected_counts,
    expected_reasons,
    expected_repairs,
    plan_rows,
)

__all__ = [
    "ANSWER_TAG_EXEMPT_SUBSETS", "FEATURES", "REASONS", "REASON_STAGE", "REPAIRS", "SAMPLE_SUBSETS",
    "STAGE_REASONS", "RowSpec", "default_kinds", "describe", "expected_counts", "expected_reasons",
    "expected_repairs", "iter_rows", "plan_rows", "write_sample",
]
