"""`distilled`: every cleaned row with its teacher caption and reasoning trace."""


import dagster as dg
import polars as pl

from mmfr_assets.distillation.annotations import (
    DISTILLED_SCHEMA,
    ORIGIN_MISSING,
    existing_annotations,
)
from mmfr_assets.funnel import accounting_check, accounting_check_spec, stage_metadata
from mmfr_assets.lake.delta import count_rows, read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.stage import Verdicts, run_stage

# Everything but the image bytes, which this stage has no use for.
TEXT_COLUMNS = [
    "subset", "id", "source", "original_question", "original_answer", "question", "answer",
    "qwen3vl_235b_instruct_caption", "qwen3vl_235b_thinking_response", "qwen3vl_4b_pass_rate",
    "is_consistent", "consistency_analysis", "image_sha256", "image_width", "image_height",
]


class DistilledConfig(dg.Config):
    batch_size: int = 1024


def build_distilled(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="distilled",
        group_name="distillation",
        partitions_def=partitions,
        deps=["cleaned"],
        kinds={"deltalake"},
        check_specs=[accounting_check_spec("distilled")],
        description="Cleaned rows with a caption and a <think> reasoning response each; rows "
        "lacking one keep it null with `*_origin = missing` (generation needs an endpoint).",
    )
    def distilled(
        context: dg.AssetExecutionContext, config: DistilledConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        upstream = lake.location("cleaned")
        missing = {"caption": 0, "response": 0}

        def decide(batch: pl.DataFrame) -> Verdicts:
            out = existing_annotations(batch)
            for column in missing:
                missing[column] += out.filter(pl.col(f"{column}_origin") == ORIGIN_MISSING).height
            return Verdicts.no_drops(out)

        run = run_stage(
            lake,
            stage="distilled",
            subset=subset,
            batches=(
                pl.from_arrow(b)
                for b in read_partition(
                    upstream, {"subset": subset}, columns=TEXT_COLUMNS, batch_size=config.batch_size
                )
            ),
            decide=decide,
            schema=DISTILLED_SCHEMA,
        )
        skipped = (
            "skipped: no caption_teacher / cot_teacher endpoint configured; "
            f"{missing['caption']} rows lack a caption, {missing['response']} lack a response"
        )
        context.log.warning(f"distilled {subset}: generation {skipped}")
        rows_in = count_rows(upstream, {"subset": subset})
        return dg.MaterializeResult(
            metadata=stage_metadata(
                run,
                {
                    "generation": skipped,
                    "rows_missing_caption": missing["caption"],
                    "rows_missing_response": missing["response"],
                },
            ),
            check_results=[accounting_check(lake, run, rows_in=rows_in, input_label="cleaned")],
        )

    return distilled
