"""What each kept row cost, read from the lake: the report's and every export card's section.

The spend is every model step's table over the subsets (every row a step sent, kept or later
dropped, re-asks included); a recipe is charged what the steps upstream of it spent
(`actual.upstream_steps`: the quality set is not charged the student). GPU-hours and money
come from the endpoints' stated speed and price (`MMFR_<ROLE>_OUTPUT_TOKENS_PER_S`, ...) as
the environment says now: a run that used other endpoints is priced at today's settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from mmfr_assets.lake.delta import count_rows, filesystem_for
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.planning.actual import (
    RECIPES, RecipeCost, by_role, compare, compare_lines, recipe_costs, recipe_lines, spent_by_step,
)
from mmfr_assets.planning.counting import Rows
from mmfr_assets.planning.figures import Economics

#: Where `mmfr run` leaves the plan it printed, beside the lake's tables, for the report's
#: planned-vs-actual table.
PLAN_FILE = "_plan.json"


def economics_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, Economics]:
    from mmfr_assets.llm.resource import endpoint_resources_from_env
    from mmfr_assets.planning.plan import economics_of

    return {role: economics_of(endpoint) for role, endpoint in endpoint_resources_from_env(environ).items()}


def recipe_spend(lake: LakeResource, subsets: Sequence[str],
                 economics: Mapping[str, Economics] | None = None) -> list[RecipeCost]:
    """Per recipe over `subsets`: rows kept and what the model steps upstream of it spent."""
    rows = Rows(lake)
    spent = spent_by_step(rows, subsets)
    kept = {table: sum(count_rows(lake.location(table), {"subset": s}) for s in subsets) for _, table in RECIPES}
    return recipe_costs(spent, kept, economics if economics is not None else economics_from_env())


def spend_lines(costs: Sequence[RecipeCost]) -> list[str]:
    """The section's Markdown: per recipe the totals and per kept row, then per role."""
    if not any(c.roles and any(m.asks for m in c.roles.values()) for c in costs):
        return ["No model step has sent a request for these rows (every caption, trace, label and pass "
                "rate came with the source, or no model step ran): nothing was spent on models."]
    lines = ["What the model steps upstream of each recipe spent (every row they sent, kept or later "
             "dropped, re-asks included; tokens as the runs that wrote the tables paid them):", "",
             *recipe_lines(costs), "", "Per role, per kept row (asks / prompt tokens / completion tokens; an ask is one attempt at a row, "
             "one HTTP request with `n`, else one per sample):", ""]
    roles = list(dict.fromkeys(role for c in costs for role in c.roles))
    lines += ["| role | " + " | ".join(f"{c.recipe}" for c in costs) + " |", "| --- |" + " --- |" * len(costs)]
    for role in roles:
        cells = []
        for c in costs:
            d = c.as_dict()["roles"].get(role)
            if not d or not c.kept:
                cells.append("-")
                continue
            cells.append(f"{d['asks_per_kept_row']:.2f} / {d['prompt_tokens_per_kept_row']:,.0f} / "
                         f"{d['completion_tokens_per_kept_row']:,.0f}")
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    unrecorded = max(sum(m.asks - m.paid_asks for m in c.roles.values()) for c in costs)
    if unrecorded:
        lines += ["", f"{unrecorded:,} asks show no tokens in their table (answered by the response cache when the "
                  "table was written, so paid by an earlier run, or failed): their tokens are not in these figures."]
    if not any("cost" in c.as_dict() for c in costs):
        lines += ["", "No endpoint states its price (MMFR_<ROLE>_PRICE_PER_GPU_HOUR with _OUTPUT_TOKENS_PER_S "
                  "and _GPUS_PER_REPLICA, or _PRICE_PER_MILLION_TOKENS): requests and tokens only."]
    return lines


def save_plan(lake: LakeResource, plan_json: Mapping[str, Any]) -> None:
    """Keep the plan a run printed beside the lake's tables (`<lake>/_plan.json`)."""
    fs, root = filesystem_for(lake.uri, lake.storage_options)
    fs.create_dir(root, recursive=True)
    path = f"{root.rstrip('/')}/{PLAN_FILE}"
    with fs.open_output_stream(path + ".tmp") as out:  # then moved: never a half-written plan
        out.write(json.dumps(plan_json).encode())
    fs.move(path + ".tmp", path)


def saved_plan(lake: LakeResource) -> Optional[dict[str, Any]]:
    """The plan the last `mmfr run` saved, or None."""
    import pyarrow.fs as pafs

    fs, root = filesystem_for(lake.uri, lake.storage_options)
    path = f"{root.rstrip('/')}/{PLAN_FILE}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as stream:
        return json.loads(stream.read().decode())


def planned_vs_actual_lines(plan_json: Mapping[str, Any], lake: LakeResource) -> list[str]:
    """The saved plan's requests and tokens per role against the lake's tables over its subsets."""
    actual = by_role(spent_by_step(Rows(lake), plan_json.get("subsets") or []))
    return ["Planned before the last `mmfr run` vs what the tables record (actual counts every ask "
            "in the current tables, answered by the cache or not; the plan counts rows not answered "
            "yet):", "", *compare_lines(compare(plan_json["roles"], actual))]


def spend_sections(lake: LakeResource, subsets: Sequence[str]) -> list[tuple[str, str, str]]:
    """The report's sections, (metadata key, title, Markdown): what each kept row cost, then
    (where a run saved its plan) planned vs actual."""
    sections = [("cost_per_kept_row", "What each kept row cost",
                 "\n".join(spend_lines(recipe_spend(lake, subsets))))]
    plan = saved_plan(lake)
    if plan is not None:
        sections.append(("planned_vs_actual", "Planned vs actual, per role",
                         "\n".join(planned_vs_actual_lines(plan, lake))))
    return sections


def markdown_html(markdown: str) -> str:
    """These sections' Markdown (paragraphs and pipe tables) as HTML for the report page."""
    from html import escape

    from mmfr_assets.viewer.render import counts_table

    html, table = [], []

    def flush() -> None:
        if table:
            header, *body = [[escape(c.strip().strip("`")) for c in row.strip().strip("|").split("|")]
                             for row in table if not set(row.replace("|", "").split()) <= {"---"}]
            html.append(counts_table(header, body))
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            html.append(f"<p>{escape(line)}</p>")
    flush()
    return "".join(html)
