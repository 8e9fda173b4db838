"""The lake's side of shards (`MMFR_SHARDS`, issue 19; the partitions are `partitions.py`).

A row's shard is a stable hash of its `(subset, id)` (BLAKE2b, not Python's salted `hash()`), so
adding rows to a source never moves existing rows between shards. `collected` writes a subset's
every shard in one commit (`ShardedWriter`); every commit records the shard count it was
written with, and a lake written with another count is refused (`check_lake`): its rows sit in
other shards and would be read twice or not at all. Shards are read in the order of their
files' paths in every table, so row-order joins stay valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter
from mmfr_assets.partitions import SHARD, SUBSET, lake_partition
from mmfr_assets.settings import shard_count

# commitInfo key of every sharded commit: the shard count the table was written with.
SHARDS_KEY = "mmfr.shards"


def shard_of(subset: str, row_id: str, shards: int) -> int:
    """A row's shard: BLAKE2b of (subset, id), the same in every process and Python version,
    and independent of every other row (adding rows never moves a row)."""
    digest = hashlib.blake2b(f"{subset}\x1f{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shards_of(subset: str, ids: Sequence[str], shards: int) -> list[int]:
    return [shard_of(subset, i, shards) for i in ids]


class ShardedWriter:
    """The writer of one subset's rows into its K shard partitions, published in one commit
    that replaces the subset's every shard (`collected`, and its rejections)."""

    def __init__(self, location: DeltaLocation, schema: pa.Schema, partition: Mapping[str, str],
                 shards: int) -> None:
        self.partition = dict(partition)
        self.shards = shards
        self.writers = [
            PartitionWriter(location, schema, {**self.partition, SHARD: str(k)},
                            commit_metadata={SHARDS_KEY: str(shards)})
            for k in range(shards)
        ]

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for writer in self.writers:
            writer.__exit__(exc_type, exc, tb)

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows == 0:
            return
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        shard = pa.array(shards_of(self.partition[SUBSET], data.column("id").to_pylist(), self.shards))
        for k, writer in enumerate(self.writers):
            writer.write(data.filter(pc.equal(shard, k)))

    def commit(self) -> int:
        return self.writers[0].commit(together=self.writers[1:], replacing=self.partition)


def open_writer(location: DeltaLocation, schema: pa.Schema, key: str,
                extra: Mapping[str, str] | None = None, *, shards: int | None = None):
    """The writer of a run's partition `key` of a table (`extra`: more partition columns, the
    rejections' stage): a subset's K shards when the key is a whole subset and K > 1."""
    shards = shard_count() if shards is None else shards
    partition = {**(extra or {}), **lake_partition(key)}
    if shards > 1 and SHARD not in partition:
        return ShardedWriter(location, schema, partition, shards)
    metadata = {SHARDS_KEY: str(shards)} if shards > 1 else None
    return PartitionWriter(location, schema, partition, commit_metadata=metadata)


def lake_shards(location: DeltaLocation) -> int | None:
    """The shard count `location`'s table was written with (None: no table yet, or no commit
    that says so is left in its log).

    Every commit of ours carries the count; maintenance commits do not (a vacuum adds two, an
    optimize one), so the newest commit that carries it is looked for, the last few first."""
    table = location.table()
    if table is None:
        return None
    if SHARD not in table.metadata().partition_columns:
        return 1
    for limit in (8, None):
        for commit in table.history(limit):
            if SHARDS_KEY in commit:
                return int(commit[SHARDS_KEY])
    return None


def _shards_present(location: DeltaLocation) -> int:
    """1 + the highest shard number in `location`'s files (a lower bound of its shard count)."""
    table = location.table()
    values = (dict(p).get(SHARD) for p in table.partitions()) if table is not None else ()
    return 1 + max((int(v) for v in values if v is not None and v.isdigit()), default=-1)


def check_lake(location: DeltaLocation, shards: int | None = None) -> None:
    """Refuse (one line) a table written with another shard count than `MMFR_SHARDS`."""
    shards = shard_count() if shards is None else shards
    found = lake_shards(location)
    if found is None and location.table() is not None and _shards_present(location) > shards:
        raise InputError(
            f"{location.uri} holds shards 0 to {_shards_present(location) - 1}, and MMFR_SHARDS is "
            f"{shards}: set MMFR_SHARDS to the count this lake was written with (its log no longer "
            f"says), or point MMFR_LAKE at a new lake and materialize it from `collected`"
        )
    if found is not None and found != shards:
        raise InputError(
            f"{location.uri} was written with MMFR_SHARDS={found}, and MMFR_SHARDS is {shards}: "
            f"set MMFR_SHARDS={found} to use this lake, or point MMFR_LAKE at a new lake and "
            f"materialize it from `collected`"
        )
