"""The difficulty rule: keep what the student model does not already solve.

The paper samples the 4B student 4 times per question: pass rate 0 gives the 123K subset,
pass rate != 1 the 586K subset (`max_pass_rate` 0.0 inclusive, or 1.0 exclusive). A row
without a pass rate cannot be judged and is dropped with its own reason (and, when the batch
carries `pass_rate_detail` from `student_rollouts`, why it has none) rather than silently
treated as hard or easy.
"""

from __future__ import annotations

import polars as pl

from mmfr_assets.stage import Filter, Verdicts, split_by_reason

FILTERS = (Filter("difficulty", ("difficulty_pass_rate_missing", "difficulty_too_easy")),)
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}
DETAIL_COLUMN = "pass_rate_detail"


def select_difficulty(batch: pl.DataFrame, max_pass_rate: float, *, inclusive: bool = True) -> Verdicts:
    """Keep pass rate <= max_pass_rate (`inclusive`) or < max_pass_rate."""
    rate = pl.col("pass_rate")
    missing = rate.is_null() | rate.is_nan()
    too_easy = rate > max_pass_rate if inclusive else rate >= max_pass_rate
    reason = (
        pl.when(missing)
        .then(pl.lit("difficulty_pass_rate_missing"))
        .when(too_easy)
        .then(pl.lit("difficulty_too_easy"))
    )
    relation = ">" if inclusive else ">="
    detail = pl.when(~missing & too_easy).then(
        pl.format(f"pass rate {{}} {relation} {{}}", rate, pl.lit(max_pass_rate))
    )
    if DETAIL_COLUMN in batch.columns:
        detail = detail.when(missing).then(pl.col(DETAIL_COLUMN))
    verdicts = split_by_reason(batch, reason, FILTER_OF, detail=detail)
    if DETAIL_COLUMN in batch.columns:
        verdicts = Verdicts(verdicts.kept.drop(DETAIL_COLUMN), verdicts.dropped)
    return verdicts
