"""What the model steps' tables say was spent, per role: rows sent, asks (attempts, re-asks
included), requests and tokens; the plan against it; and per recipe, what was spent upstream of
its kept rows (rows later dropped included) and per kept row.

Read from the lake, not from run metadata: every step table holds one row per row it was given,
with `attempts`, `prompt_tokens` and `completion_tokens` (the runner's provenance columns), so
the figures cover every subset and every run that wrote the current tables. Tokens of a reply
the cache answered count as spent: they were paid for once, by the run that asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmfr_assets.lineage import NAME, NODES
from mmfr_assets.model_step.registry import MODEL_STEPS, Registered
from mmfr_assets.planning.counting import Rows, measured_of
from mmfr_assets.planning.figures import Economics, Measured

#: The recipes whose rows a user trains on, in the report's order: what the paper calls them.
RECIPES: tuple[tuple[str, str], ...] = (
    ("quality", NAME.quality_filtered), ("586K", NAME.difficulty_filtered_586k), ("123K", NAME.difficulty_filtered),
    ("RL", NAME.rl_selected))


def spent_by_step(rows: Rows, subsets: Sequence[str], steps: Sequence[Registered] = MODEL_STEPS) -> dict[str, Measured]:
    """Each step's rows sent, asks and tokens over `subsets`."""
    return {r.step.asset: measured_of(rows, r.step.asset, subsets) for r in steps}


def by_role(spent: Mapping[str, Measured], steps: Sequence[Registered] = MODEL_STEPS) -> dict[str, Measured]:
    """The steps' figures summed per role (the judge serves two steps)."""
    out: dict[str, Measured] = {}
    for r in steps:
        out[r.step.role] = out.get(r.step.role, Measured()) + spent.get(r.step.asset, Measured())
    return out


def upstream_steps(table: str, steps: Sequence[Registered] = MODEL_STEPS) -> list[str]:
    """The model steps whose tables `table` is built from (its deps, transitively)."""
    names = {r.step.asset for r in steps}
    seen: set[str] = set()
    todo = [table]
    while todo:
        name = todo.pop()
        for dep in NODES[name].deps:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return [r.step.asset for r in steps if r.step.asset in seen and r.step.asset in names]


@dataclass(frozen=True)
class RecipeCost:
    """One recipe: its kept rows and what the model steps upstream of it spent, per role."""

    recipe: str
    table: str
    kept: int
    roles: Mapping[str, Measured]
    economics: Mapping[str, dict[str, Any]]  # role -> gpu_hours / cost where stated

    def as_dict(self) -> dict[str, Any]:
        per = max(self.kept, 1)
        roles = {}
        for role, m in self.roles.items():
            d: dict[str, Any] = {"rows_sent": m.rows, "asks": m.asks, "prompt_tokens": m.prompt_tokens,
                                 "completion_tokens": m.completion_tokens,
                                 **{k: round(v, 4) for k, v in self.economics.get(role, {}).items()}}
            if self.kept:
                d.update({f"{k}_per_kept_row": round(v / per, 4) for k, v in list(d.items())
                          if k in ("asks", "prompt_tokens", "completion_tokens", "gpu_hours", "cost")})
            roles[role] = d
        total = sum((m for m in self.roles.values()), Measured())
        out: dict[str, Any] = {"recipe": self.recipe, "table": self.table, "rows_kept": self.kept, "roles": roles,
                               "asks": total.asks, "tokens": total.prompt_tokens + total.completion_tokens}
        for key in ("gpu_hours", "cost"):
            stated = [e[key] for e in self.economics.values() if key in e]
            if stated:
                out[key] = round(sum(stated), 4)
        if self.kept:
            for key in ("asks", "tokens", "gpu_hours", "cost"):
                if key in out:
                    out[f"{key}_per_kept_row"] = round(out[key] / self.kept, 4)
        return out


