"""What an export reads: one selection table and the tables its rows' images and funnel come
from, each pinned at the Delta version current when the export started.

Pinning makes the export one consistent snapshot (a materialization committing meanwhile cannot
mix versions into it) and lets the dataset card name the exact versions it was made from.
Before anything is written, every requested subset is checked: a subset whose tables are
missing, or whose row counts do not add up along the lineage (a failed or half-redone
materialization), is refused by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import DeltaLocation, count_rows, read_partition
from mmfr_assets.lake.ordered import OrderedRows, training_image
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import EXPORTABLE, NAME, NODES, chain
from mmfr_assets.reporting.funnel import funnel_table

# Each table's lineage (`lineage.chain`): the stages whose rows it holds a subset of. A
# filtering stage also records its drops in `rejections` under its own name, so upstream rows =
# kept + dropped holds for every stage. The tables a user trains on: `lineage.EXPORTABLE`.
lineage = chain


@dataclass(frozen=True)
class PinnedLocation(DeltaLocation):
    """A Delta table read at one version (`None`: the table does not exist)."""

    version: int | None = None

    def table(self) -> DeltaTable | None:
        if self.version is None:
            return None
        try:
            return DeltaTable(
                self.uri, version=self.version, storage_options=dict(self.storage_options) or None
            )
        except TableNotFoundError:
            return None


def _close(reader) -> None:
    """Close an `OrderedRows` (or its batch generator, before it had `close`) deterministically:
    a half-read pyarrow scan left to the garbage collector can hang the process at exit."""
    close = getattr(reader, "close", None)
    if close is not None:
        close()
    else:
        reader._batches.close()


class ExportSource:
    """The pinned tables of one export of `asset`."""

    def __init__(self, lake: LakeResource, asset: str) -> None:
        if asset not in EXPORTABLE:
            raise InputError(f"export: {asset!r} is not exportable; choose one of {', '.join(EXPORTABLE)}")
        self.lake = lake
        self.asset = asset
        self.versions: dict[str, int | None] = {}
        for name in [*lineage(asset), REJECTIONS_TABLE]:
            table = lake.location(name).table()
            self.versions[name] = table.version() if table is not None else None
        if self.versions[asset] is None:
            raise InputError(
                f"export: the table {asset} does not exist in the lake {lake.uri}: materialize it first"
            )

    def location(self, name: str) -> PinnedLocation:
        current = self.lake.location(name)
        return PinnedLocation(current.uri, current.storage_options, self.versions.get(name))

    def problems(self, subset: str) -> str | None:
        """Why `subset` cannot be exported, or None. Checks each table of the lineage: the
        partition exists, and upstream rows = rows kept + rows dropped at that stage."""
        rejections = self.location(REJECTIONS_TABLE)
        for stage in lineage(self.asset):
            if self.versions.get(stage) is None:
                return f"the table {stage} is missing"
            kept = count_rows(self.location(stage), {"subset": subset})
            dropped = count_rows(rejections, {"stage": stage, "subset": subset})
            if kept + dropped == 0:
                return f"{stage} has no rows for it (not materialized, or its run failed)"
            upstream = NODES[stage].upstream
            if upstream is None:
                continue
            rows_in = count_rows(self.location(upstream), {"subset": subset})
            if rows_in != kept + dropped:
                return (
                    f"{stage} does not account for {upstream} ({rows_in} rows in, {kept} kept + "
                    f"{dropped} dropped): its last materialization failed or is out of date"
                )
        return None

    def refuse_unusable(self, subsets: Sequence[str]) -> None:
        """Raise one InputError naming every subset that cannot be exported, and why."""
        if not subsets:
            raise InputError("export: no subsets to export")
        refused = [(s, p) for s in subsets if (p := self.problems(s)) is not None]
        if refused:
            raise InputError(
                "export refused: " + "; ".join(f"subset {s!r}: {p}" for s, p in refused)
            )

    def rows(self, subset: str, *, batch_size: int = 256) -> Iterator[tuple[pa.RecordBatch, list[bytes | None]]]:
        """The partition's rows in batches, each with the image bytes the row is trained on:
        cleaning's bytes where it changed the image, else the original from `collected`
        (both joined in one streaming pass: every table keeps its upstream's row order)."""
        batches = read_partition(self.location(self.asset), {"subset": subset}, batch_size=batch_size)
        cleaned = originals = None
        try:
            cleaned = OrderedRows(self.location(NAME.cleaned), subset, ["image_bytes"], batch_size=batch_size)
            originals = OrderedRows(self.location(NAME.collected), subset, ["image_bytes"], batch_size=64)
            for batch in batches:
                ids = batch.column("id").to_pylist()
                changed = cleaned.take(ids)["image_bytes"]
                original = originals.take(ids)["image_bytes"]
                yield batch, [training_image(c, o) for c, o in zip(changed, original)]
        finally:
            batches.close()
            for reader in (cleaned, originals):
                if reader is not None:
                    _close(reader)

    def funnel(self, subsets: Sequence[str]) -> list[dict]:
        """Rows per stage and drops per (stage, filter, reason) for `subsets`, from the pinned
        tables: what the card prints."""
        return funnel_table(self.location, subsets, list(reversed(lineage(self.asset))),
                            kept="(rows kept)").to_dicts()
