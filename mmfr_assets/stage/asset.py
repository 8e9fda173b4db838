"""A stage as a Dagster asset: `stage_asset` builds it from its lineage node, and what its
materialization tells its reader: rows in, dropped per filter and reason, rows out.

The same numbers feed the asset's metadata (for the UI), its Markdown funnel, and the
accounting check that re-counts the committed tables to prove input = kept + dropped.

How it reads in the UI: Dagster plots every Int/Float metadata entry of an asset's
materializations (by partition or by time) and nothing else. With one partition per source
subset, a per-reason count plotted across partitions joins unrelated subsets into a
meaningless line, so only the row counts (`rows_in`, `rows_dropped`, `dagster/row_count`) stay
numeric: every other number a stage records is text (`readable`, floats rounded); drops are one
funnel, in filter order (the Markdown `funnel`, and `dropped` per reason as JSON for code), and
identifiers (`delta_version`, `partition`) are text. Columns carry their descriptions
(`columns.py`). Check results carry their partition in metadata and description, and the checks
are partitioned where the asset is (the check history shows the partition).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from mmfr_assets.columns import describe
from mmfr_assets.lake.delta import count_rows
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import STAGE_NAMES, STEP_SHOWN_IN, node
from mmfr_assets.partitions import deps, lake_partition, subset_of
from mmfr_assets.stage.run import StageRun

if TYPE_CHECKING:
    from mmfr_assets.model_step.join import StepJoin

ACCOUNTING_CHECK = "rows_accounted_for"


def column_schema(schema: pa.Schema, table: str | None = None) -> dg.TableSchema:
    """The table's columns with their types and what they mean: a field's own `description`
    (a model step's `output_schema` carries its columns'), else `columns.describe`."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type),
                                description=(f.metadata or {}).get(b"description", b"").decode()
                                or describe(f.name, table))
                 for f in schema]
    )


def funnel_markdown(run: StageRun) -> str:
    """A Markdown table: each filter's reasons with the rows they dropped and what remains."""
    lines = [
        f"**{run.stage}** · subset `{run.subset}`",
        "",
        "| filter | reason | dropped | remaining |",
        "| --- | --- | ---: | ---: |",
        f"| (input) | | | {run.rows_in} |",
    ]
    remaining = run.rows_in
    for f in run.filters:
        for reason in f.reasons:
            dropped = run.dropped.get((f.name, reason), 0)
            remaining -= dropped
            lines.append(f"| {f.name} | {reason} | {dropped} | {remaining} |")
    lines.append(f"| (output) | | | {run.rows_out} |")
    return "\n".join(lines)


def stage_metadata(
    run: StageRun, extra: Mapping[str, Any] | None = None, lead: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The metadata of a stage's materialization; numbers only where a plot means something.
    The `lead` keys of `extra` come first: the UI lists entries in order, and Dagster 1.13's
    `MaterializeResult` has no description, so what a reader must see first goes on top."""
    metadata: dict[str, Any] = {k: extra[k] for k in lead if extra and k in extra}
    metadata |= {
        "partition": dg.MetadataValue.text(run.subset),
        "dagster/row_count": run.rows_out,
        "rows_in": run.rows_in,
        "rows_dropped": run.rows_dropped,
    }
    if run.filters:
        # Per reason, in filter order (for code; the per-filter sums are the Markdown funnel's).
        metadata["dropped"] = dg.MetadataValue.json(
            {r: run.dropped.get((f.name, r), 0) for f in run.filters for r in f.reasons}
        )
    metadata.update(
        {
            "funnel": dg.MetadataValue.md(funnel_markdown(run)),
            "dagster/column_schema": column_schema(run.schema, run.stage),
            "dagster/uri": dg.MetadataValue.path(run.table_uri),
            "dagster/table_name": run.stage,
            "delta_version": dg.MetadataValue.text(str(run.version)),
            "rejections_uri": dg.MetadataValue.path(run.rejections_uri),
        }
    )
    # This stage's rows in the row viewer (written by the `report` asset), where a page will be.
    shown_in = STEP_SHOWN_IN.get(run.stage, run.stage)
    if shown_in not in STAGE_NAMES:
        metadata["row_viewer"] = dg.MetadataValue.text(
            f"none: {run.stage}'s rows are not training rows and no viewer page shows them")
    elif run.rows_in == 0 and subset_of(run.subset) == run.subset:  # (a shard's subset may have rows)
        metadata["row_viewer"] = dg.MetadataValue.text(
            f"none: no rows of this subset reached {run.stage}, so the viewer has no page for it")
    else:
        metadata["row_viewer"] = _viewer_link(subset_of(run.subset), run.stage, run.table_uri.rsplit("/", 1)[0])
    if run.stage in STEP_SHOWN_IN:
        metadata["row_viewer_shows"] = dg.MetadataValue.text(
            f"{run.stage} has no pages of its own: its columns are on the cards of "
            f"{STEP_SHOWN_IN[run.stage]}'s page, linked as row_viewer")
    if extra:
        metadata.update({key: readable(value) for key, value in extra.items()})
    return metadata


def _viewer_link(subset: str, stage: str, lake_uri: str) -> dg.MetadataValue:
    from mmfr_assets.reporting.publish import metadata_value, viewer_link

    return metadata_value(viewer_link(subset, stage, lake_uri))


def readable(value: Any) -> Any:
    """A number a stage records besides its row counts, as text: the UI plots every Int/Float
    entry across partitions, and a count of one subset beside another's is no series (the
    `cleaned` page drew ten lines flat at zero). Floats are rounded to 4 significant digits
    (`0.9118`, not `0.9117647058823529`). Everything else is kept as given."""
    raw = value.value if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue)) else value
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return value
    return dg.MetadataValue.text(f"{raw:.4g}" if isinstance(raw, float) else str(raw))


def check_spec(
    name: str, *, asset: str, partitions: dg.PartitionsDefinition | None = None, **kwargs: Any
) -> dg.AssetCheckSpec:
    """An asset check partitioned like its asset: each evaluation is recorded for the subset it
    checked, so the UI's check history has a partition column and a check's status is per
    subset (not whichever subset ran last). Partitioned checks are a preview feature of Dagster
    1.13 (its warning is silenced here, once per spec); results also name their subset in the
    description and `partition` metadata, which older UIs show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=partitions, **kwargs)


