"""The stage contract, in one place: what every stage (and every model step, a stage that keeps
every row) is, runs through, and reports.

- `contract`: the rows a stage decides on: `Filter`, `Verdicts`, `split_by_reason` (a pure
  function turns a batch into kept rows and drops with a filter and a reason);
- `run`: `run_stage` streams a partition's batches through that function into the stage's
  table and the rejections table, refusing any batch that loses rows; `upstream_batches`;
- `asset`: what a materialization tells its reader and checks (`stage_result`, the metadata,
  the `rows_accounted_for` check) and `stage_asset`, the one factory of a stage's Dagster asset
  (name, group, deps and checks from its lineage node).

Import the names from here (`from mmfr_assets.stage import run_stage`). They are loaded on
first use (PEP 562): `lineage.py` imports every stage's filters, which import `Filter` from
here, while `run` and `asset` read the lineage; loading `contract` alone keeps that free of
an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "contract": ("Filter", "Verdicts", "empty_drops", "split_by_reason"),
    "run": ("StageRun", "run_stage", "upstream_batches"),
    "asset": ("ACCOUNTING_CHECK", "accounting_check", "accounting_check_spec", "check_spec", "column_schema",
              "funnel_markdown", "readable", "stage_asset", "stage_metadata", "stage_result"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)

if TYPE_CHECKING:
    from mmfr_assets.stage.asset import (
        ACCOUNTING_CHECK, accounting_check, accounting_check_spec, check_spec, column_schema,
        funnel_markdown, readable, stage_asset, stage_metadata, stage_result,
    )
    from mmfr_assets.stage.contract import Filter, Verdicts, empty_drops, split_by_reason
    from mmfr_assets.stage.run import StageRun, run_stage, upstream_batches


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
