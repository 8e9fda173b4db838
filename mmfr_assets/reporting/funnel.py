"""The funnel over the whole lake, counted once (`funnel_table`: the report, the export's card)
and printed per subset and filter as `mmfr run` and `mmfr funnel` show it (`funnel_lines`).

Read from the committed tables (row counts) and the rejections table (drops by reason), so it
shows what the lake holds, whichever runs produced it. After `mmfr run`, a stage the run did not
materialize (stopped by `--until`, a failed step, a failed blocking check, refused input) says
`not run`, `failed` or `refused` instead of its counts: an old partition or an empty one would
read as that run's result; a model step whose rows needed an endpoint that is not configured says
`skipped: no endpoint (N rows needed <role>)` (the reviews and teachers, off the line, under the
stage that applies them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import polars as pl

from mmfr_assets.lake.delta import DeltaLocation, count_rows_by
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import LINE, NAME, NODES, STEP_SHOWN_IN, funnel_stages

KEPT = "(kept)"  # the reason of a funnel row that counts the rows a stage kept


def drop_counts(location, subsets: Sequence[str], stages: Sequence[str]) -> Counter:
    """(subset, stage, filter, reason) -> rows in the rejections table, counted batch by batch
    (the table can hold millions of rows; only the counts are kept)."""
    import pyarrow.dataset as pads

    counts: Counter = Counter()
    table = location.table()
    if table is None:
        return counts
    scan = table.to_pyarrow_dataset().scanner(
        columns=["subset", "stage", "filter", "reason"],
        filter=pads.field("subset").isin(list(subsets)) & pads.field("stage").isin(list(stages)),
        batch_size=65536, batch_readahead=1, fragment_readahead=1,
    )
    for batch in scan.to_batches():
        if batch.num_rows:
            for *key, n in pl.from_arrow(batch).group_by("subset", "stage", "filter", "reason").len().iter_rows():
                counts[tuple(key)] += n
    return counts


def funnel_table(
    location: Callable[[str], DeltaLocation], subsets: Sequence[str], stages: Sequence[str],
    *, kept: str = KEPT,
) -> pl.DataFrame:
    """subset x stage x reason: rows each stage kept (`filter` empty, reason `kept`) and rows it
    dropped per filter and reason, from the committed tables and the rejections table, sorted by
    subset, then stage in the order given, kept rows first. `location` opens a table by name
    (`lake.location`, or an export's pinned tables). The one count of the funnel: the report,
    `mmfr run`/`mmfr funnel` and the export's dataset card all read it."""
    kept_rows = {st: count_rows_by(location(st), "subset") for st in stages}  # each table's log read once
    rows = [
        {"subset": s, "stage": st, "filter": "", "reason": kept, "rows": kept_rows[st].get(s, 0)}
        for s in subsets for st in stages
    ]
    frame = pl.DataFrame(rows, schema={"subset": pl.String, "stage": pl.String, "filter": pl.String,
                                       "reason": pl.String, "rows": pl.Int64})
    drops = drop_counts(location(REJECTIONS_TABLE), subsets, stages)
    if drops:
        frame = pl.concat([frame, pl.DataFrame(
            [{"subset": k[0], "stage": k[1], "filter": k[2], "reason": k[3], "rows": n}
             for k, n in drops.items()], schema=frame.schema)])
    order = {st: k for k, st in enumerate(stages)}
    return frame.with_columns(
        pl.col("stage").replace_strict(order, return_dtype=pl.Int32).alias("_order")
    ).sort("subset", "_order", pl.col("filter") != "", "reason").drop("_order")


def funnel_lines(
    lake: LakeResource,
    subsets: Sequence[str],
    status: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """The funnel of `subsets`. `status[subset][stage]` is how a run left the stage (`ok`,
    `ok, check failed: ...`, `failed`, `refused`, `not run`); without it (`mmfr funnel`) a
    stage whose table does not exist is `not run`."""
    from mmfr_assets.dedup.savings import savings

    stages = funnel_stages()
    counted = funnel_table(lake.location, subsets, stages)
    kept = {(s, st): n for s, st, _, reason, n in counted.iter_rows() if reason == KEPT}
    drops = {(s, st, r): n for s, st, f, r, n in counted.iter_rows() if f}
    on_line = set(LINE)
    saved = {s.subset: s for s in savings(lake, subsets)}
    lines = []
    for subset in subsets:
        lines.append(f"== {subset}")
        lines.append(f"   {'stage':<20} {'filter':<12} {'reason':<32} {'dropped':>8} {'rows':>8}")
        for stage in stages:
            filters = NODES[stage].filters
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
            rows = kept[(subset, stage)]
            note = f"  ({state})" if state and state != "ok" else ""
            lines.append(f"   {stage:<20} {'':<12} {'':<32} {'':>8} {rows:>8}{note}")
            lines.extend(steps)
            for f in filters:
                for reason in f.reasons:
                    dropped = drops.get((subset, stage, reason), 0)
                    lines.append(f"   {'':<20} {f.name:<12} {reason:<32} {dropped:>8}")
            if stage == NAME.deduplicated and subset in saved:  # what a teacher will not be asked
                s = saved[subset]
                lines.append(f"   {'':<20} {'teachers':<12} {'asks saved (caption + trace)':<32} "
                             f"{s.asks:>8}")
    return lines
