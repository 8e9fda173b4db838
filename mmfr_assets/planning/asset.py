"""The `plan` asset: `mmfr plan`'s figures where a Dagster user looks before launching a backfill.

Why an asset, unpartitioned, with no deps: a Dagster user sees what a step will do on its asset
page, and "Materialize" on `plan` is one click that runs only the plan. Nothing is upstream of it
(it reads the source and whatever the lake holds, as `mmfr plan` does), so materializing it
never starts a model step, and nothing is downstream of it, so it never holds a backfill up. It
is not partitioned: one materialization plans the subsets its config names (`all` by default),
one table row per subset, the way the backfill dialog picks several subsets at once; so the
per-subset runs (`mmfr run`, the tests' "every partitioned asset") leave it out. Its run's config
is the plan's config: the model steps' `ops.<asset>.config` and the resource config of the
endpoints and of the shared `quality_thresholds` given in the launchpad are the ones planned
with, as `mmfr plan --config` reads them.

Not an asset check (a check judges an asset's materialization and has none to judge here), not
an observable source asset (an observation is not launched from the backfill dialog and shows
no Markdown table in the catalog), not a sensor (ticks, not a table a user opens).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the asset
# function's annotation, which must be the class itself, not a string.

import json
from collections.abc import Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from mmfr_assets.llm.resource import ROLES
from mmfr_assets.planning.inputs import shared_resource_keys

PLAN_ASSET = "plan"


class PlanConfig(dg.Config):
    """Which subsets to plan (the model steps' own configs are read from the run config)."""

    subsets: str = Field(
        default="all",
        description="'all' or a comma-separated list of subsets (partitions), as `mmfr plan --subsets`. "
        "The model steps' config (`ops.<asset>.config`) and the endpoints' (`resources.<role>.config`) "
        "in this run's config are planned with, as the backfill will run them.")


def plan_metadata(plan) -> dict[str, Any]:
    """The materialization's metadata: the table `mmfr plan` prints (Markdown), the totals as
    text (the UI would plot numbers across materializations that planned other subsets), and
    the `--json` object for code."""
    from mmfr_assets.planning.figures import overall
    from mmfr_assets.planning.render import plan_lines

    total = overall(plan.roles)
    as_json = plan.as_json()
    metadata: dict[str, Any] = {
        "plan": dg.MetadataValue.md("\n".join(plan_lines(plan))),
        "subsets": dg.MetadataValue.text(", ".join(plan.subsets)),
        "requests": dg.MetadataValue.text(f"{total['requests']:,} (upper bound {total['requests_upper_bound']:,})"),
        "tokens": dg.MetadataValue.text(f"{total['prompt_tokens']:,} prompt, {total['completion_tokens']:,} completion"),
    }
    if "gpu_hours" in total:
        metadata["gpu_hours"] = dg.MetadataValue.text(
            f"{total['gpu_hours']:,.3f} ({', '.join(total['gpu_hours_roles'])})")
    if "cost" in total:
        metadata["cost"] = dg.MetadataValue.text(f"{total['cost']:,.2f} ({', '.join(total['cost_roles'])})")
    metadata["plan_json"] = dg.MetadataValue.json(json.loads(json.dumps(as_json)))
    return metadata


def build_plan_asset(subsets: Sequence[str]) -> dg.AssetsDefinition:
    """The `plan` asset over the source's `subsets` (the partition keys of `collected`)."""
    available = list(subsets)

    @dg.asset(
        name=PLAN_ASSET,
        group_name="planning",
        required_resource_keys={"lake", "source", *ROLES, *shared_resource_keys()},
        description="What a run will ask each model for, before it runs (`mmfr plan`): rows, requests and "
        "tokens per subset and role, GPU-hours and money where the endpoints say. Reads the source and the "
        "lake; sends no request. Materialize it with the backfill's run config before launching the backfill.",
    )
    def plan(context: dg.AssetExecutionContext, config: PlanConfig) -> dg.MaterializeResult:
        from mmfr_assets.cli.inputs import parse_subsets
        from mmfr_assets.planning.inputs import plan_from

        resources = context.resources
        endpoints = {role: getattr(resources, role) for role in ROLES}
        shared = {key: getattr(resources, key) for key in shared_resource_keys()}
        planned = plan_from(resources.lake, resources.source, endpoints, parse_subsets(config.subsets, available),
                            context.run_config, shared=shared)
        total = planned.as_json()["overall"]
        context.log.info(f"plan: {len(planned.subsets)} subset(s), {total['requests']:,} requests "
                         f"(upper bound {total['requests_upper_bound']:,}); nothing was sent to a model")
        return dg.MaterializeResult(metadata=plan_metadata(planned))

    return plan
