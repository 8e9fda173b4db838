"""The recipe an export was made with, for its dataset card: what each materialization of the
exported lineage recorded (thresholds, models, prompt versions, Delta versions), read from the
Dagster instance, plus where each row's caption and trace came from.

Metadata is read by key pattern rather than a fixed list, so steps added later (answer
verification, student rollouts, model steps recording `prompt_version`) appear without a change
here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import dagster as dg

from mmfr_assets.lineage import steps_behind
from mmfr_assets.partitions import keys_of_subset

# Metadata keys that describe how rows were made (not how many): shown in the card.
# (Row counts, usage such as llm_prompt_tokens, and per-partition delta_version are not recipe:
# the card lists the Delta version of each table as read.)
RECIPE_KEY = re.compile(
    r"^(thresholds|max_pass_rate|inclusive|recipe|max_failure_rate|min_\w+|model\w*|prompt\w*|generation"
    r"|recompute|num_samples|samples|dedup/rules|decontamination/benchmarks|max_blind_pass_rate|exclude_sft_asset"
    r"|blind_samples|checkable_forms|order|target)$"
)


def _value(value) -> str:
    raw = value.value if isinstance(value, dg.MetadataValue) else value
    if isinstance(raw, (dict, list)):
        return json.dumps(raw, sort_keys=True)
    return str(raw)


def recorded_recipe(
    instance: dg.DagsterInstance | None, assets: Sequence[str], subsets: Sequence[str]
) -> dict[str, dict[str, dict[str, str]]]:
    """asset -> subset -> {metadata key: value} of the latest materialization of each partition
    (only recipe keys; of a subset's latest shard with MMFR_SHARDS > 1). Empty when there is no instance or nothing was recorded."""
    if instance is None:
        return {}
    recipe: dict[str, dict[str, dict[str, str]]] = {}
    behind = dict.fromkeys(step for asset in assets for step in steps_behind(asset))
    for asset in [*assets, *behind]:
        for subset in subsets:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=keys_of_subset(subset)),
                limit=1,
            )
            if not result.records:
                continue
            materialization = result.records[0].asset_materialization
            if materialization is None:
                continue
            picked = {
                key: _value(value)
                for key, value in materialization.metadata.items()
                if RECIPE_KEY.search(key)
            }
            picked["run_id"] = result.records[0].run_id
            recipe.setdefault(asset, {})[subset] = picked
    return recipe
