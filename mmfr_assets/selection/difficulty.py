"""The difficulty rule: keep what the student model does not already solve.

The paper samples the 4B student 4 times per question: pass rate 0 gives the 123K subset,
pass rate != 1 (i.e. <= 0.75) the 586K subset. A row without a pass rate cannot be judged and
is dropped with its own reason rather than silently treated as hard or easy.
"""

from __future__ import annotations

import polars as pl

from mmfr_assets.stage import Filter, Verdicts, split_by_reason

FILTERS = (Filter("difficulty", ("difficulty_pass_rate_missing", "difficulty_too_easy")),)
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}


def select_difficulty(batch: pl.DataFrame, max_pass_rate: float) -> Verdicts:
    reason = (
        pl.when(pl.col("pass_rate").is_null() | pl.col("pass_rate").is_nan())
        .then(pl.lit("difficulty_pass_rate_missing"))
        .when(pl.col("pass_rate") > max_pass_rate)
        .then(pl.lit("difficulty_too_easy"))
    )
    detail = pl.when(pl.col("pass_rate") > max_pass_rate).then(
        pl.format("pass rate {} > {}", pl.col("pass_rate"), pl.lit(max_pass_rate))
    )
    return split_by_reason(batch, reason, FILTER_OF, detail=detail)
