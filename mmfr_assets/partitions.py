"""The graph's partitions: subsets, and with `MMFR_SHARDS` > 1 subset x shard (issue 19), and
how a partition key reads (its subset, its shard, its place in the lake).

With `MMFR_SHARDS=1` (the default) every asset is partitioned by subset: the keys are the
subset names and the lake's tables are partitioned by `subset`. With K > 1:

- `collected` stays partitioned by subset: it reads the source once and writes every shard of
  the subset in one commit (`lake.shards.ShardedWriter`, which also says which shard a row is in);
- every asset after it is partitioned by subset x shard (a `MultiPartitionsDefinition`: the UI's
  partition picker selects subsets and shards per dimension, so "these subsets, all shards" is
  one selection), depends on `collected` through the subset dimension, and its tables are
  partitioned by `subset` and `shard`, each run replacing exactly its shard;
- `deduplicated` of (X, k) depends on `dedup_signatures` of X in every shard: a near-duplicate
  pair split over two shards of X is found whichever shard runs first, as with one shard;
- everything that reads a whole subset (the funnel, the report, the checks of `collected`, the
  exports, the viewer) filters on `subset` alone, which sums over its shards.

The lake's side (the row hash, the sharded writer, the shard count check) is `lake/shards.py`;
the runs `mmfr run` makes over a subset's shards, `cli/run_plan.py`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from mmfr_assets.lake.delta import SHARD_COLUMN
from mmfr_assets.lineage import ROOT
from mmfr_assets.settings import shard_count

SUBSET = "subset"
SHARD = SHARD_COLUMN


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
    """Asset deps of an asset partitioned by `partitions`: the root (`collected`) through the subset
    dimension, the assets in `all_shards` on every shard of the same subset, others 1:1."""
    if not isinstance(partitions, dg.MultiPartitionsDefinition):
        return list(names)
    with warnings.catch_warnings():  # both mappings are beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _sharded_deps(names, all_shards)


def _sharded_deps(names: Sequence[str], all_shards: Sequence[str]) -> list[str | dg.AssetDep]:
    out: list[str | dg.AssetDep] = []
    for name in names:
        if name == ROOT:  # partitioned by subset alone
            out.append(dg.AssetDep(name, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(SUBSET)))
        elif name in all_shards:
            # dimensions left out of a MultiPartitionMapping map to all partitions (every shard)
            out.append(dg.AssetDep(name, partition_mapping=dg.MultiPartitionMapping({
                SUBSET: dg.DimensionPartitionMapping(SUBSET, dg.IdentityPartitionMapping())})))
        else:
            out.append(name)
    return out


#: Reads a subset x shard key's string with Dagster's own parser (which checks the dimensions,
#: not their values): `0|BMMR` is {shard: 0, subset: BMMR} whatever the subsets are.
_KEY_PARSER = dg.MultiPartitionsDefinition({
    SUBSET: dg.StaticPartitionsDefinition(["any"]), SHARD: dg.StaticPartitionsDefinition(["0"])})


def split_key(key: str) -> tuple[str, str | None]:
    """(subset, shard) of a partition key: `BMMR` -> (BMMR, None); a subset x shard key (a
    `MultiPartitionKey`, or its string `0|BMMR`) -> (BMMR, "0")."""
    if isinstance(key, dg.MultiPartitionKey):
        dimensions = key.keys_by_dimension
    elif "|" in str(key):  # Dagster's MULTIPARTITION_KEY_DELIMITER (not exported)
        dimensions = _KEY_PARSER.get_partition_key_from_str(str(key)).keys_by_dimension
    else:
        return str(key), None
    return dimensions[SUBSET], dimensions[SHARD]


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


def key_label(key: str) -> str:
    """`BMMR` or `BMMR shard 0` for logs and check descriptions."""
    subset, shard = split_key(key)
    return subset if shard is None else f"{subset} shard {shard}"
