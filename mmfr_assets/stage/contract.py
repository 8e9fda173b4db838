"""The row contract of a stage (the datatrove filter contract, batch-wise): a pure function turns
a batch into the rows it keeps and the rows it drops, each drop with a filter and a reason.

What the filter modules need and nothing of the graph: `lineage.py` imports every stage's
filters, so this module must not import the lineage (nor anything that does).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mmfr_assets.lake.rejections import REJECTION_COLUMNS


@dataclass(frozen=True)
class Filter:
    """A named filter and the reasons it can give, in the order they are tested."""

    name: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Verdicts:
    """What a stage decided for one batch: kept rows, and dropped rows (id, filter, reason, detail)."""

    kept: pl.DataFrame
    dropped: pl.DataFrame

    @staticmethod
    def no_drops(kept: pl.DataFrame) -> Verdicts:
        return Verdicts(kept, empty_drops())


def empty_drops() -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.String for c in REJECTION_COLUMNS})


def split_by_reason(
    frame: pl.DataFrame,
    reason: pl.Expr | pl.Series,
    filter_of: dict[str, str],
    detail: pl.Expr | None = None,
) -> Verdicts:
    """Split `frame` on a reason per row (null = keep) into kept rows and drops."""
    tagged = frame.with_columns(
        _reason=reason, _detail=detail if detail is not None else pl.lit(None, pl.String)
    )
    kept = tagged.filter(pl.col("_reason").is_null()).drop("_reason", "_detail")
    dropped = tagged.filter(pl.col("_reason").is_not_null()).select(
        pl.col("id").cast(pl.String),
        pl.col("_reason").replace_strict(filter_of, return_dtype=pl.String).alias("filter"),
        pl.col("_reason").alias("reason"),
        pl.col("_detail").cast(pl.String).alias("detail"),
    )
    return Verdicts(kept, dropped)
