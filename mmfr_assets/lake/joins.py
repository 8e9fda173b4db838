"""One join for every stage that reads a table and takes columns of a table derived from it
(a model step's verdicts onto its upstream's rows, pass rates onto quality rows): both are in
the partition's row order, so `OrderedRows` reads them in step, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import polars as pl

from mmfr_assets.lake.ordered import OrderedRows
from mmfr_assets.lake.resource import LakeResource


def join_in_order(
    lake: LakeResource, batches: Iterator[pl.DataFrame], table: str, subset: str,
    columns: Mapping[str, str],
) -> Iterator[pl.DataFrame]:
    """`batches` with columns taken from `table`'s rows of the same ids (`columns`: table
    column -> batch column, replaced or added). `table` was derived from the batches' table
    (or they share an ancestor's order), so both are read in step. Closes `batches` and the
    table's scan on every path."""
    try:
        with OrderedRows(lake.location(table), subset, list(columns)) as rows:
            for batch in batches:
                taken = rows.take(batch["id"].to_list())
                yield batch.with_columns(
                    pl.Series(target, taken[source], dtype=batch.schema.get(target))
                    if target in batch.columns else pl.Series(target, taken[source])
                    for source, target in columns.items()
                )
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
