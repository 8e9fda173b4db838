"""Duplicate ids in a source subset: refuse the partition, or keep the first row of each id.

Later tables join on (subset, id), so `collected` must never commit an id twice. The ids of one
partition are held in a set (2.3M strings at most for the published dataset, ~200 MB); rows are
never held. `reject` lets the stream run to its end so that the error can give the count and the
first few ids, then refuses before anything is committed; `keep_first` records every later row
of an id in `rejections` (filter `collection`, reason `duplicate_id`).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from mmfr_assets.errors import InputError
from mmfr_assets.stage import Filter, Verdicts, split_by_reason

DUPLICATE_FILTERS = (Filter("collection", ("duplicate_id",)),)
EXAMPLES = 5


class DuplicateIds:
    """Tracks the ids of one partition across its batches (`decide` is run_stage's decider)."""

    def __init__(self, subset: str, mode: Literal["reject", "keep_first"]) -> None:
        if mode not in ("reject", "keep_first"):
            raise InputError(f"collected: duplicate_ids must be reject or keep_first, got {mode!r}")
        self.subset = subset
        self.mode = mode
        self.seen: set[str] = set()
        self.rows_seen = 0
        self.duplicate_rows = 0
        self.duplicated: set[str] = set()
        self.examples: list[str] = []  # the first duplicated ids, in source order

    def decide(self, batch: pl.DataFrame) -> Verdicts:
        ids = batch["id"].to_list()
        repeated = []
        for row, id_ in enumerate(ids):
            if id_ in self.seen:
                repeated.append(True)
                self.duplicate_rows += 1
                if id_ not in self.duplicated:
                    self.duplicated.add(id_)
                    if len(self.examples) < EXAMPLES:
                        self.examples.append(id_)
            else:
                repeated.append(False)
                self.seen.add(id_)
        first_row = self.rows_seen
        self.rows_seen += batch.height
        if self.mode == "reject" or not any(repeated):
            return Verdicts.no_drops(batch)
        tagged = batch.with_columns(
            pl.Series("_repeated", repeated, pl.Boolean),
            pl.int_range(first_row, first_row + batch.height, eager=True).alias("_row"),
        )
        verdicts = split_by_reason(
            tagged,
            pl.when(pl.col("_repeated")).then(pl.lit("duplicate_id")),
            {"duplicate_id": "collection"},
            detail=pl.format("source row {} repeats an earlier row's id", pl.col("_row")),
        )
        return Verdicts(verdicts.kept.drop("_repeated", "_row"), verdicts.dropped)

    def refuse_if_any(self) -> None:
        """In `reject` mode, refuse the partition (one line: count and first ids) if any id
        repeated. Called after the last batch and before the commit."""
        if self.mode != "reject" or not self.duplicated:
            return
        shown = ", ".join(repr(i) for i in self.examples)
        more = len(self.duplicated) - len(self.examples)
        raise InputError(
            f"source subset {self.subset}: {len(self.duplicated)} ids occur more than once "
            f"({self.duplicate_rows} extra rows), e.g. {shown}{f' and {more} more' if more else ''}"
            "; nothing was collected. Ids must be unique (later tables join on them); "
            "collected's config `duplicate_ids: keep_first` keeps the first row of each id and "
            "records the others as dropped"
        )
