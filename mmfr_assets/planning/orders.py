"""Both orders side by side for a target (issue 33, `mmfr plan --target 123k|586k`): what the
paper's order asks (the plan as `build_plan` makes it) against the student-first order's.

The student-first order changes three things, each a factor on a step's rows:
- the teachers, and the judge of their answers (`answer_verdicts`, one per distilled row), are
  asked only for the rows whose pass rate can pass the target: x the *can-pass share*;
- the student and its judge (`student_verdicts`) run on every deduplicated row instead of the
  quality rows: / the *quality share* (quality rows per distilled row), for a count made on
  the quality rows (counted or estimated); a count that is already an upper bound on an
  earlier table is left as it is;
- every other step is unchanged.
Each share is measured in the lake where the subsets have the tables (`measured_shares`), else
the paper's published proportions: 123K and 586K of the 1.8M quality rows (~7% / ~33%) for the
can-pass share, 1.8M of 2.3M distilled rows for the quality share. The figures are then totalled
per role by the plan's own arithmetic (`figures.role_totals`: requests, tokens, GPU-hours).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmfr_assets.lineage import NAME
from mmfr_assets.planning.figures import RolePlan, StepCount, overall, role_totals
from mmfr_assets.planning.plan import Plan
from mmfr_assets.student_first.target import Target

TEACHER_SIDE = (NAME.teacher_captions, NAME.teacher_responses, NAME.answer_verdicts)
STUDENT_SIDE = (NAME.student_rollouts, NAME.student_verdicts)
#: The paper's distilled rows (2.3M) and quality rows (1.8M): MMFineReason, section 3.
PAPER_DISTILLED, PAPER_QUALITY = 2.3e6, 1.8e6
TEACHER_ROLES = ("caption_teacher", "cot_teacher")


@dataclass(frozen=True)
class Shares:
    """The two proportions the order depends on, each with where it came from."""

    can_pass: float
    can_pass_basis: str
    quality: float
    quality_basis: str


def published_shares(target: Target) -> Shares:
    return Shares(target.published_share, f"published: {target.label} of 1.8M quality rows",
                  PAPER_QUALITY / PAPER_DISTILLED, "published: 1.8M quality of 2.3M distilled rows")


def factor(count: StepCount, shares: Shares) -> float:
    """The student-first rows of `count` per paper-order row."""
    if count.step in TEACHER_SIDE:
        return shares.can_pass
    if count.step in STUDENT_SIDE and count.basis != "upper bound":
        return 1 / shares.quality
    return 1.0


def reordered(counts: Sequence[StepCount], shares: Shares) -> list[StepCount]:
    """The paper order's counts as the student-first order would ask them."""
    return [dataclasses.replace(c, rows=c.rows * factor(c, shares),
                                rows_upper=math.ceil(c.rows_upper * factor(c, shares)),
                                answered=round(c.answered * factor(c, shares)))
            for c in counts]


def student_first_roles(plan: Plan, shares: Shares) -> dict[str, RolePlan]:
    return role_totals(reordered(plan.counts, shares), plan.rates, plan.supports_n, plan.economics)


def teacher_share(roles: Mapping[str, RolePlan], key: str = "completion_tokens") -> float:
    """The teachers' share of the whole run's `key` (tokens, or GPU-hours where stated)."""
    values = {role: p.as_dict().get(key, 0) for role, p in roles.items()}
    total = sum(values.values())
    return sum(values.get(r, 0) for r in TEACHER_ROLES) / total if total else 0.0


def comparison(plan: Plan, target: Target, shares: Shares) -> dict:
    """Per role and overall, both orders and the saving (JSON: `mmfr plan --target --json`)."""
    first = student_first_roles(plan, shares)
    out = {"target": target.name, "rule": target.rule, "shares": dataclasses.asdict(shares), "roles": {}}
    for role in plan.roles:
        a, b = plan.roles[role].as_dict(), first[role].as_dict()
        out["roles"][role] = {f"{k}_{order}": d.get(k) for k in ("requests", "prompt_tokens", "completion_tokens",
                                                                 "gpu_hours") for order, d in (("paper", a),
                                                                                               ("student_first", b))}
    a, b = overall(plan.roles), overall(first)
    out["overall"] = {f"{k}_{order}": d.get(k) for k in ("requests", "prompt_tokens", "completion_tokens", "gpu_hours")
                      for order, d in (("paper", a), ("student_first", b))}
    tokens_a = a["prompt_tokens"] + a["completion_tokens"]
    tokens_b = b["prompt_tokens"] + b["completion_tokens"]
    out["overall"]["tokens_saved_share"] = round(1 - tokens_b / tokens_a, 4) if tokens_a else 0.0
    out["overall"]["teacher_token_share_paper"] = round(teacher_share(plan.roles), 4)
    out["overall"]["teacher_token_share_student_first"] = round(teacher_share(first), 4)
    return out


