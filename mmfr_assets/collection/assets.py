"""`collected`: the source subset, streamed into the lake as it was published."""


import contextlib

import dagster as dg
import polars as pl
import pyarrow as pa

from mmfr_assets.collection.mapping import ColumnMap
from mmfr_assets.collection.source import CARD_COLUMNS, HFSourceResource, mapped_tables
from mmfr_assets.funnel import accounting_check, accounting_check_spec, stage_metadata
from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.stage import Verdicts, run_stage

COLLECTED_SCHEMA = pa.schema(
    [("subset", pa.string()), ("id", pa.string())]
    + list(CARD_COLUMNS.items())
    + [("image_bytes", pa.binary()), ("image_path", pa.string()), ("image_count", pa.int32())]
)


class CollectedConfig(dg.Config):
    """How much of the source subset to collect."""

    max_samples: int | None = None  # first N rows only (the seed pipeline's --max-samples)
    batch_size: int = 256  # rows per batch; images make rows large, so batches stay small
    # Which source column holds what; unset names are detected (problem/solution/images, ...).
    column_map: ColumnMap = ColumnMap()


def ids_unique_check(lake: LakeResource, subset: str) -> dg.AssetCheckResult:
    """Reads only the id column of the committed partition."""
    with read_partition(
        lake.location("collected"), {"subset": subset}, columns=["id"], batch_size=65536
    ) as reader:
        ids = pl.concat(
            [pl.from_arrow(b) for b in reader]
            or [pl.DataFrame({"id": []}, schema={"id": pl.String})]
        )["id"]
    duplicated = ids.filter(ids.is_duplicated()).unique().sort()
    return dg.AssetCheckResult(
        check_name="ids_unique",
        passed=duplicated.len() == 0,
        metadata={"rows": ids.len(), "duplicated_ids": duplicated.len(),
                  "examples": ", ".join(duplicated.head(10).to_list())},
    )


def build_collected(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="collected",
        group_name="collection",
        partitions_def=partitions,
        kinds={"deltalake", "huggingface"},
        check_specs=[
            accounting_check_spec("collected"),
            dg.AssetCheckSpec(
                "ids_unique", asset="collected", blocking=True,
                description="(subset, id) must identify a row: later tables join on it.",
            ),
        ],
        description="The source subset as published, one row per source row, images as bytes. "
        "The only table that stores original image bytes: later stages join on (subset, id).",
    )
    def collected(
        context: dg.AssetExecutionContext,
        config: CollectedConfig,
        lake: LakeResource,
        source: HFSourceResource,
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        # The mapping is checked against the source's first batch before run_stage starts:
        # a bad mapping or source is refused (InputError) with no table touched.
        tables, mapping = mapped_tables(
            source, subset, config.column_map,
            batch_size=config.batch_size, max_samples=config.max_samples,
        )
        context.log.info(f"{subset}: column mapping {mapping}")

        # The source stream is closed on every path, even if run_stage fails before reading it
        # (a half-read stream left to interpreter exit can hang the process).
        with contextlib.closing(tables):
            run = run_stage(
                lake,
                stage="collected",
                subset=subset,
                batches=(pl.from_arrow(table) for table in tables),
                decide=Verdicts.no_drops,
                schema=COLLECTED_SCHEMA,
            )
        context.log.info(f"collected {run.rows_out} rows of {subset} from {source.path}")
        return dg.MaterializeResult(
            metadata=stage_metadata(
                run,
                {"source": source.path, "max_samples": config.max_samples or "all",
                 "column_map": dg.MetadataValue.json(mapping)},
            ),
            check_results=[
                accounting_check(lake, run, rows_in=run.rows_in, input_label="source rows read"),
                ids_unique_check(lake, subset),
            ],
        )

    return collected
