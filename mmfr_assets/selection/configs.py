"""The launchpad config of every selection asset, in one place: each threshold once, with its
paper value and what it does in the description the launchpad shows. The model steps
(`steps.py`) are built from these typed configs. The quality thresholds are not here: they
are the `quality_thresholds` resource (`rules.config.QualityThresholds`), which
`quality_filtered` and the teachers share, so the teachers validate with the thresholds
selection applies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, model_validator

from mmfr_assets.lineage import NAME
from mmfr_assets.model_step.declaration import ModelStepConfig
from mmfr_assets.rules.verify import REFERENCE_COLUMNS
from mmfr_assets.rules.verify.workers import MATH_VERIFY_TIMEOUT_S


class _VerifierConfig(ModelStepConfig):
    reference_columns: list[str] = Field(
        default=list(REFERENCE_COLUMNS),
        description="Columns holding the reference answer; the first non-blank one is used.")
    use_math_verify: bool = Field(
        default=True, description="Try math-verify on pairs the rules leave undecided.")
    math_verify_workers: int = Field(default=2, description="math-verify worker processes.")
    math_verify_timeout_s: float = Field(
        default=MATH_VERIFY_TIMEOUT_S, description="Seconds per item; a worker past it is "
        "killed and the pair stays undecided.")


class AnswerVerdictsConfig(_VerifierConfig):
    """How each trace's final answer is checked against the reference."""

    recompute: bool = Field(
        default=False, description="Verify every row, even those whose dataset carries "
        "is_consistent (by default they keep it, reproducing the published selection).")
    judge_trace_tail_chars: int = Field(
        default=1500, ge=0, description="Characters of the end of a trace shown to the judge "
        "when the trace commits to no final answer.")


class StudentRolloutsConfig(_VerifierConfig):
    """How the student is sampled. The completion budget is the `student_llm` resource's
    `max_tokens` (16,384 by default: a thinking model needs it)."""

    recompute: bool = Field(
        default=False, description="Roll out rows whose dataset already has a pass rate too.")
    num_samples: int = Field(
        default=4, description="Student answers per question (paper: 4); one request with n "
        "where the endpoint supports it.")


class StudentVerdictsConfig(ModelStepConfig):
    """The judge's pass over student samples the rules could not settle."""

    judge_weak: bool = Field(
        default=True, description="Also send samples math-verify called different (a weak "
        "verdict: it says so where it fails to parse) to the judge.")


class QualityFilteredConfig(dg.Config):
    """The batch size. The quality thresholds this asset applies are the shared
    `quality_thresholds` resource (resources.quality_thresholds.config), which the teachers
    validate with too; they moved there from this config, field names unchanged."""

    batch_size: int = Field(default=1024, description="Rows read at a time.")


_CLEARER = ("Set, it replaces max_pass_rate and inclusive (the older pair, still accepted and "
            "what the materialization records); set at most one of pass_rate_below and "
            "pass_rate_at_most.")


class DifficultyFilteredConfig(dg.Config):
    """The 123K recipe by default: keep what the student never solves (pass rate <= 0).

    The bound is written either as `max_pass_rate` with `inclusive` (the recorded pair) or, in
    words, as `pass_rate_at_most` (keep <=) or `pass_rate_below` (keep <)."""

    max_pass_rate: float = Field(
        default=0.0, description="The pass-rate bound (paper's 123K recipe: 0, inclusive): see "
        "inclusive for which side is kept.")
    inclusive: bool = Field(
        default=True, description="true: keep pass rate <= max_pass_rate; false: keep pass "
        "rate < max_pass_rate (strictly below).")
    pass_rate_at_most: float | None = Field(
        default=None, description="Keep rows whose pass rate is at most this (<=). " + _CLEARER)
    pass_rate_below: float | None = Field(
        default=None, description="Keep rows whose pass rate is strictly below this (<); the "
        "586K recipe is pass_rate_below: 1. " + _CLEARER)
    batch_size: int = Field(default=1024, description="Rows read at a time.")

    @model_validator(mode="before")
    @classmethod
    def _bound_in_words(cls, values: Any) -> Any:
        """`pass_rate_at_most` / `pass_rate_below`, where set, become `max_pass_rate` and
        `inclusive` (which the asset reads and records)."""
        if not isinstance(values, Mapping):
            return values
        at_most, below = values.get("pass_rate_at_most"), values.get("pass_rate_below")
        if at_most is not None and below is not None:
            raise ValueError("set pass_rate_at_most or pass_rate_below, not both")
        if at_most is None and below is None:
            return values
        return {**values, "max_pass_rate": at_most if below is None else below, "inclusive": below is None}


class DifficultyFiltered586kConfig(DifficultyFilteredConfig):
    """The 586K recipe by default: keep what the student does not always solve (pass rate < 1)."""

    max_pass_rate: float = Field(
        default=1.0, description="The pass-rate bound (paper's 586K recipe: 1, not inclusive, "
        "i.e. keep pass rate < 1): see inclusive for which side is kept.")
    inclusive: bool = Field(
        default=False, description="false (default): keep pass rate < max_pass_rate (strictly "
        "below); true: keep pass rate <= max_pass_rate.")


#: Each difficulty recipe's config, by its asset: the paper's rule as its defaults, and the words
#: a run config sets it in. The assets, the exports' paper rules and the student-first targets'
#: bounds all read it here.
RECIPE_CONFIGS: dict[str, type[DifficultyFilteredConfig]] = {
    NAME.difficulty_filtered: DifficultyFilteredConfig,
    NAME.difficulty_filtered_586k: DifficultyFiltered586kConfig,
}
