"""The launchpad config of every selection asset, in one place: each threshold once, with its
paper value and what it does in the description the launchpad shows. The model steps
(`steps.py`) are built from these typed configs; the teachers read `QualityFilteredConfig`
through `quality_rules_of_run`, so they validate with the thresholds selection applies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from mmfr_assets.model_step.asset import ModelStepConfig
from mmfr_assets.rules import quality
from mmfr_assets.rules.verify import REFERENCE_COLUMNS


class _VerifierConfig(ModelStepConfig):
    reference_columns: list[str] = Field(
        default=list(REFERENCE_COLUMNS),
        description="Columns holding the reference answer; the first non-blank one is used.")
    use_math_verify: bool = Field(
        default=True, description="Try math-verify on pairs the rules leave undecided.")
    math_verify_workers: int = Field(default=2, description="math-verify worker processes.")
    math_verify_timeout_s: float = Field(
        default=5.0, description="Seconds per item; a worker past it is killed and the pair "
        "stays undecided.")


class AnswerVerdictsConfig(_VerifierConfig):
    """How each trace's final answer is checked against the reference."""

    recompute: bool = Field(
        default=False, description="Verify every row, even those whose dataset carries "
        "is_consistent (by default they keep it, reproducing the published selection).")


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
    """The published quality thresholds, used by `quality_filtered` and by the teachers'
    validation of what they write; null switches a length rule off."""

    min_response_words: int | None = Field(
        default=200, description="content_short_response below this many whitespace-split "
        "words of the whole response (paper: 200).")
    min_caption_words: int | None = Field(
        default=100, description="content_short_caption below this many words (paper: 100).")
    error_marker: str = Field(
        default="[ERROR]", description="content_error_marker: a response containing it.")
    ngram_size: int = Field(
        default=50, description="repetition_ngram: n-grams of this many think-block words "
        "(paper: 50) ...")
    max_ngram_occurrences: int = Field(
        default=2, description="... seen more than this many times drop the row (paper: a "
        "50-gram occurring 3 times).")
    answer_tag_exempt_subsets: list[str] = Field(
        default=list(quality.ANSWER_TAG_EXEMPT_SUBSETS),
        description="Subsets whose traces need no <answer> pair (the published exemptions).")
    batch_size: int = Field(default=1024, description="Rows read at a time.")

    def rules(self) -> quality.QualityRules:
        return quality.QualityRules(
            min_response_words=self.min_response_words,
            min_caption_words=self.min_caption_words,
            error_marker=self.error_marker,
            ngram_size=self.ngram_size,
            max_ngram_occurrences=self.max_ngram_occurrences,
            answer_tag_exempt_subsets=tuple(self.answer_tag_exempt_subsets),
        )


def quality_rules_of_run(run_config: Mapping[str, Any] | None) -> quality.QualityRules:
    """The thresholds `quality_filtered` applies in this run: its run config where the run
    sets one, else the defaults. The teachers validate with these, so a trace they keep is one
    selection keeps (and a threshold changed for the run changes both)."""
    ops = (run_config or {}).get("ops") or {}
    given = (ops.get("quality_filtered") or {}).get("config") or {}
    return QualityFilteredConfig(**given).rules()


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
