"""What a plan is made from: the lake, the source as `collected` maps it, each role's endpoint,
and the run config; shared by `mmfr plan` (the code location's resources and `--config`) and
the `plan` asset (the resources and run config of its own run)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from mmfr_assets.lineage import NAME
from mmfr_assets.llm.resource import ROLES, LLMEndpoint


def endpoints_of(resources: Mapping[str, Any], run_config: Mapping[str, Any]) -> dict[str, LLMEndpoint]:
    """Each role's endpoint as a run with `run_config` would see it: the environment's values
    (the resource class's defaults) with the run config's fields over them."""
    given_resources = run_config.get("resources") or {}
    out = {}
    for role in ROLES:
        endpoint = resources[role]
        given = ((given_resources.get(role) or {}).get("config")) or {}
        # `{env: VAR}` values (the API key) are Dagster's to resolve at run time; the plan never
        # needs them, and never prints them
        given = {k: v for k, v in given.items() if not (isinstance(v, dict) and set(v) == {"env"})}
        out[role] = type(endpoint)(**given) if given else endpoint
    return out


def shared_resource_keys() -> list[str]:
    """The keys of the resources model steps share with other assets (`ModelStep.
    shared_resources`: the teachers' `quality_thresholds`)."""
    from mmfr_assets.model_step.registry import MODEL_STEPS

    return sorted({key for r in MODEL_STEPS for key in r.step.shared_resources})


def shared_resources_of(resources: Mapping[str, Any], run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Each shared resource as a run with `run_config` would see it: the code location's
    (`resources`) with the run config's fields over them, as Dagster merges them."""
    given_resources = run_config.get("resources") or {}
    out = {}
    for key in shared_resource_keys():
        resource = resources[key]
        given = ((given_resources.get(key) or {}).get("config")) or {}
        out[key] = type(resource)(**{**resource.model_dump(), **given}) if given else resource
    return out


def source_frames(source, run_config: Mapping[str, Any]):
    """`subset -> frames` of the `source` resource as `collected` maps it (its run config's
    column map and max_samples), without the image bytes."""
    from mmfr_assets.collection.assets import CollectedConfig
    from mmfr_assets.collection.source import mapped_tables

    given = (((run_config.get("ops") or {}).get(NAME.collected) or {}).get("config")) or {}
    config = CollectedConfig(**given)

    def frames(subset: str) -> Iterator[pl.DataFrame]:
        tables, _ = mapped_tables(source, subset, config.column_map, batch_size=config.batch_size,
                                  max_samples=config.max_samples)
        try:
            for table in tables:
                yield pl.from_arrow(table.drop_columns(["image_bytes"]))
        finally:
            tables.close()

    return frames


def plan_from(lake, source, endpoints: Mapping[str, LLMEndpoint], subsets: Sequence[str],
              run_config: Mapping[str, Any], selection: Sequence[dg.AssetKey] | None = None,
              shared: Mapping[str, Any] | None = None):
    """The plan of a run of `selection` (None: every model step) over `subsets` with
    `run_config` (its `ops.<step>.config` builds each step as the run would) and the shared
    resources as the run sees them (`shared_resources_of`)."""
    from mmfr_assets.model_step.registry import MODEL_STEPS
    from mmfr_assets.planning.counting import Rows
    from mmfr_assets.planning.plan import build_plan

    steps = [r for r in MODEL_STEPS if selection is None or dg.AssetKey(r.step.asset) in selection]
    rows = Rows(lake, source_frames(source, run_config))
    return build_plan(rows, list(subsets), run_config, endpoints, steps, shared=shared)
