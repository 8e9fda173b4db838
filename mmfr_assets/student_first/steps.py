"""The model steps of the student-first order: the paper's declarations, rewired.

- the student (`student_rollouts`) reads `deduplicated`, where the card's published pass rate
  is still named `qwen3vl_4b_pass_rate` (`distilled` renames it `pass_rate`): the request is the
  same question and image, so the response cache answers it in either order;
- `student_verdicts` reads `deduplicated` too (one row per row of the rollouts);
- each teacher joins `student_verdicts`' pass rate and asks only for rows that can still pass
  the target (`target.can_pass`); a row it would have asked for and did not is written with
  origin `skipped_easy` and the reason in its error column, never silently left out.

Built per target by `registered_for`, so a process can hold both orders' definitions (the set
equality test does); the paper's classes are not changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from mmfr_assets.lineage import NAME
from mmfr_assets.distillation.teachers import CaptionTeacher, CotTeacher
from mmfr_assets.model_step.declaration import ModelStep, Parsed
from mmfr_assets.model_step.join import take
from mmfr_assets.model_step.registry import Registered
from mmfr_assets.selection.steps import StudentRolloutsStep, StudentVerdictsStep
from mmfr_assets.student_first.target import (
    SKIPPED_REASON, Target, can_pass_expr, configured, skip_detail_expr, target_of,
)

#: The teacher column where a skipped row's origin says so.
ORIGIN_SKIPPED_EASY = "skipped_easy"
#: The card's name of the published pass rate on the tables before `distilled`.
SOURCE_PASS_RATE = "qwen3vl_4b_pass_rate"
PASS_RATE_JOIN = take(StudentVerdictsStep, "pass_rate", "pass_rate_low", "pass_rate_high")


def order_note(target: Target) -> str:
    """What the UI says of an asset built in the student-first order (its description's tail)."""
    return (f" [Student-first order, target {target.label} (MMFR_TARGET={target.name}): the student "
            f"runs on `deduplicated` first; the teachers are asked only for rows whose pass rate can "
            f"still pass the {target.label} recipe ({target.rule}); the others are `{SKIPPED_REASON}`.]")


class _StudentFirstRollouts(StudentRolloutsStep):
    upstream = NAME.deduplicated

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.columns = tuple(SOURCE_PASS_RATE if c == "pass_rate" else c for c in self.columns)

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        return super().prepare(batch.rename({SOURCE_PASS_RATE: "pass_rate"}))


class _StudentFirstVerdicts(StudentVerdictsStep):
    upstream = NAME.deduplicated


class _SkippingTeacher:
    """Mixed into a teacher: `needs` only where the row can pass `target`; a row that needed
    the teacher and cannot pass is written `skipped_easy` with why."""

    target: Target
    joins = (PASS_RATE_JOIN,)

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        batch = super().prepare(batch)  # type: ignore[misc]
        return batch.with_columns(can_pass_expr(self.target).alias("_can_pass"),
                                  skip_detail_expr(self.target).alias("_skip_detail"))

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        return super().needs(batch) & batch["_can_pass"]  # type: ignore[misc]

    @classmethod
    def for_run(cls, config, run_config, resources=None):
        """The teacher of this run, its target's bound as the run configures the recipe."""
        step = super().for_run(config, run_config, resources)  # type: ignore[misc]
        step.target = configured(cls.target, run_config)
        return step

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        out = super().without_model(row)  # type: ignore[misc]
        if row["_can_pass"] or out.columns[self.column] is not None:  # type: ignore[attr-defined]
            return out  # asked, or the dataset's own annotation (free) kept
        c = self.column  # type: ignore[attr-defined]
        return Parsed({**out.columns, f"{c}_origin": ORIGIN_SKIPPED_EASY,
                       f"{c}_error": f"{SKIPPED_REASON}: {row['_skip_detail']}"})


def _teacher(base: type[ModelStep], target: Target) -> type[ModelStep]:
    return type(f"StudentFirst{base.__name__}", (_SkippingTeacher, base), {
        "target": target, "description": base.description + order_note(target),
        "upstream": base.upstream, "__module__": base.__module__})  # its asset group: the teacher's


def registered_for(target_name: str, steps: Sequence[Registered]) -> tuple[Registered, ...]:
    """The registry of `target_name`'s order: `steps` unchanged for `all`, else the student's
    and the teachers' declarations replaced by their student-first versions."""
    target = target_of(target_name)
    if target is None:
        return tuple(steps)
    note = order_note(target)
    replaced: dict[type, type] = {
        StudentRolloutsStep: type("StudentFirstRollouts", (_StudentFirstRollouts,), {
            "description": StudentRolloutsStep.description + note, "upstream": NAME.deduplicated,
            "__module__": StudentRolloutsStep.__module__}),
        StudentVerdictsStep: type("StudentFirstVerdicts", (_StudentFirstVerdicts,), {
            "description": StudentVerdictsStep.description + note, "upstream": NAME.deduplicated,
            "__module__": StudentVerdictsStep.__module__}),
        CaptionTeacher: _teacher(CaptionTeacher, target),
        CotTeacher: _teacher(CotTeacher, target),
    }
    return tuple(dataclasses.replace(r, step=replaced.get(r.step, r.step)) for r in steps)
