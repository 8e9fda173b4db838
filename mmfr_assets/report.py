"""The per-subset, per-filter funnel over the whole lake, as `mmfr run` and `mmfr funnel` print it.

Read from the committed tables (row counts) and the rejections table (drops by reason), so it
shows what the lake holds, whichever runs produced it.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmfr_assets.lake.delta import count_rows
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.pipeline import BRANCHES, STAGES


def drops_by_reason(lake: LakeResource, subsets: Sequence[str]) -> dict[tuple[str, str, str], int]:
    """(subset, stage, reason) -> dropped rows, for the given subsets."""
    table = lake.location(REJECTIONS_TABLE).table()
    if table is None:
        return {}
    counts = (
        pl.from_arrow(
            table.to_pyarrow_dataset().to_table(columns=["subset", "stage", "reason"])
        )
        .filter(pl.col("subset").is_in(list(subsets)))
        .group_by("subset", "stage", "reason")
        .len()
    )
    return {(s, st, r): n for s, st, r, n in counts.iter_rows()}


def funnel_lines(lake: LakeResource, subsets: Sequence[str]) -> list[str]:
    drops = drops_by_reason(lake, subsets)
    lines = []
    for subset in subsets:
        lines.append(f"== {subset}")
        lines.append(f"   {'stage':<20} {'filter':<12} {'reason':<32} {'dropped':>8} {'rows':>8}")
        for stage, filters in (*STAGES, *((name, filters) for name, filters, _ in BRANCHES)):
            rows = count_rows(lake.location(stage), {"subset": subset})
            lines.append(f"   {stage:<20} {'':<12} {'':<32} {'':>8} {rows:>8}")
            for f in filters:
                for reason in f.reasons:
                    dropped = drops.get((subset, stage, reason), 0)
                    lines.append(f"   {'':<20} {f.name:<12} {reason:<32} {dropped:>8}")
    return lines
