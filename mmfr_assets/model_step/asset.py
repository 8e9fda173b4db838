"""A declared `ModelStep` as a Dagster asset: one table per step, in the pool of its endpoint.

Every model-driven asset is built here, so they all read their upstream the same way, run
their share of the endpoint's `max_concurrency` (the total over every run: divided by the slots
of the endpoint's pool, `mmfr_assets/llm/bound.py`) in flight across the whole partition, write their rows in the
upstream's order, record the same metadata, and stop downstream work through the same
blocking checks.
"""

# No `from __future__ import annotations`: Dagster reads the config class from the asset
# function's annotation, which must be the class itself, not a string.

import contextlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from mmfr_assets.lake.ordered import PartitionImages
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.llm.resource import CACHE_RESOURCE_KEY, LLMCache, LLMEndpoint
from mmfr_assets.llm.bound import pool_slots
from mmfr_assets.llm.types import ChatRequest
from mmfr_assets.model_step.declaration import ModelStep, ModelStepConfig
from mmfr_assets.model_step.join import join_step
from mmfr_assets.model_step.runner import (
    StepStats, check_declaration, no_endpoint_reason, run_model_step, table_schema,
)
from mmfr_assets.lake.delta import count_rows
from mmfr_assets.partitions import deps as asset_deps, lake_partition
from mmfr_assets.progress import for_partition
from mmfr_assets.prompts import load_prompt
from mmfr_assets.stage import (
    Verdicts, accounting_check_spec, check_spec, readable, run_stage, stage_result, upstream_batches,
)
from mmfr_assets.stage.asset import group_of

FAILURE_CHECK = "generation_failure_rate"
# Fails (WARN) when rows needed the model and no endpoint was configured: a step that did not
# run must not look green on the graph.
MODEL_RAN_CHECK = "model_ran"


def model_step_asset(
    step_type: type[ModelStep],
    partitions: dg.PartitionsDefinition,
    *,
    group: str | None = None,
) -> dg.AssetsDefinition:
    """The asset of `step_type`, built per run as `step_type.for_run(config, run_config,
    shared)` from its `config_class` and its `shared_resources`; in the group of its package
    (or `group`), reading its `upstream` and its joins' tables (what its lineage node reads).

    Its resources are typed parameters, as any asset's: `lake`, `llm_cache` (`LLMCache`), the
    step's endpoint under its role's key (`LLMEndpoint`) and its `shared_resources`. The role
    differs per step, so the parameters' names are set in the function's `__signature__`,
    which Dagster reads (and checks against the definitions' resources) like a written one.
    """
    check_declaration(step_type)
    name, role = step_type.asset, step_type.role

    @dg.asset(
        name=name,
        group_name=group or group_of(step_type.__module__),
        partitions_def=partitions,
        deps=asset_deps([step_type.upstream, *(j.table for j in step_type.joins)], partitions),
        pool=role,
        kinds={"deltalake", "openai"},
        check_specs=[
            accounting_check_spec(name, partitions),
            check_spec(
                FAILURE_CHECK, asset=name, partitions=partitions, blocking=True,
                description="Share of rows sent to the endpoint whose output is unusable (given up "
                "after retries, or unparseable); above max_failure_rate downstream assets do not run.",
            ),
            check_spec(
                MODEL_RAN_CHECK, asset=name, partitions=partitions, blocking=False,
                description=f"Warns when rows needed the {role} endpoint and none is configured: "
                "those rows were written without the model's output.",
            ),
        ],
        description=step_type.description or None,
    )
    @_with_resource_parameters(role, step_type.config_class, step_type.shared_resources)
    def step_asset(context: dg.AssetExecutionContext, config: ModelStepConfig, lake: LakeResource,
                   llm_cache: LLMCache, **resources: Any) -> dg.MaterializeResult:
        shared = {key: resources[key] for key in step_type.shared_resources}
        return _run_step(context, step_type, config, lake=lake, cache=llm_cache, endpoint=resources[role],
                         shared=shared)

    return step_asset


