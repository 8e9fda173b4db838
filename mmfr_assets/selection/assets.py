"""Selection as assets: `answer_verdicts` (is each trace's answer right?) feeds
`quality_filtered`; `student_rollouts` (the student's samples) and `student_verdicts` (the
judge on the samples the rules left, then the pass rate or its bounds) feed both published
recipes side by side, `difficulty_filtered` (pass rate = 0, the 123K recipe) and
`difficulty_filtered_586k` (pass rate != 1). The three model steps are declared in `steps.py`
and built from `model_step/registry.py`; this module holds the filters that consume them."""


from collections.abc import Iterator

import dagster as dg
import polars as pl

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.lineage import NAME, upstream_of
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.model_step.join import join_step, joins_of, take
from mmfr_assets.rules import quality
from mmfr_assets.rules.config import QualityThresholds, teachers_validation_thresholds, threshold_drift
from mmfr_assets.selection import difficulty
from mmfr_assets.selection.configs import RECIPE_CONFIGS, QualityFilteredConfig
from mmfr_assets.stage import Filter, run_stage, stage_asset, stage_result, upstream_batches
from mmfr_assets.student_first.coverage import quality_metadata


#: What `quality_filtered` takes of `answer_verdicts` (the verdict, and who decided, for drop
#: details) and the recipes of `student_verdicts` (the pass rate or its bounds): `model_step/join.py`.
(_ANSWER_VERDICTS,), (_STUDENT_VERDICTS,) = joins_of(NAME.quality_filtered), joins_of(NAME.difficulty_filtered)
VERDICTS_JOIN = take(_ANSWER_VERDICTS, "is_consistent", analysis="_verdict_analysis", method="_verdict_method",
                     final_answer="_verdict_final_answer", reference="_verdict_reference")
PASS_RATES_JOIN = take(_STUDENT_VERDICTS, "pass_rate", "pass_rate_low", "pass_rate_high", detail="pass_rate_detail")


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


def _with_verdicts(lake: LakeResource, batches, subset: str, batch_size: int):
    """Distilled batches whose `is_consistent` is `answer_verdicts`' verdict (and whose
    `consistency_analysis` its judge analysis, where the judge decided)."""
    joined_batches = join_step(lake, batches, subset, VERDICTS_JOIN, batch_size=batch_size)
    try:
        for batch in joined_batches:
            # The `_verdict_*` columns say who decided in drop details (quality.VERDICT_COLUMNS);
            # select_quality leaves them out of the kept rows.
            yield batch.with_columns(
                pl.when(pl.col("_verdict_method") == "judge")
                .then(pl.col("_verdict_analysis"))
                .otherwise(pl.col("consistency_analysis"))
                .alias("consistency_analysis")
            )
    finally:
        joined_batches.close()


def build_selection(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @stage_asset(
        partitions,
        kinds={"deltalake", "polars"},
        joins=[VERDICTS_JOIN],
        description="Distilled rows passing the published quality rules: content, structure, "
        "repetition and answer consistency (the verdict of `answer_verdicts`), in that order.",
    )
    def quality_filtered(
        context: dg.AssetExecutionContext, config: QualityFilteredConfig, lake: LakeResource,
        quality_thresholds: QualityThresholds,
    ) -> dg.MaterializeResult:
        rules = quality_thresholds.rules()
        subset = context.partition_key
        upstream = upstream_of(NAME.quality_filtered)
        drift = threshold_drift(rules, teachers_validation_thresholds(context.instance, subset))
        for teacher, differ in drift.items():
            context.log.warning(
                f"{teacher} validated its generated texts with other thresholds than {NAME.quality_filtered} "
                f"applies ({', '.join(f'{k}: {old!r} there, {new!r} here' for k, (old, new) in differ.items())}): "
                f"texts it kept may be dropped here; materialize {teacher} with the same thresholds to re-ask")
        return _select(
            context,
            lake,
            stage=NAME.quality_filtered,
            upstream=upstream,
            batches=_with_verdicts(
                lake, upstream_batches(lake, upstream, subset, batch_size=config.batch_size), subset,
                config.batch_size,
            ),
            decide=lambda batch: quality.select_quality(batch, rules),
            filters=quality.FILTERS,
            extra={**quality_metadata(lake, subset),
                   "thresholds": dg.MetadataValue.json(quality_thresholds.applied()),
                   "teacher_threshold_drift": dg.MetadataValue.json(drift) if drift else dg.MetadataValue.text(
                       "none: every teacher validated its texts with these thresholds (or was not run)")},
        )

    return [
        quality_filtered,
        _difficulty_asset(
            NAME.difficulty_filtered, RECIPE_CONFIGS[NAME.difficulty_filtered], partitions,
            "Quality rows the 4B student never solves (pass rate = 0 over 4 student samples: "
            "the 123K recipe; pass rates from `student_verdicts`).",
        ),
        _difficulty_asset(
            NAME.difficulty_filtered_586k, RECIPE_CONFIGS[NAME.difficulty_filtered_586k], partitions,
            "Quality rows the 4B student does not always solve (pass rate < 1 over 4 student "
            "samples: the 586K recipe; pass rates from `student_verdicts`). Its own table and rejections stage: "
            "materializing it never touches `difficulty_filtered`.",
        ),
    ]


def _difficulty_asset(
    name: str, config_type: type, partitions: dg.PartitionsDefinition, description: str
) -> dg.AssetsDefinition:
    @stage_asset(partitions, name=name, kinds={"deltalake", "polars"}, joins=[PASS_RATES_JOIN],
                 description=description)
    def recipe(
        context: dg.AssetExecutionContext, config: config_type, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        upstream = upstream_of(name)
        by_bounds = 0

        def decide(batch: pl.DataFrame):
            nonlocal by_bounds
            by_bounds += difficulty.decided_by_bounds(batch, config.max_pass_rate, inclusive=config.inclusive)
            return difficulty.select_difficulty(batch, config.max_pass_rate, inclusive=config.inclusive)

        run = run_stage(
            lake, stage=name, subset=subset,
            batches=join_step(
                lake, upstream_batches(lake, upstream, subset, batch_size=config.batch_size),
                subset, PASS_RATES_JOIN, batch_size=config.batch_size,
            ),
            decide=decide, schema=DISTILLED_SCHEMA, filters=difficulty.FILTERS,
        )
        context.log.info(f"{name} {subset}: kept {run.rows_out} of {run.rows_in}")
        # Settings, not metrics: text, so the UI does not plot them across partitions.
        return stage_result(lake, run, upstream=upstream, extra={
            "max_pass_rate": dg.MetadataValue.text(str(config.max_pass_rate)),
            "inclusive": dg.MetadataValue.text(str(config.inclusive)),
            "recipe": dg.MetadataValue.text(difficulty.recipe_rule(config.max_pass_rate, config.inclusive)),
            "rows_decided_by_bounds": by_bounds,
        })

    return recipe