def _n(value) -> str:
    return "-" if value is None else f"{round(value):,}"


def _h(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def comparison_lines(plan: Plan, target: Target, shares: Shares) -> list[str]:
    """The side-by-side table `mmfr plan --target` prints under the plan."""
    c = comparison(plan, target, shares)
    lines = ["", f"Both orders for target {target.label} ({target.rule}): paper (every row distilled, then the "
             "student) vs student first (the student on every deduplicated row, the teachers only for rows whose "
             "pass rate can still pass):",
             f"- rows that can pass: x {shares.can_pass:.3f} ({shares.can_pass_basis}); quality rows per distilled "
             f"row: {shares.quality:.3f} ({shares.quality_basis})",
             "| role | requests: paper | student first | completion tokens: paper | student first "
             "| GPU-hours: paper | student first |", "| --- |" + " --- |" * 6]
    for role, r in c["roles"].items():
        lines.append(f"| {role} | {_n(r['requests_paper'])} | {_n(r['requests_student_first'])} | "
                     f"{_n(r['completion_tokens_paper'])} | {_n(r['completion_tokens_student_first'])} | "
                     f"{_h(r['gpu_hours_paper'])} | {_h(r['gpu_hours_student_first'])} |")
    o = c["overall"]
    lines.append(f"| total | {_n(o['requests_paper'])} | {_n(o['requests_student_first'])} | "
                 f"{_n(o['completion_tokens_paper'])} | {_n(o['completion_tokens_student_first'])} | "
                 f"{_h(o['gpu_hours_paper'])} | {_h(o['gpu_hours_student_first'])} |")
    saved = f"saving: {o['tokens_saved_share']:.1%} of the tokens"
    if o["gpu_hours_paper"]:
        saved += f", {1 - (o['gpu_hours_student_first'] or 0) / o['gpu_hours_paper']:.1%} of the GPU-hours stated"
    lines.append(f"{saved}; the teachers' share of the completion tokens: {o['teacher_token_share_paper']:.1%} "
                 f"(paper) -> {o['teacher_token_share_student_first']:.1%} (student first). The same rows come "
                 "out: the recipe's set is the paper order's (issue 33).")
    return lines


def measured_shares(rows, subsets: Sequence[str], target: Target) -> Shares:
    """The shares measured in the lake where it can tell, else the published ones: the can-pass
    share over the rows `student_verdicts` holds; the quality share as quality_filtered rows per
    distilled row in the subsets where `distilled` dropped none (the paper's order)."""
    from mmfr_assets.student_first.target import can_pass_expr

    shares = published_shares(target)
    seen = passing = 0
    for subset in subsets:
        if rows.count(NAME.student_verdicts, subset):
            for batch in rows.batches(NAME.student_verdicts, subset, ["pass_rate", "pass_rate_low", "pass_rate_high"]):
                seen += batch.height
                passing += int(batch.select(can_pass_expr(target)).to_series().sum())
    if seen:
        shares = dataclasses.replace(shares, can_pass=passing / seen,
                                     can_pass_basis=f"measured over the {seen:,} rows of student_verdicts")
    pairs = [(rows.count(NAME.distilled, s), rows.count(NAME.quality_filtered, s)) for s in subsets
             if rows.count(NAME.distilled, s) and not _skipped(rows, s)]
    if pairs and sum(q for _, q in pairs):
        shares = dataclasses.replace(shares, quality=sum(q for _, q in pairs) / sum(d for d, _ in pairs),
                                     quality_basis=f"measured over {sum(d for d, _ in pairs):,} distilled rows")
    return shares


def _skipped(rows, subset: str) -> bool:
    """`distilled` dropped rows of the subset (the student-first order wrote it)."""
    from mmfr_assets.lake.delta import count_rows
    from mmfr_assets.lake.resource import REJECTIONS_TABLE

    return count_rows(rows.lake.location(REJECTIONS_TABLE), {"stage": NAME.distilled, "subset": subset}) > 0
