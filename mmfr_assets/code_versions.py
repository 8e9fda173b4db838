"""Each asset's Dagster code version: what decides its rows besides its input rows and config.

Why: editing a prompt or a rule must mark exactly that asset, and what is downstream of it,
unsynced in the UI, so that "Materialize unsynced" re-runs just those. Dagster records the code
version with each materialization and reports an asset whose definitions now say another one
(and everything downstream of it) as unsynced; re-run, a model step's unchanged requests are
still answered by the response cache, and only what the change touched is asked again.

- a model step: its prompt files as the loader reads them (`Prompt.version`, a hash of both
  files; `MMFR_PROMPTS` included), its `parse_version`, and its lineage node's `rules_version`;
- any other asset of the lineage: its node's `rules_version`;
- and, for every asset that reads other tables, a hash of their code versions: its rows are
  made from theirs. Dagster (1.13) calls an asset unsynced when its own code version changed or
  an upstream was re-materialized since, not when an upstream's code changed: without this, an
  edited prompt would show only its step unsynced, and what is downstream only after that step
  ran again (two rounds of "Materialize unsynced" instead of one).

Read when the code location loads: after editing a prompt, reload the location (the UI's
"Reload definitions", or restart `dagster dev`) to see what became unsynced. Assets outside
the lineage keep no code version (Dagster then never calls them unsynced for their code).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import dagster as dg

from mmfr_assets.lineage import LOADED_TARGET, NODES, lineage_for
from mmfr_assets.model_step.registry import MODEL_STEPS
from mmfr_assets.prompts import load_prompt


def own_version(name: str) -> str:
    """What decides `name`'s rows itself: `rules 1`, or for a model step
    `cot_teacher@1a2b3c4d5e6f parse 1 rules 1`."""
    rules = f"rules {NODES[name].rules_version}"
    step = next((r.step for r in MODEL_STEPS if r.step.asset == name), None)
    if step is None:
        return rules
    try:
        prompt = load_prompt(step.prompt).version
    except FileNotFoundError:  # the run says which file is missing; the location still loads
        prompt = f"{step.prompt}@missing"
    return f"{prompt} parse {step.parse_version} {rules}"


def code_versions(target: str | None = None) -> dict[str, str]:
    """Every lineage asset's code version in `target`'s order (None: the order this process
    loaded, `MMFR_TARGET`): its own, then `upstream <hash>` of the code versions of the tables
    it reads (the lineage is in order: theirs are known first). In a student-first order the
    steps that skip rows by the target's rule (the teachers, `distilled`) carry the target, so
    switching a lake between orders or targets shows what must be recomputed as unsynced."""
    from mmfr_assets.student_first.lineage import ORDER_DEPENDENT
    from mmfr_assets.student_first.target import ALL

    target = LOADED_TARGET if target is None else target
    versions: dict[str, str] = {}
    for node in lineage_for(target):
        name = node.name
        version = own_version(name)
        if target != ALL and name in ORDER_DEPENDENT:
            version += f" target {target}"
        if node.deps:
            joined = "\n".join(f"{dep}={versions[dep]}" for dep in sorted(node.deps))
            version += f" upstream {hashlib.sha256(joined.encode()).hexdigest()[:12]}"
        versions[name] = version
    return versions


def code_version(name: str) -> str | None:
    """`name`'s code version (`code_versions`); None for an asset outside the lineage."""
    return code_versions().get(name) if name in NODES else None


def with_code_versions(assets: Sequence[dg.AssetsDefinition], target: str | None = None) -> list[dg.AssetsDefinition]:
    """`assets`, each spec carrying its `code_version` in `target`'s order."""
    versions = code_versions(target)

    def versioned(spec: dg.AssetSpec) -> dg.AssetSpec:
        version = versions.get(spec.key.path[-1])
        return spec if version is None else spec.replace_attributes(code_version=version)

    return [asset.map_asset_specs(versioned) for asset in assets]
