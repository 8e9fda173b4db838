"""Row images without copies: `collected` holds the original bytes, `cleaned` only the bytes of
images it changed. A stage that needs pixels streams `collected` once, in step with its own
input (both were written in source order), instead of storing images again.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.resource import LakeResource


class PartitionImages:
    """Original image bytes of one partition's rows, looked up in the partition's row order."""

    def __init__(self, lake: LakeResource, subset: str, *, batch_size: int = 64) -> None:
        self._batches = read_partition(
            lake.location("collected"),
            {"subset": subset},
            columns=["id", "image_bytes"],
            batch_size=batch_size,
        )
        self._ids: list[str] = []
        self._images: list[bytes | None] = []
        self._next = 0

    def take(self, ids: Sequence[str]) -> list[bytes | None]:
        """Images of `ids`, which must follow the order of `collected` (any subsequence of it:
        every stage keeps its input's order)."""
        return [self._advance_to(i) for i in ids]

    def _advance_to(self, row_id: str) -> bytes | None:
        while True:
            while self._next < len(self._ids):
                k = self._next
                self._next += 1
                if self._ids[k] == row_id:
                    return self._images[k]
            batch = next(self._batches, None)
            if batch is None:
                raise LookupError(
                    f"row {row_id!r} is not in `collected` after the previous rows: "
                    "re-materialize the partition's upstream assets"
                )
            self._ids = batch.column("id").to_pylist()
            self._images = batch.column("image_bytes").to_pylist()
            self._next = 0


def row_images(
    joiner: PartitionImages, ids: Sequence[str], cleaned_bytes: Sequence[bytes | None]
) -> list[bytes | None]:
    """The image a row is trained on: cleaning's bytes when it changed the image, else the
    original."""
    originals = joiner.take(ids)
    return [c if c is not None else o for c, o in zip(cleaned_bytes, originals)]
