"""The runs `mmfr run` makes for one subset: one run, or with shards `collected` then each
shard's runs (Dagster runs the partitions of one run's assets one at a time)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from mmfr_assets.lineage import NAME
from mmfr_assets.partitions import SHARD, SUBSET


def run_plan(graph, selection: Iterable[dg.AssetKey], subset: str, shards: int,
             waits_for_all_shards: Sequence[str] = (NAME.deduplicated,)
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
    collected = [k for k in selection if k.path[-1] == NAME.collected]
    early = [k for k in selection if k not in collected and k not in late]
    rest = [k for k in selection if k in late]
    keys = [dg.MultiPartitionKey({SUBSET: subset, SHARD: str(k)}) for k in range(shards)]
    plan = [(subset, collected)] + [(key, early) for key in keys] + [(key, rest) for key in keys]
    return [(key, assets) for key, assets in plan if assets]
