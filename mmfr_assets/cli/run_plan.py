"""The runs `mmfr run` makes for one subset: one run, or with shards `collected` then each
shard's runs (Dagster runs the partitions of one run's assets one at a time); and over the
subsets, what each run waits for (`run_units`), so that runs that need not wait go at once
(`run_pool.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

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
    return [run for phase in run_phases(graph, selection, subset, shards, waits_for_all_shards)
            for run in phase]


def run_phases(graph, selection: Iterable[dg.AssetKey], subset: str, shards: int,
               waits_for_all_shards: Sequence[str] = (NAME.deduplicated,)
               ) -> list[list[tuple[str, list[dg.AssetKey]]]]:
    """`run_plan`'s runs in phases: every run of a phase waits for the whole phase before it
    (with one shard, one phase of one run); the runs of one phase may go at once."""
    selection = list(selection)
    if shards == 1:
        return [[(subset, selection)]]
    late = dg.AssetSelection.assets(
        *[n for n in waits_for_all_shards if graph.has(dg.AssetKey(n))]).downstream().resolve(graph)
    collected = [k for k in selection if k.path[-1] == NAME.collected]
    early = [k for k in selection if k not in collected and k not in late]
    rest = [k for k in selection if k in late]
    keys = [dg.MultiPartitionKey({SUBSET: subset, SHARD: str(k)}) for k in range(shards)]
    phases = [[(subset, collected)], [(key, early) for key in keys], [(key, rest) for key in keys]]
    return [[(key, assets) for key, assets in phase if assets] for phase in phases if phase[0][1]]


@dataclass(frozen=True)
class Unit:
    """One Dagster run of `mmfr run`'s plan and what it waits for.

    `needs`: runs of the same subset that must have succeeded (a failed one stops it, as a
    failed run stopped the rest of its subset when runs went one after another). `after`: runs
    that must have ended, whatever their outcome: the signatures of every subset ranked before
    this one, which its `deduplicated` compares with (the kept-row rule drops a row only for a
    row ranked before it, dedup/matching.py), so the result is the same as one run after
    another whichever run finishes first."""

    index: int
    subset: str
    key: str | dict[str, str]  # a subset, or a multi-partition key's dimensions
    assets: tuple[dg.AssetKey, ...]
    needs: frozenset[int] = frozenset()
    after: frozenset[int] = frozenset()


def run_units(graph, selection: Iterable[dg.AssetKey], subsets: Sequence[str], shards: int,
              subset_order: Sequence[str] = ()) -> list[Unit]:
    """Every run of `run_plan` over `subsets`, with what each waits for: a shard's stage after
    the subset's `collected`, each shard's runs from `deduplicated` on after every shard's
    earlier runs (their signatures), and a run holding `deduplicated` after the runs holding
    `dedup_signatures` of every subset ranked before its own (`subset_order`, then by name:
    dedup/matching.py's rank)."""
    from mmfr_assets.dedup.matching import subset_ranks

    ranks = subset_ranks(subsets, tuple(subset_order))
    units: list[Unit] = []
    signing: dict[str, list[int]] = {}  # subset -> its runs holding dedup_signatures
    holding_dedup: list[int] = []  # runs holding deduplicated, given their `after` below
    for subset in subsets:
        before: list[int] = []  # the subset's runs of the phases so far
        for phase in run_phases(graph, selection, subset, shards):
            indices = []
            for key, assets in phase:
                index = len(units)
                names = {k.path[-1] for k in assets}
                if NAME.dedup_signatures in names:
                    signing.setdefault(subset, []).append(index)
                if NAME.deduplicated in names:
                    holding_dedup.append(index)
                plain = dict(key.keys_by_dimension) if isinstance(key, dg.MultiPartitionKey) else key
                units.append(Unit(index, subset, plain, tuple(assets), frozenset(before)))
                indices.append(index)
            before += indices
    for index in holding_dedup:
        unit = units[index]
        ranked_before = {i for s, runs in signing.items() if ranks[s] < ranks[unit.subset] for i in runs}
        units[index] = replace(unit, after=frozenset(ranked_before - unit.needs))
    return units


def is_chain(units: Sequence[Unit]) -> bool:
    """Whether each run waits for the one before it: then no two can go at once."""
    return all(a.index in b.needs | b.after for a, b in zip(units, units[1:]))
