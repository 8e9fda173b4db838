"""The per-subset, per-filter funnel over the whole lake, as `mmfr run` and `mmfr funnel` print it.

Read from the committed tables (row counts) and the rejections table (drops by reason), so it
shows what the lake holds, whichever runs produced it. After `mmfr run`, a stage the run did not
materialize (stopped by `--until`, a failed step, a failed blocking check, refused input) says
`not run`, `failed` or `refused` instead of its counts: an old partition or an empty one would
read as that run's result; a model step whose rows needed an endpoint that is not configured says
`skipped: no endpoint (N rows needed <role>)` (the reviews and teachers, off the line, under the
stage that applies them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from mmfr_assets.lake.delta import count_rows
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.pipeline import BRANCHES, STAGES
from mmfr_assets.reporting.paths import STEP_SHOWN_IN


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


def funnel_lines(
    lake: LakeResource,
    subsets: Sequence[str],
    status: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """The funnel of `subsets`. `status[subset][stage]` is how a run left the stage (`ok`,
    `ok, check failed: ...`, `failed`, `refused`, `not run`); without it (`mmfr funnel`) a
    stage whose table does not exist is `not run`."""
    from mmfr_assets.dedup.savings import savings

    drops = drops_by_reason(lake, subsets)
    on_line = {name for name, _ in STAGES}
    saved = {s.subset: s for s in savings(lake, subsets)}
    lines = []
    for subset in subsets:
        lines.append(f"== {subset}")
        lines.append(f"   {'stage':<20} {'filter':<12} {'reason':<32} {'dropped':>8} {'rows':>8}")
        for stage, filters in (*STAGES, *((name, filters) for name, filters, _ in BRANCHES)):
            location = lake.location(stage)
            state = (status or {}).get(subset, {}).get(stage)
            if state is None and location.table() is None:
                state = "not run"
            steps = [  # model steps off the line that this stage applies, noted when they did not run
                f"   {'':<20} {step}: {(status or {}).get(subset, {})[step]}"
                for step, shown_in in STEP_SHOWN_IN.items()
                if shown_in == stage and step not in on_line and step in (status or {}).get(subset, {})
            ]
            if state in ("not run", "failed", "refused") or (state or "").startswith("skipped"):
                lines.append(f"   {stage:<20} {'':<12} {'':<32} {'':>8} {state:>8}")
                lines.extend(steps)
                continue
            rows = count_rows(location, {"subset": subset})
            note = f"  ({state})" if state and state != "ok" else ""
            lines.append(f"   {stage:<20} {'':<12} {'':<32} {'':>8} {rows:>8}{note}")
            lines.extend(steps)
            for f in filters:
                for reason in f.reasons:
                    dropped = drops.get((subset, stage, reason), 0)
                    lines.append(f"   {'':<20} {f.name:<12} {reason:<32} {dropped:>8}")
            if stage == "deduplicated" and subset in saved:  # what a teacher will not be asked
                s = saved[subset]
                lines.append(f"   {'':<20} {'teachers':<12} {'asks saved (caption + trace)':<32} "
                             f"{s.asks:>8}")
    return lines
