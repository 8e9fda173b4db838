"""Selection as assets: `answer_verdicts` (is each trace's answer right?) feeds
`quality_filtered`; `student_rollouts` (pass rates) feeds both published recipes side by side,
`difficulty_filtered` (pass rate = 0, the 123K recipe) and `difficulty_filtered_586k`
(pass rate != 1)."""


from collections.abc import Iterator

import dagster as dg
import polars as pl

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.funnel import accounting_check_spec, stage_result
from mmfr_assets.lake.ordered import OrderedRows
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.model_step.asset import ModelStepConfig, model_step_asset
from mmfr_assets.selection import difficulty, quality
from mmfr_assets.selection.steps import AnswerVerdictsStep, StudentRolloutsStep
from mmfr_assets.selection.verify import REFERENCE_COLUMNS
from mmfr_assets.stage import Filter, run_stage, upstream_batches


class AnswerVerdictsConfig(ModelStepConfig):
    """`recompute`: verify every row, even those whose dataset carries `is_consistent` (by
    default they keep it, so the published selection is reproduced exactly)."""

    recompute: bool = False
    reference_columns: list[str] = list(REFERENCE_COLUMNS)  # first non-blank is the reference
    use_math_verify: bool = True
    math_verify_workers: int = 2
    math_verify_timeout_s: float = 5.0  # per item; a worker past it is killed, the row undecided


class StudentRolloutsConfig(ModelStepConfig):
    """`num_samples` answers per question (one request with `n` where the endpoint supports
    it); `recompute`: roll out rows whose dataset already has a pass rate too. The completion
    budget is the `student_llm` resource's `max_tokens` (16,384 by default: a thinking model
    needs it; the published 512 truncates nearly every trace)."""

    recompute: bool = False
    num_samples: int = 4
    reference_columns: list[str] = list(REFERENCE_COLUMNS)
    use_math_verify: bool = True
    math_verify_workers: int = 2
    math_verify_timeout_s: float = 5.0


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
    """Keeps rows with pass rate <= max_pass_rate (`inclusive`) or < it: by default 0.0
    inclusive, what the student never solved (the 123K recipe)."""

    max_pass_rate: float = 0.0
    inclusive: bool = True
    batch_size: int = 1024


class DifficultyFiltered586kConfig(DifficultyFilteredConfig):
    """By default pass rate < 1.0: what the student does not always solve (the 586K recipe)."""

    max_pass_rate: float = 1.0
    inclusive: bool = False


def joined(
    lake: LakeResource, batches: Iterator[pl.DataFrame], table: str, subset: str, columns: dict[str, str]
) -> Iterator[pl.DataFrame]:
    """`batches` with columns taken from `table`'s rows of the same ids (`columns`: table
    column -> batch column, replaced or added). `table` was derived from the batches' table,
    so both are in the same order and read in step (`OrderedRows`)."""
    rows = OrderedRows(lake.location(table), subset, list(columns))
    try:
        for batch in batches:
            taken = rows.take(batch["id"].to_list())
            yield batch.with_columns(
                pl.Series(target, taken[source], dtype=batch.schema.get(target))
                if target in batch.columns else pl.Series(target, taken[source])
                for source, target in columns.items()
            )
    finally:
        close = getattr(rows, "close", None) or getattr(rows, "_batches").close
        close()
        batches.close()


def _select(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    *,
    stage: str,
    upstream: str,
    batches: Iterator[pl.DataFrame],
    decide,
    filters: tuple[Filter, ...],
    extra: dict,
) -> dg.MaterializeResult:
    subset = context.partition_key
    run = run_stage(
        lake,
        stage=stage,
        subset=subset,
        batches=batches,
        decide=decide,
        schema=DISTILLED_SCHEMA,
        filters=filters,
    )
    context.log.info(f"{stage} {subset}: kept {run.rows_out} of {run.rows_in}")
    return stage_result(lake, run, upstream=upstream, extra=extra)


