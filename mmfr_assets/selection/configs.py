"""The launchpad config of every selection asset, in one place: each threshold once, with its
paper value and what it does in the description the launchpad shows. The model steps
(`steps.py`) are built from these typed configs. The quality thresholds themselves are
`rules.config.QualityRulesConfig`, which the teachers read too (`quality_rules_of_run`), so
they validate with the thresholds selection applies."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from mmfr_assets.model_step.asset import ModelStepConfig
from mmfr_assets.rules.config import QualityRulesConfig, quality_rules_of_run  # noqa: F401
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


class QualityFilteredConfig(QualityRulesConfig):
    """The published quality thresholds (`QualityRulesConfig`, which the teachers' validation
    reads from this asset's config in the same run) and the batch size."""

    batch_size: int = Field(default=1024, description="Rows read at a time.")


class DifficultyFilteredConfig(dg.Config):
    """The 123K recipe by default: keep what the student never solves (pass rate <= 0)."""

    max_pass_rate: float = Field(
        default=0.0, description="Highest pass rate kept (paper's 123K recipe: 0).")
    inclusive: bool = Field(
        default=True, description="true: keep pass rate <= max_pass_rate; false: keep pass "
        "rate < max_pass_rate.")
    batch_size: int = Field(default=1024, description="Rows read at a time.")


class DifficultyFiltered586kConfig(DifficultyFilteredConfig):
    """The 586K recipe by default: keep what the student does not always solve (pass rate < 1)."""

    max_pass_rate: float = Field(
        default=1.0, description="Pass-rate bound (paper's 586K recipe: < 1).")
    inclusive: bool = Field(
        default=False, description="false (default): keep pass rate < max_pass_rate; true: <=.")