def _with_resource_parameters(role: str, config_type: type[ModelStepConfig],
                              shared: Mapping[str, type[dg.ConfigurableResource]]):
    """Give the asset function the signature `(context, config: config_type, lake, llm_cache,
    <role>: LLMEndpoint, <key>: <class> for each shared resource)`: Dagster then passes the
    role's resource and the shared ones by keyword, typed."""
    def decorate(fn):
        P = inspect.Parameter
        fn.__signature__ = inspect.Signature(
            [P("context", P.POSITIONAL_OR_KEYWORD, annotation=dg.AssetExecutionContext),
             P("config", P.KEYWORD_ONLY, annotation=config_type),
             P("lake", P.KEYWORD_ONLY, annotation=LakeResource),
             P(CACHE_RESOURCE_KEY, P.KEYWORD_ONLY, annotation=LLMCache),
             P(role, P.KEYWORD_ONLY, annotation=LLMEndpoint),
             *(P(key, P.KEYWORD_ONLY, annotation=kind) for key, kind in shared.items())],
            return_annotation=dg.MaterializeResult)
        return fn
    return decorate


def _run_step(context: dg.AssetExecutionContext, step_type: type[ModelStep], config: ModelStepConfig, *,
              lake: LakeResource, cache: LLMCache, endpoint: LLMEndpoint,
              shared: Mapping[str, Any]) -> dg.MaterializeResult:
    """One partition of the step: stream the upstream (with the step's joins) through the
    runner into the step's table; metadata and checks from what happened."""
    name, role = step_type.asset, step_type.role
    subset = context.partition_key
    step = step_type.for_run(config, context.run_config, shared)
    prompt = load_prompt(step.prompt)
    stats = StepStats()
    with contextlib.ExitStack() as stack:
        stack.callback(step.close)
        session = images = bound = None
        if endpoint.enabled:
            # max_concurrency is the endpoint's total over every run: this step's share
            bound = endpoint.bound(pool_slots(context.instance, role), context.partition_key)
            context.log.info(f"{name} {subset}: {role} {bound.explain()}")
            session = stack.enter_context(
                endpoint.open_session(cache=cache.path(), log=context.log, bound=bound))
            if step.sends_image:
                images = PartitionImages(lake, subset, read_cleaned=True)  # ids come in order
                stack.callback(images.close)

        def build_request(text: str, image: bytes | None) -> ChatRequest:
            return endpoint.request(text, image=image, system=prompt.system or None)

        columns = ["subset", "id", *[c for c in step.columns if c not in ("subset", "id")]]
        upstream = upstream_batches(lake, step.upstream, subset, columns=columns,
                                    batch_size=config.batch_size)
        if step.joins:
            upstream = join_step(lake, upstream, subset, step.joins, batch_size=config.batch_size)
        stack.callback(upstream.close)
        # every upstream row becomes one row of the step's table: the rows to do are known
        total = count_rows(lake.location(step.upstream), lake_partition(subset))
        progress = for_partition(context, name, total)
        stack.callback(progress.finish)  # the step ended (done or failed): listeners drop its bar
        rows = run_model_step(
            step, upstream,
            session=session, prompt=prompt, build_request=build_request, images=images,
            supports_n=endpoint.supports_n, base_seed=endpoint.seed,
            reorder_limit=config.reorder_limit, stats=stats, progress=progress,
        )
        stack.callback(rows.close)
        run = run_stage(lake, stage=name, subset=subset, batches=rows, decide=Verdicts.no_drops,
                        schema=table_schema(step))
    usage = session.usage if session is not None else None
    if session is None:
        summary = (f"skipped: {no_endpoint_reason(role)}; "
                   f"{stats.not_sent} of {stats.rows} rows needed it")
        context.log.warning(f"{name} {subset}: {summary}")
    else:
        summary = (f"{stats.sent} of {stats.rows} rows sent to {role} ({endpoint.model}); "
                   f"{stats.failed} failed, {stats.retried_rows} asked again")
        context.log.info(f"{name} {subset}: {summary}")
    rate = stats.failed / stats.sent if stats.sent else 0.0
    metadata = {
        "model_calls": dg.MetadataValue.text(summary),
        "model": dg.MetadataValue.text(endpoint.model or "(the endpoint's default)" if session is not None
                                       else f"none: no {role} endpoint configured"),
        "prompt_version": dg.MetadataValue.text(prompt.version),
        "rows_sent": stats.sent,
        "rows_needing_model_not_sent": stats.not_sent,
        "rows_failed": stats.failed,
        "rows_asked_again": stats.retried_rows,
        **{f"rows/{status}": n for status, n in sorted(stats.statuses.items(), key=str)},
    }
    if bound is not None:
        metadata["endpoint_concurrency"] = dg.MetadataValue.text(str(bound.per_step))
        metadata["endpoint_concurrency_derivation"] = dg.MetadataValue.text(bound.explain())
    if stats.attempts:
        metadata["attempts_histogram"] = dg.MetadataValue.json(
            {str(k): v for k, v in sorted(stats.attempts.items())})
    if stats.failures:
        metadata["failures"] = dg.MetadataValue.json(dict(stats.failures.most_common(10)))
    if usage is not None:
        metadata.update(usage.to_metadata(prefix="llm_"))
    metadata.update(step.extra_metadata())
    return stage_result(
        lake, run, upstream=step.upstream, extra=metadata, lead=("model_calls",),
        checks=(
            model_ran_check(role, subset, enabled=session is not None, stats=stats),
            dg.AssetCheckResult(
                check_name=FAILURE_CHECK,
                passed=rate <= config.max_failure_rate,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"partition": dg.MetadataValue.text(subset),
                          **{k: readable(v) for k, v in {
                              "sent": stats.sent, "failed": stats.failed, "failure_rate": rate,
                              "max_failure_rate": config.max_failure_rate}.items()},
                          "top_failures": dg.MetadataValue.text(
                              json.dumps(dict(stats.failures.most_common(3))))},
                description=f"subset {subset}: {stats.failed} of {stats.sent} rows failed "
                f"({rate:.1%} {'<=' if rate <= config.max_failure_rate else '>'} "
                f"{config.max_failure_rate:.1%})" if session is not None else
                f"subset {subset}: nothing sent (no {role} endpoint configured); see {MODEL_RAN_CHECK}",
            ),
        ),
    )



