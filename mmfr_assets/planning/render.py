"""The plan as text (`mmfr plan`, the top of `mmfr run`): rows per subset and role, totals per
role and overall, and where every figure came from."""

from __future__ import annotations

from mmfr_assets.planning.figures import basis_word, overall
from mmfr_assets.planning.plan import Plan
from mmfr_assets.settings import ECONOMICS_VARIABLES, role_env_prefix


def _n(value: float) -> str:
    return f"{round(value):,}"


def _hours(value: float) -> str:
    return f"{value:,.1f} h" if value >= 1 else f"{value * 60:,.1f} min"


def plan_lines(plan: Plan) -> list[str]:
    roles = list(plan.roles)
    lines = [f"mmfr plan: {len(plan.subsets)} subset(s); nothing below was sent to a model",
             "", "Rows that will need a request (basis: counted / estimated / upper bound):",
             "| subset | " + " | ".join(roles) + " |", "| --- |" + " --- |" * len(roles)]
    for subset in plan.subsets:
        cells = []
        for role in roles:
            mine = [c for c in plan.counts if c.subset == subset and c.role == role]
            rows = sum(c.rows for c in mine)
            cells.append(f"{_n(rows)} ({basis_word(c.basis for c in mine)})")
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    lines += ["", "Per role (rows still to ask, + those the tables already hold a reply for; requests: one "
              "per ask, all samples in it where the endpoint takes `n`; upper bound: every row that may "
              "reach the step, every ask allowed):",
              "| role | model | rows | requests (upper bound) | samples | prompt tokens | completion tokens "
              "| GPU-hours | wall time | cost |", "| --- |" + " --- |" * 9]
    for role, p in plan.roles.items():
        d = p.as_dict()
        answered = f" (+{d['rows_already_answered']:,} answered)" if d["rows_already_answered"] else ""
        cells = [role, plan.models.get(role) or "-", _n(d["rows"]) + answered,
                 f"{_n(d['requests'])} ({_n(d['requests_upper_bound'])})", _n(d["samples"]),
                 _n(d["prompt_tokens"]), _n(d["completion_tokens"]),
                 _hours(d["gpu_hours"]) if "gpu_hours" in d else "-",
                 _hours(d["wall_time_h"]) if "wall_time_h" in d else "-",
                 f"{d['cost']:,.2f}" if "cost" in d else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    total = overall(plan.roles)
    gpu = (f"{_hours(total['gpu_hours'])} ({', '.join(total['gpu_hours_roles'])})" if "gpu_hours" in total
           else "-")
    lines.append(f"| total | | | {_n(total['requests'])} ({_n(total['requests_upper_bound'])}) | "
                 f"{_n(total['samples'])} | {_n(total['prompt_tokens'])} | {_n(total['completion_tokens'])} | "
                 f"{gpu} | "
                 f"- | {format(total['cost'], ',.2f') if 'cost' in total else '-'} |")
    lines += ["", "Tokens per step (measured: the lake's token columns of earlier runs; assumed: "
              "the paper's figures or a stated guess):"]
    for step, r in plan.rates.items():
        lines.append(f"- {step}: {r.prompt_per_ask:,.0f} prompt tokens per ask ({r.prompt_basis}); "
                     f"{r.completion_per_sample:,.0f} completion tokens per sample ({r.completion_basis}); "
                     f"{r.asks_per_row:.2f} asks per row ({r.asks_basis})")
    silent = [role for role in plan.roles if not plan.economics[role].described]
    if silent:
        # in backticks: the `plan` asset shows these lines as Markdown, where `_..._` is emphasis
        names = ", ".join(f"`{role_env_prefix('<role>')}{v}`" for v in ECONOMICS_VARIABLES)
        lines += ["", f"No speed or price stated for {', '.join(silent)}: tokens and requests only "
                  f"(set {names}, or the same fields in the resource's config)."]
    off = [role for role in plan.roles if not plan.enabled.get(role) and plan.roles[role].rows]
    if off:
        lines.append(f"No endpoint configured for {', '.join(off)} (`MMFR_<ROLE>_BASE_URL`): a run writes those "
                     "rows without the model's output (skipped, with the reason), and asks nothing.")
    uppers = sorted({c.step for c in plan.counts if c.basis == "upper bound" and c.rows_upper})
    if uppers:
        lines.append(f"Upper bounds (rows before a step whose drops are not measured yet): {', '.join(uppers)}.")
    return lines
