"""Distillation: the teacher caption and reasoning trace of every cleaned row.

One asset per teacher endpoint (`teacher_captions`, `teacher_responses`), each in the Dagster
pool named after its endpoint, so parallel backfills of many subsets stay within each
endpoint's limit across runs; `distilled` joins them to the cleaned rows.
"""

import dagster as dg
import polars as pl

from mmfr_assets.distillation.annotations import CLEANED_TEXT_COLUMNS, DISTILLED_SCHEMA, assemble
from mmfr_assets.prompts import load_prompt
from mmfr_assets.distillation.teachers import (
    CAPTION, COT, ORIGIN_FAILED, ORIGIN_MISSING, ORIGINS, TeacherTask, annotate, origin_counts,
    rows_needing,
)
from mmfr_assets.funnel import accounting_check_spec, stage_result
from mmfr_assets.lake.ordered import OrderedRows, PartitionImages
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.llm import LLMEndpoint, UsageStats, default_cache_path
from mmfr_assets.stage import Verdicts, run_stage, upstream_batches

FAILURE_CHECK = "generation_failure_rate"


class TeacherConfig(dg.Config):
    batch_size: int = 512  # rows per batch; keep it well above the endpoint's max_concurrency
    max_failure_rate: float = 0.02  # the failure-rate check fails above this share of requests


class DistilledConfig(dg.Config):
    batch_size: int = 1024


def build_teacher(task: TeacherTask, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=task.asset,
        group_name="distillation",
        partitions_def=partitions,
        deps=["cleaned"],
        pool=task.role,
        kinds={"deltalake", "openai"},
        # The endpoint's resource key depends on the task, so resources are declared here.
        required_resource_keys={task.role, "lake"},
        check_specs=[
            accounting_check_spec(task.asset),
            dg.AssetCheckSpec(FAILURE_CHECK, asset=task.asset,
                              description="Share of teacher requests given up on after retries."),
        ],
        description=f"The {task.column} of every cleaned row: the dataset's where usable, else "
        f"written by the `{task.role}` endpoint (cached, so a re-run never pays twice).",
    )
    def teacher(context: dg.AssetExecutionContext, config: TeacherConfig) -> dg.MaterializeResult:
        subset = context.partition_key
        lake: LakeResource = context.resources.lake
        endpoint: LLMEndpoint = getattr(context.resources, task.role)
        prompt = load_prompt(task.role)
        images = PartitionImages(lake, subset)
        counts = {origin: 0 for origin in ORIGINS}
        requested = 0
        usage = UsageStats()
        session = (
            endpoint.open_session(cache=default_cache_path(), log=context.log)
            if endpoint.enabled
            else None
        )

        def decide(batch: pl.DataFrame) -> Verdicts:
            nonlocal requested
            generated = None
            if session is not None:
                needed = batch.filter(rows_needing(batch, task))
                pixels = images.take(needed["id"].to_list(), needed["image_bytes"].to_list())
                requests = (
                    (row_id, task.request(endpoint, prompt, question, image))
                    for row_id, question, image in zip(needed["id"], needed["question"], pixels)
                )
                generated = dict(session.map(requests))
                requested += needed.height
            rows = annotate(batch, task, generated)
            for origin, n in origin_counts(rows, task).items():
                counts[origin] += n
            return Verdicts.no_drops(rows)

        columns = ["subset", "id", "question", "image_bytes", task.dataset_column]
        try:
            run = run_stage(
                lake, stage=task.asset, subset=subset,
                batches=upstream_batches(
                    lake, "cleaned", subset, columns=columns, batch_size=config.batch_size
                ),
                decide=decide, schema=task.schema(),
            )
        finally:
            if session is not None:
                session.close()
                usage = session.usage
        failed = counts[ORIGIN_FAILED]
        if session is None:
            generation = (
                f"skipped: no {task.role} endpoint configured "
                f"(MMFR_{task.role.upper()}_BASE_URL unset); {counts[ORIGIN_MISSING]} rows lack a {task.column}"
            )
            context.log.warning(f"{task.asset} {subset}: generation {generation}")
        else:
            generation = f"{requested} rows sent to {task.role} ({endpoint.model}); {failed} failed"
            context.log.info(f"{task.asset} {subset}: {generation}")
        rate = failed / requested if requested else 0.0
        return stage_result(
            lake,
            run,
            upstream="cleaned",
            extra={
                "generation": generation,
                **{f"rows_{origin}": n for origin, n in counts.items()},
                **usage.to_metadata(prefix="llm_"),
            },
            checks=(
                dg.AssetCheckResult(
                    check_name=FAILURE_CHECK,
                    passed=rate <= config.max_failure_rate,
                    metadata={"requested": requested, "failed": failed, "failure_rate": rate,
                              "max_failure_rate": config.max_failure_rate},
                ),
            ),
        )

    return teacher


def build_distilled(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="distilled",
        group_name="distillation",
        partitions_def=partitions,
        deps=["cleaned", CAPTION.asset, COT.asset],
        kinds={"deltalake"},
        check_specs=[accounting_check_spec("distilled")],
        description="Cleaned rows with their caption and <think> reasoning response and where "
        "each came from (`dataset`, `generated`, `failed`, `missing`).",
    )
    def distilled(
        context: dg.AssetExecutionContext, config: DistilledConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        teachers = {
            task: OrderedRows(lake.location(task.asset), subset,
                              [task.column, f"{task.column}_origin"], batch_size=config.batch_size)
            for task in (CAPTION, COT)
        }
        origins: dict[str, int] = {}

        def decide(batch: pl.DataFrame) -> Verdicts:
            annotations = {}
            for task, rows in teachers.items():
                annotations.update(rows.take(batch["id"].to_list()))
            out = assemble(batch, annotations)
            for task in teachers:
                for origin, n in origin_counts(out, task).items():
                    key = f"{task.column}_{origin}"
                    origins[key] = origins.get(key, 0) + n
            return Verdicts.no_drops(out)

        run = run_stage(
            lake, stage="distilled", subset=subset,
            batches=upstream_batches(
                lake, "cleaned", subset, columns=CLEANED_TEXT_COLUMNS, batch_size=config.batch_size
            ),
            decide=decide, schema=DISTILLED_SCHEMA,
        )
        return stage_result(
            lake, run, upstream="cleaned",
            extra={f"rows/{k}": v for k, v in sorted(origins.items())},
        )

    return [build_teacher(CAPTION, partitions), build_teacher(COT, partitions), distilled]