def recipe_costs(spent: Mapping[str, Measured], kept: Mapping[str, int],
                 economics: Mapping[str, Economics], steps: Sequence[Registered] = MODEL_STEPS) -> list[RecipeCost]:
    """Per recipe: the spend of every model step upstream of its table (every row they sent,
    kept or later dropped, re-asks included), per role; pure."""
    role_of = {r.step.asset: r.step.role for r in steps}
    out = []
    for recipe, table in RECIPES:
        roles: dict[str, Measured] = {}
        for step in upstream_steps(table, steps):
            roles[role_of[step]] = roles.get(role_of[step], Measured()) + spent.get(step, Measured())
        cost = {role: economics.get(role, Economics()).cost(m.prompt_tokens, m.completion_tokens)
                for role, m in roles.items()}
        out.append(RecipeCost(recipe, table, kept.get(table, 0), roles, cost))
    return out


def compare(planned: Mapping[str, Mapping[str, Any]], actual: Mapping[str, Measured]) -> list[dict[str, Any]]:
    """Planned (`Plan.as_json()['roles']`) against actual, per role: requests and tokens, the
    ratio, and whether the actual stayed under the plan's upper bound; pure. The tables record
    attempts at rows (`attempts`), not HTTP requests: actual requests are those attempts times
    the requests one makes as planned (`requests_per_ask`: 1 with `n`, else its samples; both
    of the RL rollouts' asks)."""
    out = []
    for role, plan in planned.items():
        m = actual.get(role, Measured())
        requests = round(m.asks * plan.get("requests_per_ask", 1))
        row = {"role": role, "planned_requests": plan["requests"], "actual_requests": requests,
               "planned_asks": plan.get("asks"), "actual_asks": m.asks,
               "requests_upper_bound": plan["requests_upper_bound"], "planned_rows": plan["rows"],
               "actual_rows": m.rows, "planned_prompt_tokens": plan["prompt_tokens"],
               "actual_prompt_tokens": m.prompt_tokens, "planned_completion_tokens": plan["completion_tokens"],
               "actual_completion_tokens": m.completion_tokens, "rows_basis": plan["rows_basis"],
               "within_upper_bound": requests <= plan["requests_upper_bound"],
               "endpoint_configured": plan.get("endpoint_configured", True)}
        row["requests_ratio"] = round(requests / plan["requests"], 3) if plan["requests"] else None
        out.append(row)
    return out


def compare_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Planned vs actual as a Markdown table."""
    lines = ["| role | requests planned (upper bound) | actual | actual / planned | prompt tokens planned | actual "
             "| completion tokens planned | actual | basis |", "| --- |" + " --- |" * 8]
    for r in rows:
        ratio = "-" if r["requests_ratio"] is None else f"{r['requests_ratio']:.2f}"
        flag = "" if r["within_upper_bound"] else " ABOVE THE UPPER BOUND"
        flag += "" if r["endpoint_configured"] else " (no endpoint: skipped)"
        lines.append(f"| {r['role']} | {r['planned_requests']:,} ({r['requests_upper_bound']:,}) | "
                     f"{r['actual_requests']:,}{flag} | {ratio} | {r['planned_prompt_tokens']:,} | "
                     f"{r['actual_prompt_tokens']:,} | {r['planned_completion_tokens']:,} | "
                     f"{r['actual_completion_tokens']:,} | {r['rows_basis']} |")
    return lines


def recipe_lines(costs: Iterable[RecipeCost]) -> list[str]:
    """What each recipe's kept rows cost upstream, total and per kept row, as a Markdown table."""
    lines = ["| recipe | rows kept | asks (attempts) | tokens | per kept row: asks | tokens | GPU-hours | cost |",
             "| --- |" + " --- |" * 7]
    for c in costs:
        d = c.as_dict()

        def per(key: str, fmt: str, d: dict = d) -> str:
            return format(d[f"{key}_per_kept_row"], fmt) if f"{key}_per_kept_row" in d else "-"
        lines.append(f"| {c.recipe} (`{c.table}`) | {c.kept:,} | {d['asks']:,} | {d['tokens']:,} | "
                     f"{per('asks', ',.2f')} | {per('tokens', ',.0f')} | {per('gpu_hours', ',.4f')} | "
                     f"{per('cost', ',.4f')} |")
    return lines
