"""Running one stage over one partition: rows in, rows kept, rows dropped with their reasons.

A stage's `decide` keeps the row contract (`contract.py`). This module streams the batches,
writes kept rows to the stage's table and dropped rows to the rejections table, refuses any
batch that loses rows, and publishes both tables.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing, nullcontext
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.rejections import REJECTION_SCHEMA
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lake.shards import check_lake, open_writer
from mmfr_assets.lineage import ROOT
from mmfr_assets.partitions import lake_partition
from mmfr_assets.progress import Counts, Reporter
from mmfr_assets.stage.contract import Filter, Verdicts


@dataclass
class StageRun:
    """The outcome of one stage on one partition, as committed."""

    stage: str
    subset: str
    filters: Sequence[Filter]
    schema: pa.Schema
    table_uri: str
    rejections_uri: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: Counter = field(default_factory=Counter)  # (filter, reason) -> rows
    version: int | None = None

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


def run_stage(
    lake: LakeResource,
    *,
    stage: str,
    subset: str,
    batches: Iterable[pl.DataFrame],
    decide: Callable[[pl.DataFrame], Verdicts],
    schema: pa.Schema,
    filters: Sequence[Filter] = (),
    on_batch: Callable[[StageRun], None] | None = None,
    progress: Reporter | None = None,
) -> StageRun:
    """Stream `batches` through `decide` into the stage's table and the rejections table.

    Both tables' partitions are replaced only after the last batch: the rejections first, then
    the stage table, whose new version is what downstream assets and the accounting check read.
    `batches` is closed when the stage ends, failed or not, if it has a `close()` (a generator,
    a `PartitionReader`): a half-read upstream scan must not outlive the stage.
    `progress` (a CPU stage's) is told the rows read after each batch, and finished at the end.
    `subset` is the run's partition key: a subset, or a subset's shard (`0|BMMR`); a whole
    subset with MMFR_SHARDS > 1 (`collected`) is written into every shard in one commit.
    """
    check_lake(lake.location(ROOT))
    run = StageRun(
        stage=stage,
        subset=subset,
        filters=filters,
        schema=schema,
        table_uri=lake.location(stage).uri,
        rejections_uri=lake.location(REJECTIONS_TABLE).uri,
    )
    known = {(f.name, r) for f in filters for r in f.reasons}
    with (
        closing(progress) if progress is not None else nullcontext(),
        closing(batches) if hasattr(batches, "close") else nullcontext(batches) as batches,
        open_writer(lake.location(stage), without_field_metadata(schema), subset) as kept_out,
        open_writer(
            lake.location(REJECTIONS_TABLE), REJECTION_SCHEMA, subset, {"stage": stage}
        ) as dropped_out,
    ):
        for batch in batches:
            verdicts = decide(batch)
            if verdicts.kept.height + verdicts.dropped.height != batch.height:
                raise RuntimeError(
                    f"{stage}: a batch of {batch.height} rows came out as {verdicts.kept.height} "
                    f"kept + {verdicts.dropped.height} dropped; refusing to lose rows silently"
                )
            for row in verdicts.dropped.group_by("filter", "reason").len().iter_rows():
                if (row[0], row[1]) not in known:
                    raise RuntimeError(f"{stage}: undeclared drop reason {row[0]}/{row[1]}")
                run.dropped[(row[0], row[1])] += row[2]
            kept_out.write(verdicts.kept.to_arrow())
            dropped_out.write(verdicts.dropped.to_arrow())
            run.rows_in += batch.height
            run.rows_out += verdicts.kept.height
            if on_batch is not None:
                on_batch(run)
            if progress is not None:
                progress.update(Counts(done=run.rows_in))
        dropped_out.commit()
        run.version = kept_out.commit()
    return run


def without_field_metadata(schema: pa.Schema) -> pa.Schema:
    """The schema a table is written with: its fields' descriptions (a model step's
    `output_schema`) are for the materialization's column schema, not the Delta log."""
    return pa.schema([f.remove_metadata() for f in schema], metadata=schema.metadata)


def upstream_batches(
    lake: LakeResource,
    upstream: str,
    subset: str,
    *,
    batch_size: int,
    columns: list[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """The `upstream` table's partition as Polars batches of at least `batch_size` rows (at most
    twice that; the last may be smaller), in the order it was written.

    Reads stop at parquet row groups, which upstream stages write at their own batch size (256
    rows for image stages); regrouping keeps per-batch overhead low for the text stages.
    Closing the generator (`run_stage` does) closes the partition read at once.
    """
    pending: list[pa.RecordBatch] = []
    rows = 0
    with read_partition(
        lake.location(upstream), lake_partition(subset), columns=columns, batch_size=batch_size
    ) as reader:
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= batch_size:
                yield pl.from_arrow(pa.Table.from_batches(pending))
                pending, rows = [], 0
    if pending:
        yield pl.from_arrow(pa.Table.from_batches(pending))