def _with_verdicts(lake: LakeResource, batches, subset: str):
    """Distilled batches whose `is_consistent` is `answer_verdicts`' verdict (and whose
    `consistency_analysis` its judge analysis, where the judge decided)."""
    joined_batches = joined(
        lake, batches, "answer_verdicts", subset,
        {"is_consistent": "is_consistent", "analysis": "_verdict_analysis", "method": "_verdict_method"},
    )
    try:
        for batch in joined_batches:
            yield batch.with_columns(
                pl.when(pl.col("_verdict_method") == "judge")
                .then(pl.col("_verdict_analysis"))
                .otherwise(pl.col("consistency_analysis"))
                .alias("consistency_analysis")
            ).drop("_verdict_analysis", "_verdict_method")
    finally:
        joined_batches.close()


def build_selection(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    answer_verdicts = model_step_asset(
        AnswerVerdictsStep, partitions, config_type=AnswerVerdictsConfig, group="selection",
        description="Per distilled row: does the trace's final answer match the reference, and "
        "who decided (dataset label, a rule, math-verify, or the `judge_llm` endpoint for what the "
        "rules leave undecided; `unverified` without a judge). Metadata compares the rules with "
        "the dataset's labels where it has them.",
    )
    student_rollouts = model_step_asset(
        StudentRolloutsStep, partitions, config_type=StudentRolloutsConfig, group="selection",
        description="Per quality row: the `student_llm` endpoint answers the question with its "
        "image `num_samples` times; each answer verified by the rules; pass rate = correct / "
        "counted samples (the dataset's pass rate is kept unless recompute).",
    )

    @dg.asset(
        name="quality_filtered",
        group_name="selection",
        partitions_def=partitions,
        deps=["distilled", "answer_verdicts"],
        kinds={"deltalake", "polars"},
        check_specs=[accounting_check_spec("quality_filtered")],
        description="Distilled rows passing the published quality rules: content, structure, "
        "repetition and answer consistency (the verdict of `answer_verdicts`), in that order.",
    )
    def quality_filtered(
        context: dg.AssetExecutionContext, config: QualityFilteredConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        rules = config.rules()
        subset = context.partition_key
        return _select(
            context,
            lake,
            stage="quality_filtered",
            upstream="distilled",
            batches=_with_verdicts(
                lake, upstream_batches(lake, "distilled", subset, batch_size=config.batch_size), subset
            ),
            decide=lambda batch: quality.select_quality(batch, rules),
            filters=quality.FILTERS,
            extra={"thresholds": dg.MetadataValue.json(config.model_dump())},
        )

    return [
        answer_verdicts,
        quality_filtered,
        student_rollouts,
        _difficulty_asset(
            "difficulty_filtered", DifficultyFilteredConfig, partitions,
            "Quality rows the 4B student never solves (pass rate <= 0: the 123K recipe; pass "
            "rates from `student_rollouts`).",
        ),
        _difficulty_asset(
            "difficulty_filtered_586k", DifficultyFiltered586kConfig, partitions,
            "Quality rows the 4B student does not always solve (pass rate < 1: the 586K recipe; "
            "pass rates from `student_rollouts`). Its own table and rejections stage: "
            "materializing it never touches `difficulty_filtered`.",
        ),
    ]


def _difficulty_asset(
    name: str, config_type: type, partitions: dg.PartitionsDefinition, description: str
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name="selection",
        partitions_def=partitions,
        deps=["quality_filtered", "student_rollouts"],
        kinds={"deltalake", "polars"},
        check_specs=[accounting_check_spec(name)],
        description=description,
    )
    def recipe(
        context: dg.AssetExecutionContext, config: config_type, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        return _select(
            context,
            lake,
            stage=name,
            upstream="quality_filtered",
            batches=joined(
                lake, upstream_batches(lake, "quality_filtered", subset, batch_size=config.batch_size),
                "student_rollouts", subset, {"pass_rate": "pass_rate", "detail": "pass_rate_detail"},
            ),
            decide=lambda batch: difficulty.select_difficulty(
                batch, config.max_pass_rate, inclusive=config.inclusive
            ),
            filters=difficulty.FILTERS,
            extra={"max_pass_rate": config.max_pass_rate, "inclusive": config.inclusive},
        )

    return recipe
