"""`collected`: the source subset, streamed into the lake as it was published."""


import contextlib
from typing import Literal

import dagster as dg
from pydantic import Field
import polars as pl
import pyarrow as pa

from mmfr_assets.collection.duplicates import DUPLICATE_FILTERS, DuplicateIds
from mmfr_assets.collection.mapping import ColumnMap
from mmfr_assets.collection.source import CARD_COLUMNS, HFSourceResource, mapped_tables
from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import NAME
from mmfr_assets.progress import for_partition
from mmfr_assets.stage import accounting_check, check_spec, run_stage, stage_asset, stage_metadata

COLLECTED_SCHEMA = pa.schema(
    [("subset", pa.string()), ("id", pa.string())]
    + list(CARD_COLUMNS.items())
    + [("image_bytes", pa.binary()), ("image_path", pa.string()), ("image_count", pa.int32())]
)


class CollectedConfig(dg.Config):
    """How much of the source subset to collect."""

    max_samples: int | None = Field(
        default=None, description="Collect the first N rows of the subset only (as "
        "`mmfr run --max-samples`); null: every row.")
    batch_size: int = Field(
        default=256, description="Source rows read and written per batch; images make rows "
        "large, so batches stay small.")
    # Which source column holds what; unset names are detected (problem/solution/images, ...).
    column_map: ColumnMap = ColumnMap()

    # --- duplicate ids (issue 13) ---
    # `reject`: a partition whose source repeats an id is refused (nothing committed), the
    # error names the ids; `keep_first`: later rows of an id go to `rejections` as
    # collection/duplicate_id.
    duplicate_ids: Literal["reject", "keep_first"] = Field(
        default="reject", description="A source that repeats an id: `reject` refuses the "
        "partition (nothing committed; the error names the ids); `keep_first` keeps the first "
        "row of each id and sends the others to `rejections` as collection/duplicate_id.")
    # --- end duplicate ids ---


def ids_unique_check(lake: LakeResource, subset: str) -> dg.AssetCheckResult:
    """Reads only the id column of the committed partition."""
    with read_partition(
        lake.location(NAME.collected), {"subset": subset}, columns=["id"], batch_size=65536
    ) as reader:
        ids = pl.concat(
            [pl.from_arrow(b) for b in reader]
            or [pl.DataFrame({"id": []}, schema={"id": pl.String})]
        )["id"]
    duplicated = ids.filter(ids.is_duplicated()).unique().sort()
    return dg.AssetCheckResult(
        check_name="ids_unique",
        passed=duplicated.len() == 0,
        metadata={"partition": subset, "rows": ids.len(), "duplicated_ids": duplicated.len(),
                  "examples": ", ".join(duplicated.head(10).to_list())},
        description=f"subset {subset}: "
        + (f"{duplicated.len()} duplicated ids" if duplicated.len() else "every id unique"),
    )


def _rows_to_collect(source: HFSourceResource, subset: str, config: CollectedConfig) -> int | None:
    """The progress total: the source's row count where its files say it, capped by max_samples."""
    rows = source.row_count(subset)
    if config.max_samples is None:
        return rows
    return config.max_samples if rows is None else min(rows, config.max_samples)


def build_collected(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @stage_asset(
        partitions,
        kinds={"deltalake", "huggingface"},
        checks=[check_spec(
            "ids_unique", asset=NAME.collected, partitions=partitions, blocking=True,
            description="(subset, id) must identify a row: later tables join on it.",
        )],
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
        if config.max_samples is not None and config.max_samples <= 0:
            raise InputError(
                f"{NAME.collected}: max_samples must be a positive number of rows (or unset for all), "
                f"got {config.max_samples}"
            )
        duplicates = DuplicateIds(subset, config.duplicate_ids)
        # The mapping is checked against the source's first batch before run_stage starts:
        # a bad mapping or source is refused (InputError) with no table touched.
        tables, mapping = mapped_tables(
            source, subset, config.column_map,
            batch_size=config.batch_size, max_samples=config.max_samples,
        )
        context.log.info(f"{subset}: column mapping {mapping}")

        def batches():
            for table in tables:
                yield pl.from_arrow(table)
            # Raised before run_stage commits: a refused partition keeps its previous version.
            duplicates.refuse_if_any()

        # The source stream is closed on every path, even if run_stage fails before reading it
        # (a half-read stream left to interpreter exit can hang the process).
        with contextlib.closing(tables):
            run = run_stage(
                lake,
                stage=NAME.collected,
                subset=subset,
                batches=batches(),
                decide=duplicates.decide,
                schema=COLLECTED_SCHEMA,
                filters=DUPLICATE_FILTERS,
                progress=for_partition(context, NAME.collected, _rows_to_collect(source, subset, config)),
            )
        context.log.info(f"{NAME.collected} {run.rows_out} rows of {subset} from {source.path}")
        return dg.MaterializeResult(
            metadata=stage_metadata(
                run,
                {
                    "source": source.path,
                    "max_samples": str(config.max_samples or "all"),
                    "column_map": dg.MetadataValue.json(mapping),
                    "duplicate_ids": config.duplicate_ids,
                },
            ),
            check_results=[
                accounting_check(lake, run, rows_in=run.rows_in, input_label="source rows read"),
                ids_unique_check(lake, subset),
            ],
        )

    return collected
