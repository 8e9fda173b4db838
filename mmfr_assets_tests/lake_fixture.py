"""A lake materialized from the real published rows, shared by the report and export tests."""

from __future__ import annotations

import dagster as dg

from mmfr_assets.definitions import build_definitions

# Real rows with real images; one subset name with parentheses (partition keys, folders).
SUBSETS = ("BMMR", "FineVision-geo170k(qa)", "WeMath2-Pro")


def materialize_subsets(source, lake_uri: str, subsets, instance: dg.DagsterInstance) -> dg.Definitions:
    """Materialize every partitioned asset (not the report) for `subsets`."""
    defs = build_definitions(str(source), lake_uri, {})
    graph = defs.resolve_asset_graph()
    partitioned = [key for key in graph.get_all_asset_keys()
                   if graph.get(key).partitions_def is not None]
    job = defs.resolve_implicit_global_asset_job_def()
    for subset in subsets:
        result = job.execute_in_process(
            partition_key=subset, instance=instance, asset_selection=partitioned
        )
        assert result.success, subset
    return defs
