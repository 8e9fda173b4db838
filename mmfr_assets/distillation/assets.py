"""Distillation: the teacher caption and reasoning trace of every deduplicated row (`cleaned`
minus near-duplicates and benchmark leaks: `mmfr_assets/dedup/`).

One asset per teacher endpoint (`teacher_captions`, `teacher_responses`), each a declared model
step (`teachers.py`) in the Dagster pool named after its endpoint, so parallel backfills of many
subsets stay within each endpoint's limit across runs; `distilled` joins them to the cleaned rows.
"""

import contextlib

import dagster as dg
import polars as pl
from pydantic import Field

from mmfr_assets.distillation.annotations import CLEANED_TEXT_COLUMNS, DISTILLED_SCHEMA, assemble
from mmfr_assets.distillation.teachers import (
    ORIGINS, CaptionTeacher, CaptionTeacherConfig, CotTeacher, CotTeacherConfig,
)
from mmfr_assets.lineage import reads
from mmfr_assets.reporting.metadata import accounting_check_spec, stage_result
from mmfr_assets.lake.ordered import OrderedRows
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.model_step.asset import model_step_asset
from mmfr_assets.stage import Verdicts, run_stage, upstream_batches


class DistilledConfig(dg.Config):
    batch_size: int = Field(default=1024, description="Rows joined and written per batch (bounds memory).")


def origin_counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    counts = dict(frame[f"{column}_origin"].value_counts().iter_rows())
    return {origin: counts.get(origin, 0) for origin in ORIGINS}


def build_teachers(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        model_step_asset(
            CaptionTeacher, partitions, config_type=CaptionTeacherConfig, group="distillation",
            description="The dense caption of every cleaned row: the dataset's where usable, else "
            "written by the `caption_teacher` endpoint from the image alone, checked for length "
            "and asked again when too short (cached: a re-run never pays twice).",
        ),
        model_step_asset(
            CotTeacher, partitions, config_type=CotTeacherConfig, group="distillation",
            description="The <think> reasoning trace of every cleaned row: the dataset's where "
            "usable, else written by the `cot_teacher` endpoint from the image and question "
            "(never the caption), validated by the selection's rules and asked again with a new "
            "seed when invalid (cached: a re-run never pays twice).",
        ),
    ]


def build_distilled(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="distilled",
        group_name="distillation",
        partitions_def=partitions,
        deps=reads("distilled"),
        kinds={"deltalake"},
        check_specs=[accounting_check_spec("distilled", partitions)],
        description="Cleaned rows with their caption and <think> reasoning response and where "
        "each came from (`dataset`, `generated`, `rejected`, `failed`, `missing`).",
    )
    def distilled(
        context: dg.AssetExecutionContext, config: DistilledConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        with contextlib.ExitStack() as stack:
            teachers = {
                step.column: stack.enter_context(OrderedRows(
                    lake.location(step.asset), subset, [step.column, f"{step.column}_origin"],
                    batch_size=config.batch_size))
                for step in (CaptionTeacher, CotTeacher)
            }
            return _distil(context, lake, subset, teachers, config.batch_size)

    return [*build_teachers(partitions), distilled]


def _distil(context: dg.AssetExecutionContext, lake: LakeResource, subset: str,
            teachers: dict[str, OrderedRows], batch_size: int) -> dg.MaterializeResult:
    """Cleaned rows joined with the teachers' columns (`teachers`: column -> its table's rows)."""
    origins: dict[str, int] = {}

    def decide(batch: pl.DataFrame) -> Verdicts:
        annotations = {}
        for rows in teachers.values():
            annotations.update(rows.take(batch["id"].to_list()))
        out = assemble(batch, annotations)
        for column in teachers:
            for origin, n in origin_counts(out, column).items():
                key = f"{column}_{origin}"
                origins[key] = origins.get(key, 0) + n
        return Verdicts.no_drops(out)

    run = run_stage(
        lake, stage="distilled", subset=subset,
        batches=upstream_batches(lake, "deduplicated", subset, columns=CLEANED_TEXT_COLUMNS, batch_size=batch_size),
        decide=decide, schema=DISTILLED_SCHEMA,
    )
    context.log.info(f"distilled {subset}: {run.rows_out} rows")
    return stage_result(
        lake, run, upstream="deduplicated",
        extra={f"rows/{k}": v for k, v in sorted(origins.items())},
    )
