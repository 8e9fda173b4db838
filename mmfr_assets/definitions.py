"""The code location: the asset graph over the subsets of the configured source.

Partitions are the source's config names, read when the code location loads, so pointing
`MMFR_SOURCE` at another dataset changes the partitions without a code change, and the UI
shows them before anything has run. With `MMFR_SHARDS` > 1 every asset after `collected` is
partitioned by subset x shard (mmfr_assets/partitions.py).
"""

from __future__ import annotations

import dagster as dg

from mmfr_assets.cleaning.assets import build_cleaned
from mmfr_assets.code_versions import with_code_versions
from mmfr_assets.collection.assets import build_collected
from mmfr_assets.collection.source import HFSourceResource, dataset_subsets
from mmfr_assets.dedup.assets import build_dedup_signatures, build_deduplicated
from mmfr_assets.distillation.assets import build_distilled
from mmfr_assets.errors import InputError
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.llm import CACHE_RESOURCE_KEY, endpoint_resources_from_env, llm_cache_from_env
from mmfr_assets.model_step.registry import MODEL_STEPS, build_model_steps
from mmfr_assets.partitions import build_partitions
from mmfr_assets.planning.asset import build_plan_asset
from mmfr_assets.reporting.assets import with_report
from mmfr_assets.rules.config import QUALITY_THRESHOLDS, QualityThresholds
from mmfr_assets.rl.assets import build_rl
from mmfr_assets.selection.assets import build_selection
from mmfr_assets.settings import lake_location, lake_storage_options, source_location, target_setting
from mmfr_assets.student_first.steps import registered_for
from mmfr_assets.student_first.target import ALL, parse_target


def order_of(target: str | None) -> str:
    """The order to build: `target` as given, else `MMFR_TARGET`. The process's lineage (the
    report, the row viewer) follows `MMFR_TARGET` as it loaded; another student-first order
    than that one is refused rather than half-applied."""
    from mmfr_assets.lineage import LOADED_TARGET

    target = target_setting() if target is None else parse_target(target)
    if LOADED_TARGET != ALL and target != LOADED_TARGET:
        raise InputError(f"--target {target} differs from MMFR_TARGET={LOADED_TARGET}, the order this "
                         f"process loaded the graph in: leave --target out, or set MMFR_TARGET={target}")
    return target


def build_definitions(
    source: str | None = None,
    lake_uri: str | None = None,
    lake_options: dict[str, str] | None = None,
    target: str | None = None,
) -> dg.Definitions:
    """The graph over the source's subsets, in `target`'s order (None: `MMFR_TARGET`; issue 33:
    `all` is the paper's order, `123k`/`586k` the student first, `mmfr_assets/student_first/`)."""
    target = order_of(target)
    source = source or source_location()
    parts = build_partitions(dataset_subsets(source))
    partitions = parts.rows
    return dg.Definitions(
        assets=with_code_versions([*with_report(parts.subsets, [
            build_collected(parts.subsets),
            *build_model_steps(partitions, registered_for(target, MODEL_STEPS)),
            build_cleaned(partitions),
            build_dedup_signatures(partitions),
            build_deduplicated(partitions),
            *build_distilled(partitions, target),
            *build_selection(partitions),
            *build_rl(partitions),
        ]), build_plan_asset(parts.subsets.get_partition_keys())], target),
        resources={
            **endpoint_resources_from_env(),
            CACHE_RESOURCE_KEY: llm_cache_from_env(),
            # the thresholds quality_filtered and the teachers share; a run overrides them under
            # resources.quality_thresholds.config, a deployment by changing these defaults
            QUALITY_THRESHOLDS: QualityThresholds(),
            "source": HFSourceResource(path=source),
            "lake": LakeResource(
                uri=lake_uri or lake_location(),
                storage_options=lake_options if lake_options is not None else lake_storage_options(),
            ),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location. A source that cannot be read fails the load with the one line of its
    `InputError`, re-raised without the chain of `datasets` internals that led to it."""
    try:
        return build_definitions()
    except InputError as error:
        raise InputError(str(error)).with_traceback(None) from None
