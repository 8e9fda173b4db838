"""Distillation: the teacher caption and reasoning trace of every deduplicated row (`cleaned`
minus near-duplicates and benchmark leaks: `mmfr_assets/dedup/`).

One asset per teacher endpoint (`teacher_captions`, `teacher_responses`), each a declared model
step (`teachers.py`, built from `model_step/registry.py`) in the Dagster pool named after its
endpoint, so parallel backfills of many subsets stay within each endpoint's limit across runs;
`distilled` (here) joins them to the cleaned rows.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from mmfr_assets.distillation.annotations import CLEANED_TEXT_COLUMNS, DISTILLED_SCHEMA, assemble
from mmfr_assets.distillation.teachers import ORIGINS, CaptionTeacher, CotTeacher
from mmfr_assets.lineage import NAME, upstream_of
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.model_step.join import join_step, joins_of, take
from mmfr_assets.stage import Verdicts, run_stage, stage_asset, stage_result, upstream_batches


class DistilledConfig(dg.Config):
    batch_size: int = Field(default=1024, description="Rows joined and written per batch (bounds memory).")


#: The teachers' columns `distilled` reads beside each deduplicated row (`model_step/join.py`):
#: of the caption teacher and the reasoning teacher, the steps its lineage node joins.
_CAPTIONS, _RESPONSES = joins_of(NAME.distilled)[:2]  # (the student-first order joins the student's verdicts too)
TEACHER_JOINS = (
    take(_CAPTIONS, "caption", "caption_origin"),
    take(_RESPONSES, "response", "response_origin"),
)
ANNOTATIONS = tuple(teacher.column for teacher in (CaptionTeacher, CotTeacher))


def origin_counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    counts = dict(frame[f"{column}_origin"].value_counts().iter_rows())
    return {origin: counts.get(origin, 0) for origin in ORIGINS}


def build_distilled(partitions: dg.PartitionsDefinition, target: str = "all") -> list[dg.AssetsDefinition]:
    """`distilled`; with a hard subset as `target` (issue 33, the student-first order) it also
    drops the rows the teachers were not asked for (`student_first/distilled.py`)."""
    from mmfr_assets.student_first.distilled import skipping

    order = skipping(target)

    @stage_asset(
        partitions,
        joins=TEACHER_JOINS,
        description="Cleaned rows with their caption and <think> reasoning response and where "
        "each came from (`dataset`, `generated`, `rejected`, `failed`, `missing`)."
        + (order.note if order else ""),
    )
    def distilled(
        context: dg.AssetExecutionContext, config: DistilledConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        return _distil(context, lake, context.partition_key, config.batch_size,
                       order.for_run(context.run_config) if order else None)

    return [order.with_deps(distilled) if order else distilled]


def _distil(context: dg.AssetExecutionContext, lake: LakeResource, subset: str,
            batch_size: int, order=None) -> dg.MaterializeResult:
    """Deduplicated rows joined with the teachers' columns (`TEACHER_JOINS`); in the
    student-first `order`, less the rows the teachers were not asked for (dropped with why)."""
    origins: dict[str, int] = {}

    def decide(batch: pl.DataFrame) -> Verdicts:
        dropped = None
        if order is not None:
            batch, dropped = order.split(batch)
        out = assemble(batch)
        for column in ANNOTATIONS:
            for origin, n in origin_counts(out, column).items():
                key = f"{column}_{origin}"
                origins[key] = origins.get(key, 0) + n
        return Verdicts.no_drops(out) if dropped is None else Verdicts(out, dropped)

    upstream = upstream_of(NAME.distilled)
    run = run_stage(
        lake, stage=NAME.distilled, subset=subset,
        batches=join_step(
            lake, upstream_batches(lake, upstream, subset, columns=CLEANED_TEXT_COLUMNS, batch_size=batch_size),
            subset, TEACHER_JOINS + (order.joins if order else ()), batch_size=batch_size),
        decide=decide, schema=DISTILLED_SCHEMA, **({"filters": order.filters} if order else {}),
    )
    context.log.info(f"{NAME.distilled} {subset}: {run.rows_out} rows")
    return stage_result(
        lake, run, upstream=upstream,
        extra={f"rows/{k}": v for k, v in sorted(origins.items())} | (order.metadata(run) if order else {}),
    )
