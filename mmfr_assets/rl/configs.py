"""The launchpad config of the RL set's assets, each rule's threshold once, with its source.

The rules follow the RL stage of OpenMMReasoner (arXiv 2511.16334: a rule-checkable reward,
GSPO over 16 rollouts, prompts whose rollouts are neither all right nor all wrong) and the
common "needs the image" check (the question asked without its image should not already be
solved). `None` switches a rule off, as datatrove's thresholds do.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, model_validator

from mmfr_assets.lineage import EXPORTABLE, NAME

#: The tables `exclude_sft_asset` can name: every exportable table but the RL set itself.
SFT_TABLES = tuple(t for t in EXPORTABLE if t != NAME.rl_selected)
from mmfr_assets.rl.checkable import CHECKABLE_FORMS, MAX_EXPRESSION_CHARS
from mmfr_assets.selection.configs import StudentVerdictsConfig, _VerifierConfig


class RlRolloutsConfig(_VerifierConfig):
    """How the policy is sampled. The completion budget is the `policy_llm` resource's
    `max_tokens` (16,384 by default)."""

    num_samples: int = Field(
        default=8, ge=1, description="Policy answers per question, with the image (one request "
        "with n where the endpoint supports it). GRPO/GSPO learn only from groups whose rewards "
        "differ: the pass rate over these decides the band rl_selected keeps.")
    blind_samples: int = Field(
        default=4, ge=0, description="Policy answers per question asked without its image (the "
        "same prompt, placeholders removed); 0 turns the blind check off.")
    checkable_forms: list[str] = Field(
        default=list(CHECKABLE_FORMS), description="Reference forms a rule can check (choice, "
        "number, time, interval, set, word, expression); rows of other forms (prose, long, "
        "none) are not rolled out and rl_selected drops them as rl_not_checkable.")
    max_expression_chars: int = Field(
        default=MAX_EXPRESSION_CHARS, ge=1, description="Longest reference expression, in "
        "characters, counted as rule-checkable (longer ones are `long`).")


class RlVerdictsConfig(StudentVerdictsConfig):
    """The judge's pass over policy samples (with and without the image) the rules could not settle."""


class RlSelectedConfig(dg.Config):
    """Which rolled-out rows make the RL set: a rule-checkable reference, a pass rate inside the
    band, a blind pass rate at or below its bound, and (optionally) not in an SFT set."""

    min_pass_rate: float = Field(
        default=0.0, description="Lower end of the kept pass-rate band (default 0, exclusive: the "
        "policy must solve the question at least once over num_samples).")
    min_inclusive: bool = Field(
        default=False, description="true: keep pass rate >= min_pass_rate; false: > min_pass_rate.")
    max_pass_rate: float = Field(
        default=1.0, description="Upper end of the band (default 1, exclusive: the policy must "
        "fail at least once; a group all right gives no gradient).")
    max_inclusive: bool = Field(
        default=False, description="true: keep pass rate <= max_pass_rate; false: < max_pass_rate.")
    max_blind_pass_rate: float | None = Field(
        default=0.25, description="Drop rows whose pass rate without the image is above this "
        "(rl_blind_solvable): at or below is kept. 0.25 lets one blind sample of 4 be right, a "
        "guess on a 4-option question. null switches the check off.")
    exclude_sft_asset: str | None = Field(
        default=None, description="Drop rows present in this SFT table for the same subset "
        f"(rl_in_sft_set), e.g. difficulty_filtered; one of {', '.join(SFT_TABLES)}. Off by default.")
    batch_size: int = Field(default=1024, description="Rows read at a time.")

    @model_validator(mode="after")
    def _known(self) -> "RlSelectedConfig":
        if self.exclude_sft_asset is not None and self.exclude_sft_asset not in SFT_TABLES:
            raise ValueError(f"exclude_sft_asset {self.exclude_sft_asset!r} is not an SFT table "
                             f"({', '.join(SFT_TABLES)})")
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError("min_pass_rate is above max_pass_rate")
        return self
