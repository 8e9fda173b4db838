"""Rows of a table that is a subsequence of a stream of ids, found in one pass.

Every stage writes its rows in its input's order, and so does the rejections table, so the
rows a stage kept, the rows it dropped and the images of either can all be matched against
the stage's input ids by walking both in step, with one batch of each in memory. Unlike
`OrderedRows.take` a missing id is normal here (the row was dropped, or its image unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any

from mmfr_assets.lake.delta import DeltaLocation, read_partition
from mmfr_assets.lake.resource import LakeResource


class SubsequenceLookup:
    """`get(ids)`: each id's row (a dict of `columns`) if the table holds it, else None.

    `ids` across calls must follow the order of the stream the table was derived from.
    A table that does not exist holds no rows. Close it (or use `with`) to end the scan.
    """

    def __init__(
        self,
        location: DeltaLocation,
        partition: Mapping[str, str],
        columns: Sequence[str] = (),
        *,
        batch_size: int = 256,
    ) -> None:
        self._columns = [c for c in columns if c != "id"]
        self._batches: Iterator | None = None
        if location.table() is not None:
            self._batches = read_partition(
                location, partition, columns=["id", *self._columns], batch_size=batch_size
            )
        self._rows: list[dict[str, Any]] = []
        self._next = 0

    def __enter__(self) -> SubsequenceLookup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()
            self._batches = None

    def _peek(self) -> dict[str, Any] | None:
        while self._next >= len(self._rows):
            batch = next(self._batches, None) if self._batches is not None else None
            if batch is None:
                return None
            self._rows = batch.to_pylist()
            self._next = 0
        return self._rows[self._next]

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for row_id in ids:
            row = self._peek()
            if row is not None and row["id"] == row_id:
                self._next += 1
                found.append(row)
            else:
                found.append(None)
        return found


class SupersequenceLookup(SubsequenceLookup):
    """`get(ids)` for a table that holds every id of the stream and more (an upstream table:
    `collected` under the rows of `distilled`): table rows the stream skips are passed over.

    `SubsequenceLookup` on such a table stops matching at the first row the stream does not
    have (every later id reads as absent: the viewer showed "no image" for every row after the
    first row cleaning dropped). An id the table lacks (an out-of-date table) is None, and so
    is every later one; `missing` counts them.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.missing = 0

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for row_id in ids:
            row = self._peek()
            while row is not None and row["id"] != row_id:
                self._next += 1
                row = self._peek()
            if row is None:
                self.missing += 1
                found.append(None)
            else:
                self._next += 1
                found.append(row)
        return found


def closing_iter(batches):
    """Iterate a partition scan and close it on every path (a half-read pyarrow scan left to
    the garbage collector can hang the process at exit)."""
    with closing(batches):
        yield from batches


def table_columns(lake: LakeResource, table: str) -> list[str]:
    """Column names of a table's current version ([] when it does not exist)."""
    found = lake.location(table).table()
    return found.to_pyarrow_dataset().schema.names if found is not None else []
