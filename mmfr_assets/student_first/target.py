"""The targets a run can be ordered for, and the one decision the student-first order makes:
can a row's pass rate still pass the target's recipe?

Pure, so the teachers' routing (`steps.py`), `distilled`'s drop and the plan all decide the
same way. A pass rate known exactly passes or not; one only bounded ([low, high], some student
samples undecided) can pass when any value of its range passes, and the most passing value of
a "keep small pass rates" recipe is `low`; a row with no pass rate at all (the student failed,
or was not configured) may still pass once it has one: it is distilled, never guessed away.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from mmfr_assets.errors import InputError

#: The paper's order: every row distilled, then the student (the default).
ALL = "all"
#: The reason `distilled` records for a row the teachers were not asked for.
SKIPPED_REASON = "teacher_skipped_easy"
SKIP_FILTER = "student_first"


@dataclass(frozen=True)
class Target:
    """A hard subset as the run's target: its recipe (the difficulty stage it matches) and the
    share of the paper's 2.3M distilled rows it kept (the plan's projection where nothing is
    measured: 123K / 1.8M quality rows ~ 7%, 586K ~ 33%)."""

    name: str  # as the user writes it: 123k, 586k
    label: str  # as the paper names the set
    recipe: str  # the difficulty stage of the same rule
    max_pass_rate: float
    inclusive: bool
    published_share: float

    def passes(self, rate: float) -> bool:
        return rate <= self.max_pass_rate if self.inclusive else rate < self.max_pass_rate

    @property
    def rule(self) -> str:
        return f"pass rate {'<=' if self.inclusive else '<'} {self.max_pass_rate:g}"


TARGETS: dict[str, Target] = {
    "123k": Target("123k", "123K", "difficulty_filtered", 0.0, True, 0.07),
    "586k": Target("586k", "586K", "difficulty_filtered_586k", 1.0, False, 0.33),
}
CHOICES = (ALL, *TARGETS)


def parse_target(raw: str | None, where: str = "--target") -> str:
    """`all` (also for empty), `123k` or `586k`, case-insensitive; anything else refused."""
    name = (raw or ALL).strip().lower()
    if name not in CHOICES:
        raise InputError(f"{where} must be one of {', '.join(CHOICES)}, got {raw!r}")
    return name


def configured(target: Target, run_config: Mapping[str, Any] | None) -> Target:
    """`target` with its recipe's bound as the run config sets it (`ops.<recipe>.config`: a
    `pass_rate_at_most: 0.5` given to `difficulty_filtered`), so the teachers skip, and
    `distilled` drops, only rows the recipe as configured would drop: the set stays the paper
    order's under any bound, not only the paper's."""
    from mmfr_assets.selection.configs import RECIPE_CONFIGS

    ops = (run_config or {}).get("ops") or {}
    given = ((ops.get(target.recipe) or {}).get("config")) or {}
    if not given:
        return target
    bound = RECIPE_CONFIGS[target.recipe](**given)
    return dataclasses.replace(target, max_pass_rate=bound.max_pass_rate, inclusive=bound.inclusive)


def covers(built: Target, recipe: Target) -> bool:
    """Does a lake distilled for `built` hold every row `recipe`'s rule keeps? Yes when every
    pass rate `recipe` keeps passes `built` too (a 586K-target lake holds the 123K set)."""
    if recipe.max_pass_rate != built.max_pass_rate:
        return recipe.max_pass_rate < built.max_pass_rate
    return built.inclusive or not recipe.inclusive


def target_of(name: str) -> Target | None:
    """The target, or None for the paper's order."""
    return None if name == ALL else TARGETS[name]


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def can_pass(target: Target, pass_rate: float | None, low: float | None = None,
             high: float | None = None) -> bool:
    """Can the row still be in the target's set? An exact `pass_rate` decides; else the bounds:
    any value of [low, high] passing is enough (the recipe keeps small pass rates, so `low`);
    no pass rate and no bounds: it may once it has one (distil it)."""
    if not _missing(pass_rate):
        return target.passes(pass_rate)
    if not _missing(low):
        return target.passes(low)
    return True


def can_pass_expr(target: Target) -> pl.Expr:
    """`can_pass` over a frame with `pass_rate`, `pass_rate_low` and `pass_rate_high`."""
    def passing(value: pl.Expr) -> pl.Expr:
        return value <= target.max_pass_rate if target.inclusive else value < target.max_pass_rate

    rate, low = pl.col("pass_rate").fill_nan(None), pl.col("pass_rate_low").fill_nan(None)
    return (pl.when(rate.is_not_null()).then(passing(rate))
            .when(low.is_not_null()).then(passing(low))
            .otherwise(pl.lit(True)))


def skip_detail_expr(target: Target) -> pl.Expr:
    """Why a row was not distilled, in words, from its pass rate (or bounds) and the rule."""
    rate = pl.col("pass_rate").fill_nan(None)
    bounded = pl.format("pass rate between {} and {}", pl.col("pass_rate_low"), pl.col("pass_rate_high"))
    said = pl.when(rate.is_not_null()).then(pl.format("pass rate {}", rate)).otherwise(bounded)
    return pl.concat_str([said, pl.lit(
        f" fails the {target.label} recipe ({target.rule}) for every value: the student solves it too "
        f"often, the teachers were not asked (student-first order, target {target.name})")])
