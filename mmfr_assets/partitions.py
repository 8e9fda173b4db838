"""Shard partitions: one subset split over many runs (`MMFR_SHARDS`, issue 19).

With `MMFR_SHARDS=1` (the default) every asset is partitioned by subset, as before: the keys
are the subset names and the lake's tables are partitioned by `subset`, so existing lakes keep
working. With K > 1:

- `collected` stays partitioned by subset: it reads the source once and writes every shard of
  the subset in one commit (`ShardedWriter`); a row's shard is a stable hash of its
  `(subset, id)` (BLAKE2b, not Python's salted `hash()`), so adding rows to a source never moves
  existing rows between shards;
- every asset after it is partitioned by subset x shard (a `MultiPartitionsDefinition`: the UI's
  partition picker selects subsets and shards per dimension, so "these subsets, all shards" is
  one selection), depends on `collected` through the subset dimension, and its tables are
  partitioned by `subset` and `shard`, each run replacing exactly its shard;
- `deduplicated` of (X, k) depends on `dedup_signatures` of X in every shard: a near-duplicate
  pair split over two shards of X is found whichever shard runs first, as with one shard;
- everything that reads a whole subset (the funnel, the report, the checks of `collected`, the
  exports, the viewer) filters on `subset` alone, which sums over its shards. Shards are read
  in the order of their files' paths in every table, so row-order joins stay valid.

A lake written with another shard count is refused (`check_lake`): its rows sit in other shards
and would be read twice or not at all.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import SHARD_COLUMN, DeltaLocation, PartitionWriter
from mmfr_assets.settings import shard_count

SUBSET = "subset"
SHARD = SHARD_COLUMN
# commitInfo key of every sharded commit: the shard count the table was written with.
SHARDS_KEY = "mmfr.shards"


@dataclass(frozen=True)
class Partitions:
    """The two partitions definitions of the graph: `subsets` for `collected` (and the CLI's
    `--subsets`), `rows` for every asset after it (the same object when there is one shard)."""

    subsets: dg.StaticPartitionsDefinition
    rows: dg.PartitionsDefinition
    shards: int


def build_partitions(subsets: Sequence[str], shards: int | None = None) -> Partitions:
    shards = shard_count() if shards is None else shards
    by_subset = dg.StaticPartitionsDefinition(list(subsets))
    if shards == 1:
        return Partitions(by_subset, by_subset, 1)
    rows = dg.MultiPartitionsDefinition({
        SUBSET: by_subset,
        SHARD: dg.StaticPartitionsDefinition([str(k) for k in range(shards)]),
    })
    return Partitions(by_subset, rows, shards)


def deps(names: Sequence[str], partitions: dg.PartitionsDefinition,
         all_shards: Sequence[str] = ()) -> list[str | dg.AssetDep]:
    """Asset deps of an asset partitioned by `partitions`: `collected` through the subset
    dimension, the assets in `all_shards` on every shard of the same subset, others 1:1."""
    if not isinstance(partitions, dg.MultiPartitionsDefinition):
        return list(names)
    with warnings.catch_warnings():  # both mappings are beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _sharded_deps(names, all_shards)


def _sharded_deps(names: Sequence[str], all_shards: Sequence[str]) -> list[str | dg.AssetDep]:
    out: list[str | dg.AssetDep] = []
    for name in names:
        if name == "collected":
            out.append(dg.AssetDep(name, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(SUBSET)))
        elif name in all_shards:
            # dimensions left out of a MultiPartitionMapping map to all partitions (every shard)
            out.append(dg.AssetDep(name, partition_mapping=dg.MultiPartitionMapping({
                SUBSET: dg.DimensionPartitionMapping(SUBSET, dg.IdentityPartitionMapping())})))
        else:
            out.append(name)
    return out


def run_plan(graph, selection: Iterable[dg.AssetKey], subset: str, shards: int,
             waits_for_all_shards: Sequence[str] = ("deduplicated",)
             ) -> list[tuple[str, list[dg.AssetKey]]]:
    """The runs `mmfr run` makes for one subset, in order: (partition key, asset keys).

    One shard: one run of the whole selection, as before shards. K shards: `collected` of the
    subset, then each shard up to the assets that wait for every shard (`deduplicated` reads
    the signatures of all of them), then each shard from there on."""
    selection = list(selection)
    if shards == 1:
        return [(subset, selection)]
    late = dg.AssetSelection.assets(
        *[n for n in waits_for_all_shards if graph.has(dg.AssetKey(n))]).downstream().resolve(graph)
    collected = [k for k in selection if k.path[-1] == "collected"]
    early = [k for k in selection if k not in collected and k not in late]
    rest = [k for k in selection if k in late]
    keys = [dg.MultiPartitionKey({SUBSET: subset, SHARD: str(k)}) for k in range(shards)]
    plan = [(subset, collected)] + [(key, early) for key in keys] + [(key, rest) for key in keys]
    return [(key, assets) for key, assets in plan if assets]


def split_key(key: str) -> tuple[str, str | None]:
    """(subset, shard) of a partition key: `BMMR` -> (BMMR, None); Dagster's multi-partition
    key `0|BMMR` (dimension values in the order of the dimension names) -> (BMMR, "0")."""
    shard, sep, subset = str(key).partition("|")
    return (subset, shard) if sep else (str(key), None)


def keys_of_subset(subset: str, shards: int | None = None) -> list[str]:
    """Every partition key a subset's materializations are recorded under: the subset
    (`collected`, and every asset with one shard) and, with K shards, `k|subset`."""
    shards = shard_count() if shards is None else shards
    return [subset] + ([str(dg.MultiPartitionKey({SUBSET: subset, SHARD: str(k)}))
                        for k in range(shards)] if shards > 1 else [])


def subset_of(key: str) -> str:
    """The subset a partition key belongs to (the `subset` column of its rows)."""
    return split_key(key)[0]


def lake_partition(key: str) -> dict[str, str]:
    """The lake partition of a run's partition key: {subset} or {subset, shard}."""
    subset, shard = split_key(key)
    return {SUBSET: subset} if shard is None else {SUBSET: subset, SHARD: shard}


def shard_of(subset: str, row_id: str, shards: int) -> int:
    """A row's shard: BLAKE2b of (subset, id), the same in every process and Python version,
    and independent of every other row (adding rows never moves a row)."""
    digest = hashlib.blake2b(f"{subset}\x1f{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shards_of(subset: str, ids: Sequence[str], shards: int) -> list[int]:
    return [shard_of(subset, i, shards) for i in ids]


def key_label(key: str) -> str:
    """`BMMR` or `BMMR shard 0` for logs and check descriptions."""
    subset, shard = split_key(key)
    return subset if shard is None else f"{subset} shard {shard}"


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
