"""The plan of a run: every step's count over every subset, the token rates of each step, and
the totals per role and overall (`mmfr plan`, the top of `mmfr run`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmfr_assets.llm.resource import ROLES, LLMEndpoint
from mmfr_assets.model_step.registry import MODEL_STEPS, Registered
from mmfr_assets.planning.counting import Counted, Rows, count_all, measured_of
from mmfr_assets.planning.figures import (
    Economics, Rates, RolePlan, StepCount, assumed_prompt_tokens, overall, rates, role_totals,
)
from mmfr_assets.prompts import load_prompt


def economics_of(endpoint: LLMEndpoint) -> Economics:
    """An endpoint's speed and price (its optional fields), replicas = its URLs."""
    return Economics(output_tokens_per_s=endpoint.output_tokens_per_s, gpus_per_replica=endpoint.gpus_per_replica,
                     replicas=max(len(endpoint.base_urls), 1), price_per_gpu_hour=endpoint.price_per_gpu_hour,
                     price_per_million_tokens=endpoint.price_per_million_tokens)


@dataclass(frozen=True)
class Plan:
    subsets: tuple[str, ...]
    counts: tuple[StepCount, ...]
    rates: Mapping[str, Rates]  # per step
    roles: Mapping[str, RolePlan]
    economics: Mapping[str, Economics]
    models: Mapping[str, str]
    enabled: Mapping[str, bool]  # role -> has an endpoint (else its rows are written skipped)
    supports_n: Mapping[str, bool] = field(default_factory=dict)  # role -> takes `n` (requests per ask)

    def as_json(self) -> dict[str, Any]:
        """`roles` maps each role's resource key to its figures; `steps` and `subsets` detail them."""
        return {
            "subsets": list(self.subsets),
            "roles": {role: {**plan.as_dict(), "model": self.models.get(role, ""),
                             "endpoint_configured": self.enabled.get(role, False),
                             "endpoint_economics": "stated" if self.economics[role].described else "not stated"}
                      for role, plan in self.roles.items()},
            "overall": overall(self.roles),
            "steps": {step: {"prompt_tokens_per_ask": round(r.prompt_per_ask, 1),
                             "completion_tokens_per_sample": round(r.completion_per_sample, 1),
                             "asks_per_row": round(r.asks_per_row, 3), "prompt_basis": r.prompt_basis,
                             "completion_basis": r.completion_basis, "asks_basis": r.asks_basis}
                      for step, r in self.rates.items()},
            "counts": [{"subset": c.subset, "step": c.step, "role": c.role, "rows": round(c.rows),
                        "rows_upper_bound": c.rows_upper, "rows_already_answered": c.answered,
                        "basis": c.basis, "how": c.how} for c in self.counts],
        }


def build_plan(rows: Rows, subsets: Sequence[str], run_config: Mapping[str, Any],
               endpoints: Mapping[str, LLMEndpoint], steps: Sequence[Registered] = MODEL_STEPS,
               shared: Mapping[str, Any] | None = None) -> Plan:
    """Count every step over `subsets` (built with the `shared` resources), take each step's
    rates (measured over every subset of the lake where it ran, else assumed), and total them
    per role."""
    counted, built = count_all(rows, subsets, run_config, steps, shared=shared)
    step_rates: dict[str, Rates] = {}
    for asset, step in built.items():
        mine = [c for c in counted if c.count.step == asset]
        weight = sum(c.count.rows_upper for c in mine)
        chars = sum(c.text_chars * c.count.rows_upper for c in mine) / weight if weight else 0.0
        prompt = load_prompt(step.prompt)
        guess, how = assumed_prompt_tokens(len(prompt.system) + len(prompt.user), chars, step.sends_image)
        every = _lake_subsets(rows, asset, subsets)
        step_rates[asset] = rates(step.role, max(step.samples, 1), measured_of(rows, asset, every),
                                  assumed_prompt=guess, prompt_how=how)
    supports_n = {role: endpoints[role].supports_n for role in endpoints}
    economics = {role: economics_of(endpoints[role]) for role in ROLES if role in endpoints}
    roles = role_totals([c.count for c in counted], step_rates, supports_n, economics)
    models = {role: endpoints[role].model or "" for role in endpoints}
    enabled = {role: endpoints[role].enabled for role in endpoints}
    return Plan(tuple(subsets), tuple(c.count for c in counted), step_rates, roles, economics, models, enabled,
                supports_n)


def _lake_subsets(rows: Rows, table: str, subsets: Sequence[str]) -> list[str]:
    """Every subset the table holds rows of (the measured averages pool them all)."""
    location = rows.lake.location(table)
    delta = location.table()
    if delta is None:
        return []
    import pyarrow.compute as pc

    found = delta.to_pyarrow_dataset().to_table(columns=["subset"])["subset"]
    return sorted(pc.unique(found).to_pylist()) if len(found) else []


__all__ = ["Plan", "build_plan", "Counted"]
