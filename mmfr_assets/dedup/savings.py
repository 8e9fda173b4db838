"""What `deduplicated` removed per subset and the teacher asks that saved, read from the lake
(the rejections of `deduplicated` and the signatures' `needs_caption` / `needs_trace`), for the
funnel that `mmfr run` / `mmfr funnel` print and for the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import NAME

STAGE = NAME.deduplicated


@dataclass(frozen=True)
class Savings:
    subset: str
    duplicates: int
    contaminated: int
    caption_asks: int  # rows dropped that had no usable dataset caption
    trace_asks: int  # ... no usable dataset trace

    @property
    def asks(self) -> int:
        return self.caption_asks + self.trace_asks


def _frame(lake: LakeResource, table: str, partition: dict, columns: list[str]) -> pl.DataFrame | None:
    location = lake.location(table)
    if location.table() is None:
        return None
    with read_partition(location, partition, columns=columns, batch_size=65_536) as reader:
        parts = [pl.from_arrow(b) for b in reader]
    return pl.concat(parts) if parts else pl.DataFrame(schema={c: pl.String for c in columns})


def savings(lake: LakeResource, subsets: Sequence[str]) -> list[Savings]:
    """Per subset with a `deduplicated` partition: rows removed by reason and asks saved."""
    out = []
    for subset in subsets:
        dropped = _frame(lake, REJECTIONS_TABLE, {"stage": STAGE, "subset": subset}, ["id", "reason"])
        if dropped is None or lake.location(STAGE).table() is None:
            continue
        needs = _frame(lake, NAME.dedup_signatures, {"subset": subset},
                       ["id", "needs_caption", "needs_trace"])
        asks = (dropped.join(needs, on="id", how="inner") if needs is not None and needs.height
                else pl.DataFrame({"needs_caption": [], "needs_trace": []},
                                  schema={"needs_caption": pl.Boolean, "needs_trace": pl.Boolean}))
        out.append(Savings(
            subset, int((dropped["reason"] == "duplicate_of").sum()),
            int((dropped["reason"] == "contaminated").sum()),
            int(asks["needs_caption"].sum()), int(asks["needs_trace"].sum())))
    return out


def savings_markdown(rows: Sequence[Savings]) -> str:
    lines = ["| subset | duplicates removed | contaminated removed | caption asks saved | "
             "trace asks saved |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s.subset} | {s.duplicates} | {s.contaminated} | {s.caption_asks} | "
              f"{s.trace_asks} |" for s in rows]
    return "\n".join(lines)
