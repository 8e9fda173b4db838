"""Joining tables of one partition without loading them: every stage writes its rows in its
input's order, so a table derived from another is a subsequence of it. Reading both in step
joins them in one streaming pass with bounded memory.

This is how row images reach the stages that need pixels: `collected` holds the original
bytes, `cleaned` only the bytes of images it changed, and nothing stores them again.

Both readers hold a partition scan open between calls: use them as context managers (or call
`close()`) so the scan ends when the stage ends, failed or not (see `PartitionReader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmfr_assets.lake.delta import DeltaLocation, read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import NAME
from mmfr_assets.partitions import lake_partition


class OrderedRows:
    """Columns of one partition's rows, taken by id in the partition's row order.

    `with OrderedRows(...) as rows:` closes the underlying scan on every path."""

    def __init__(
        self, location: DeltaLocation, subset: str, columns: Sequence[str], *, batch_size: int = 256
    ) -> None:
        self._columns = list(columns)
        self._batches = read_partition(
            location, lake_partition(subset), columns=["id", *self._columns], batch_size=batch_size
        )
        self._ids: list[str] = []
        self._values: list[list[Any]] = []
        self._next = 0
        self._location = location

    def __enter__(self) -> OrderedRows:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Release the partition scan now (idempotent)."""
        self._batches.close()

    def take(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        """Values of `columns` for `ids`, which must follow the table's order (any subsequence:
        every stage keeps its input's order)."""
        rows = [self._advance_to(i) for i in ids]
        return {c: [row[k] for row in rows] for k, c in enumerate(self._columns)}

    def _advance_to(self, row_id: str) -> tuple:
        while True:
            while self._next < len(self._ids):
                k = self._next
                self._next += 1
                if self._ids[k] == row_id:
                    return tuple(values[k] for values in self._values)
            batch = next(self._batches, None)
            if batch is None:
                raise LookupError(
                    f"row {row_id!r} is not in {self._location.uri} after the previous rows: "
                    "re-materialize the partition's upstream assets"
                )
            self._ids = batch.column("id").to_pylist()
            self._values = [batch.column(c).to_pylist() for c in self._columns]
            self._next = 0


def training_image(changed: bytes | None, original: bytes | None) -> bytes | None:
    """The image a row is trained on: cleaning's bytes where it changed the image (it stores
    none for an image it kept as it was), else the original in `collected`; empty bytes are no
    image. The one home of the rule: the model steps, dedup, the export and the row viewer all
    read a row's image through it."""
    return changed if changed else original


class PartitionImages:
    """The image each row is trained on (`training_image`), by id in the partition's order. The
    caller passes `cleaned`'s bytes where it reads them anyway (`take(ids, cleaned_bytes)`), or
    `read_cleaned=True` reads them here (`images(row_id)`, for rows of any table derived from
    `cleaned`). A context manager like `OrderedRows`."""

    def __init__(self, lake: LakeResource, subset: str, *, batch_size: int = 64, read_cleaned: bool = False) -> None:
        self._originals = OrderedRows(
            lake.location(NAME.collected), subset, ["image_bytes"], batch_size=batch_size
        )
        self._cleaned = (OrderedRows(lake.location(NAME.cleaned), subset, ["image_bytes"], batch_size=batch_size)
                         if read_cleaned else None)

    def __enter__(self) -> PartitionImages:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Release the scans now (idempotent)."""
        self._originals.close()
        if self._cleaned is not None:
            self._cleaned.close()

    def take(self, ids: Sequence[str], cleaned_bytes: Sequence[bytes | None] | None = None) -> list[bytes | None]:
        if cleaned_bytes is None:
            if self._cleaned is None:
                raise ValueError("PartitionImages.take needs cleaned's bytes, or read_cleaned=True")
            cleaned_bytes = self._cleaned.take(ids)["image_bytes"]
        originals = self._originals.take(ids)["image_bytes"]
        return [training_image(c, o) for c, o in zip(cleaned_bytes, originals)]

    def __call__(self, row_id: str) -> bytes | None:
        return self.take([row_id])[0]