def model_ran_check(role: str, subset: str, *, enabled: bool, stats: StepStats) -> dg.AssetCheckResult:
    """`model_ran`: fails with WARN severity when rows needed the model and no endpoint was
    configured, so the graph shows the step did not run (its table holds those rows without
    the model's output, origin `missing` or `skipped`)."""
    needed = stats.sent + stats.not_sent
    rows = f"{needed} row{'s' if needed != 1 else ''}"
    if enabled:
        text = f"{stats.sent} of {stats.rows} rows sent to {role}"
    elif stats.not_sent:
        text = (f"{rows} needed {role}; no endpoint configured (MMFR_{role.upper()}_BASE_URL unset): "
                f"written without the model's output")
    else:
        text = f"no row needed {role} (no endpoint configured)"
    return dg.AssetCheckResult(
        check_name=MODEL_RAN_CHECK,
        passed=enabled or stats.not_sent == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"partition": dg.MetadataValue.text(subset),
                  "role": dg.MetadataValue.text(role),
                  "endpoint": dg.MetadataValue.text("configured" if enabled else "not configured"),
                  "rows_needing_model": dg.MetadataValue.text(str(needed)),
                  "rows_sent": dg.MetadataValue.text(str(stats.sent))},
        description=f"subset {subset}: {text}",
    )
