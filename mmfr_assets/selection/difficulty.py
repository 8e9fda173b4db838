"""The difficulty rule: keep what the student model does not already solve.

The paper samples the 4B student 4 times per question: pass rate 0 gives the 123K subset,
pass rate != 1 the 586K subset (`max_pass_rate` 0.0 inclusive, or 1.0 exclusive; in the config
also `pass_rate_at_most: 0` and `pass_rate_below: 1`). Where some
samples could not be decided, the pass rate is only known to lie in [`pass_rate_low`,
`pass_rate_high`]: a row is kept only when every value there passes, dropped as too easy only
when none does, and otherwise dropped as `difficulty_undecided` with the counts: never a guess.
A row without a pass rate is dropped with its own reason (and, when the batch carries
`pass_rate_detail`, why it has none).
"""

from __future__ import annotations

import polars as pl

from mmfr_assets.stage import Filter, Verdicts, split_by_reason

FILTERS = (
    Filter("difficulty", ("difficulty_pass_rate_missing", "difficulty_undecided", "difficulty_too_easy")),
)
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}
DETAIL_COLUMN = "pass_rate_detail"


def recipe_rule(max_pass_rate: float, inclusive: bool) -> str:
    """The recipe in words, e.g. "pass rate <= 0" or "pass rate < 1"."""
    return f"pass rate {'<=' if inclusive else '<'} {max_pass_rate:g}"


def select_difficulty(batch: pl.DataFrame, max_pass_rate: float, *, inclusive: bool = True) -> Verdicts:
    """Keep pass rate <= max_pass_rate (`inclusive`) or < max_pass_rate; with bounds
    (`pass_rate_low`/`pass_rate_high` columns), only rows whose whole range passes."""
    rate = pl.col("pass_rate")
    has_bounds = {"pass_rate_low", "pass_rate_high"} <= set(batch.columns)
    low = pl.coalesce(pl.col("pass_rate_low"), rate) if has_bounds else rate
    high = pl.coalesce(pl.col("pass_rate_high"), rate) if has_bounds else rate

    def fails(value: pl.Expr) -> pl.Expr:
        return value > max_pass_rate if inclusive else value >= max_pass_rate

    missing = low.is_null() | low.is_nan() | high.is_null() | high.is_nan()
    reason = (
        pl.when(missing).then(pl.lit("difficulty_pass_rate_missing"))
        .when(fails(low)).then(pl.lit("difficulty_too_easy"))
        .when(fails(high)).then(pl.lit("difficulty_undecided"))
    )
    rule = recipe_rule(max_pass_rate, inclusive)
    exact = low == high
    detail = (
        pl.when(~missing & fails(low) & exact).then(pl.format(f"pass rate {{}} fails {rule}", low))
        .when(~missing & fails(low)).then(pl.format(f"pass rate between {{}} and {{}} fails {rule}", low, high))
    )
    undecided = pl.format(f"pass rate between {{}} and {{}}: {rule} holds for part of it only", low, high)
    if DETAIL_COLUMN in batch.columns:
        detail = detail.when(~missing & fails(high)).then(
            pl.concat_str([undecided, pl.col(DETAIL_COLUMN)], separator="; ", ignore_nulls=True))
        detail = detail.when(missing).then(pl.col(DETAIL_COLUMN))
    else:
        detail = detail.when(~missing & fails(high)).then(undecided)
    verdicts = split_by_reason(batch, reason, FILTER_OF, detail=detail)
    extra = [c for c in (DETAIL_COLUMN, "pass_rate_low", "pass_rate_high") if c in batch.columns]
    if extra:
        verdicts = Verdicts(verdicts.kept.drop(extra), verdicts.dropped)
    return verdicts


def decided_by_bounds(batch: pl.DataFrame, max_pass_rate: float, *, inclusive: bool = True) -> int:
    """Rows whose pass rate is only bounded yet whose whole range passes or fails the recipe."""
    if not {"pass_rate_low", "pass_rate_high"} <= set(batch.columns):
        return 0
    low, high = pl.col("pass_rate_low"), pl.col("pass_rate_high")

    def fails(value: pl.Expr) -> pl.Expr:
        return value > max_pass_rate if inclusive else value >= max_pass_rate

    return batch.filter((low != high) & (fails(low) | ~fails(high))).height
