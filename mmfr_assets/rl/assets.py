"""`rl_selected`: the RL set, a stage beside the SFT recipes. Its rows are `deduplicated` rows
(cleaned, near-duplicates and benchmark leaks removed) with the policy's pass rates from
`rl_verdicts` and the reference form from `rl_rollouts`; `rules.rl_decision` keeps or drops
each with its reason. The two model steps are declared in `steps.py` and built from
`model_step/registry.py`."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
import pyarrow as pa

from mmfr_assets.dedup.assets import DEDUPLICATED_SCHEMA
from mmfr_assets.lake.delta import count_rows, read_partition
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import NAME, upstream_of
from mmfr_assets.model_step.join import join_step, joins_of, take
from mmfr_assets.partitions import lake_partition
from mmfr_assets.rl import rules
from mmfr_assets.rl.configs import RlSelectedConfig
from mmfr_assets.stage import run_stage, stage_asset, stage_result, upstream_batches

#: What `rl_selected` takes of its steps (the policy's rollouts, their verdicts): the reference
#: and its form, each group's pass rate.
_ROLLOUTS, _VERDICTS = joins_of(NAME.rl_selected)
RL_JOINS = (
    take(_ROLLOUTS, "reference", "reference_form", "checkable", "blind_samples", "samples",
         detail="reference_detail"),
    take(_VERDICTS, "pass_rate", "pass_rate_low", "pass_rate_high", "blind_pass_rate",
         "blind_pass_rate_low", "blind_pass_rate_high", detail="pass_rate_detail", blind_detail="blind_detail"),
)
#: The RL set's table: the deduplicated row, then what the RL trainer and the report need.
RL_SELECTED_SCHEMA = pa.schema([
    *DEDUPLICATED_SCHEMA,
    ("reference", pa.string()),  # the reference as the rules read it: verl's ground_truth
    ("reference_form", pa.string()),
    ("samples", pa.int32()),
    ("pass_rate", pa.float64()),
    ("pass_rate_low", pa.float64()),
    ("pass_rate_high", pa.float64()),
    ("blind_samples", pa.int32()),
    ("blind_pass_rate", pa.float64()),
    ("blind_pass_rate_low", pa.float64()),
    ("blind_pass_rate_high", pa.float64()),
])


def sft_ids(lake: LakeResource, table: str, subset: str) -> set[str]:
    """The ids of `table`'s partition (the SFT set to exclude). One column of one partition:
    a few tens of bytes a row. A partition the table never decided on (no rows kept, none
    dropped) is an error, not an empty set: excluding nothing would silently keep the SFT rows."""
    location = lake.location(table)
    partition = lake_partition(subset)
    decided = (count_rows(location, partition)
               + count_rows(lake.location(REJECTIONS_TABLE), {**partition, "stage": table}))
    if location.table() is None or decided == 0:
        raise dg.Failure(f"{NAME.rl_selected}: exclude_sft_asset is {table}, which has not been materialized for "
                         f"{subset}: materialize it first (or unset exclude_sft_asset)")
    ids: set[str] = set()
    with read_partition(location, lake_partition(subset), columns=["id"], batch_size=65536) as reader:
        for batch in reader:
            ids.update(batch.column("id").to_pylist())
    return ids


def _marked(batches: Iterator[pl.DataFrame], excluded: set[str]) -> Iterator[pl.DataFrame]:
    try:
        for batch in batches:
            yield batch.with_columns(pl.col("id").is_in(list(excluded)).alias("in_sft_set") if excluded
                                     else pl.lit(False).alias("in_sft_set"))
    finally:
        batches.close()


def build_rl(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @stage_asset(
        partitions,
        kinds={"deltalake", "polars"},
        joins=RL_JOINS,
        description="The RL set: deduplicated rows whose reference a rule can check, which the "
        "policy (`policy_llm`) solves sometimes but not always over its samples with the image "
        "(0 < pass rate < 1 by default) and not without the image; optionally none of an SFT "
        "set's rows. Every other row is dropped with its reason.",
    )
    def rl_selected(context: dg.AssetExecutionContext, config: RlSelectedConfig,
                    lake: LakeResource) -> dg.MaterializeResult:
        subset = context.partition_key
        upstream = upstream_of(NAME.rl_selected)
        excluded = sft_ids(lake, config.exclude_sft_asset, subset) if config.exclude_sft_asset else set()
        batches = join_step(lake, upstream_batches(lake, upstream, subset, batch_size=config.batch_size),
                            subset, RL_JOINS, batch_size=config.batch_size)
        run = run_stage(lake, stage=NAME.rl_selected, subset=subset, batches=_marked(batches, excluded),
                        decide=lambda batch: rules.select_rl(batch, config), schema=RL_SELECTED_SCHEMA,
                        filters=rules.FILTERS)
        context.log.info(f"{NAME.rl_selected} {subset}: kept {run.rows_out} of {run.rows_in}")
        # Settings, not metrics: text, so the UI does not plot them across partitions.
        return stage_result(lake, run, upstream=upstream, extra={
            "recipe": dg.MetadataValue.text(rules.band_text(config)),
            "min_pass_rate": dg.MetadataValue.text(str(config.min_pass_rate)),
            "max_pass_rate": dg.MetadataValue.text(str(config.max_pass_rate)),
            "max_blind_pass_rate": dg.MetadataValue.text(str(config.max_blind_pass_rate)),
            "exclude_sft_asset": dg.MetadataValue.text(str(config.exclude_sft_asset)),
            "sft_rows_excluded_from": dg.MetadataValue.text(str(len(excluded))),
        })

    return [rl_selected]
