"""`quality_filtered` and `difficulty_filtered`: the published selection, as two assets."""


import dagster as dg

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.funnel import accounting_check_spec, stage_result
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.selection import difficulty, quality
from mmfr_assets.stage import Filter, run_stage, upstream_batches


class QualityFilteredConfig(dg.Config):
    """The published quality thresholds; `None` switches a length rule off."""

    min_response_words: int | None = 200  # whitespace-split words of the whole response
    min_caption_words: int | None = 100
    error_marker: str = "[ERROR]"
    ngram_size: int = 50  # repetition: n-grams of the think block's words ...
    max_ngram_occurrences: int = 2  # ... seen more often than this drop the row
    answer_tag_exempt_subsets: list[str] = list(quality.ANSWER_TAG_EXEMPT_SUBSETS)
    batch_size: int = 1024

    def rules(self) -> quality.QualityRules:
        return quality.QualityRules(
            min_response_words=self.min_response_words,
            min_caption_words=self.min_caption_words,
            error_marker=self.error_marker,
            ngram_size=self.ngram_size,
            max_ngram_occurrences=self.max_ngram_occurrences,
            answer_tag_exempt_subsets=tuple(self.answer_tag_exempt_subsets),
        )


class DifficultyFilteredConfig(dg.Config):
    """0.0 keeps what the student never solved (the 123K recipe); 0.75 keeps pass rate != 1
    with 4 rollouts (the 586K recipe)."""

    max_pass_rate: float = 0.0
    batch_size: int = 1024


def _select(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    *,
    stage: str,
    upstream: str,
    decide,
    filters: tuple[Filter, ...],
    batch_size: int,
    extra: dict,
) -> dg.MaterializeResult:
    subset = context.partition_key
    run = run_stage(
        lake,
        stage=stage,
        subset=subset,
        batches=upstream_batches(lake, upstream, subset, batch_size=batch_size),
        decide=decide,
        schema=DISTILLED_SCHEMA,
        filters=filters,
    )
    context.log.info(f"{stage} {subset}: kept {run.rows_out} of {run.rows_in}")
    return stage_result(lake, run, upstream=upstream, extra=extra)


def build_selection(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="quality_filtered",
        group_name="selection",
        partitions_def=partitions,
        deps=["distilled"],
        kinds={"deltalake", "polars"},
        check_specs=[accounting_check_spec("quality_filtered")],
        description="Distilled rows passing the published quality rules: content, structure, "
        "repetition and answer consistency, in that order.",
    )
    def quality_filtered(
        context: dg.AssetExecutionContext, config: QualityFilteredConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        rules = config.rules()
        return _select(
            context,
            lake,
            stage="quality_filtered",
            upstream="distilled",
            decide=lambda batch: quality.select_quality(batch, rules),
            filters=quality.FILTERS,
            batch_size=config.batch_size,
            extra={"thresholds": dg.MetadataValue.json(config.model_dump())},
        )

    @dg.asset(
        name="difficulty_filtered",
        group_name="selection",
        partitions_def=partitions,
        deps=["quality_filtered"],
        kinds={"deltalake", "polars"},
        check_specs=[accounting_check_spec("difficulty_filtered")],
        description="Quality rows the 4B student does not solve reliably "
        "(pass rate <= max_pass_rate).",
    )
    def difficulty_filtered(
        context: dg.AssetExecutionContext, config: DifficultyFilteredConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        return _select(
            context,
            lake,
            stage="difficulty_filtered",
            upstream="quality_filtered",
            decide=lambda batch: difficulty.select_difficulty(batch, config.max_pass_rate),
            filters=difficulty.FILTERS,
            batch_size=config.batch_size,
            extra={"max_pass_rate": dg.MetadataValue.text(str(config.max_pass_rate))},  # a setting, not a metric
        )

    return [quality_filtered, difficulty_filtered]