def accounting_check_spec(asset: str, partitions: dg.PartitionsDefinition | None = None) -> dg.AssetCheckSpec:
    return check_spec(
        ACCOUNTING_CHECK,
        asset=asset,
        partitions=partitions,
        blocking=True,
        description="Re-counts the committed tables: rows in = rows kept + rows in rejections.",
    )


def accounting_check(
    lake: LakeResource, run: StageRun, *, rows_in: int, input_label: str
) -> dg.AssetCheckResult:
    """Compare the input count with what the committed tables now hold for this partition."""
    kept = count_rows(lake.location(run.stage), lake_partition(run.subset))
    dropped = count_rows(
        lake.location(REJECTIONS_TABLE), {"stage": run.stage, **lake_partition(run.subset)}
    )
    passed = rows_in == kept + dropped == run.rows_in
    relation = "==" if passed else "!="
    return dg.AssetCheckResult(
        check_name=ACCOUNTING_CHECK,
        passed=passed,
        # Text, not numbers: the check page would plot them over time (one point per subset,
        # every label the same minute).
        metadata={
            "partition": dg.MetadataValue.text(run.subset),
            **{key: readable(value) for key, value in {
                "input": rows_in, "rows_read": run.rows_in, "kept": kept, "dropped": dropped}.items()},
            "input_source": input_label,
        },
        description=f"subset {run.subset}: {rows_in} in {relation} {kept} kept + {dropped} dropped"
        + ("" if rows_in == run.rows_in else f" ({run.rows_in} read)"),
    )


def stage_result(
    lake: LakeResource,
    run: StageRun,
    *,
    upstream: str,
    extra: Mapping[str, Any] | None = None,
    checks: tuple[dg.AssetCheckResult, ...] = (),
    lead: tuple[str, ...] = (),
) -> dg.MaterializeResult:
    """The materialization of a stage fed by the `upstream` table: metadata and checks."""
    rows_in = count_rows(lake.location(upstream), lake_partition(run.subset))
    return dg.MaterializeResult(
        metadata=stage_metadata(run, extra, lead),
        check_results=[accounting_check(lake, run, rows_in=rows_in, input_label=upstream), *checks],
    )


def group_of(module: str) -> str:
    """A stage's asset group: the package its module is in (`mmfr_assets.selection.assets`:
    `selection`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "mmfr_assets" else parts[-1]


def stage_asset(
    partitions: dg.PartitionsDefinition,
    *,
    name: str | None = None,
    group: str | None = None,
    kinds: Iterable[str] = ("deltalake",),
    checks: Sequence[dg.AssetCheckSpec] = (),
    joins: Sequence[StepJoin] = (),
    all_shards: Sequence[str] = (),
    description: str | None = None,
    **asset_args: Any,
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """The one factory of a stage's asset, a decorator of its function: the asset is named
    after the function (or `name`, one function building several stages), its group is the
    function's package (or `group`: deduplication is shown with cleaning), its deps are what
    its lineage node reads (`all_shards`: those read on every shard of the subset), its checks
    the blocking `rows_accounted_for` and `checks`. `joins`, the columns it takes of the steps
    its node joins, are checked when the definitions load: a step its node does not join, or a
    column the step does not write, fails there.
    The function is the asset's body, typed as any Dagster asset's (`context`, `config: ...`,
    `lake: LakeResource`, other resources)."""

    def build(fn: Callable[..., dg.MaterializeResult]) -> dg.AssetsDefinition:
        asset = name or fn.__name__
        declared = node(asset).joins
        for join in joins:
            if join.table not in declared:
                raise ValueError(f"{asset} takes columns of {join.table}, which its lineage node does not "
                                 f"join ({', '.join(declared) or 'none'}): mmfr_assets/lineage.py")
            join.check()
        return dg.asset(
            name=asset,
            group_name=group or group_of(fn.__module__),
            partitions_def=partitions,
            deps=deps(node(asset).deps, partitions, all_shards) or None,
            kinds=set(kinds),
            check_specs=[accounting_check_spec(asset, partitions), *checks],
            description=description,
            **asset_args,
        )(fn)

    return build
