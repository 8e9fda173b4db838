"""The quality thresholds as launchpad config, in the one place both stages read them.

`quality_filtered` applies them and the teachers validate what they write with them: the
asset's config (`selection.configs.QualityFilteredConfig`) is `QualityRulesConfig` plus its batch
size, and a teacher reads the same fields from the run's `quality_filtered` config
(`quality_rules_of_run`). The defaults are `QualityRules`' (the paper's values), written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from mmfr_assets.rules.quality import QualityRules

_PAPER = QualityRules()


class QualityRulesConfig(dg.Config):
    """The published quality thresholds; null switches a length rule off."""

    min_response_words: int | None = Field(
        default=_PAPER.min_response_words, description="content_short_response below this many "
        "whitespace-split words of the whole response (paper: 200).")
    min_caption_words: int | None = Field(
        default=_PAPER.min_caption_words,
        description="content_short_caption below this many words (paper: 100).")
    error_marker: str = Field(
        default=_PAPER.error_marker, description="content_error_marker: a response containing it.")
    ngram_size: int = Field(
        default=_PAPER.ngram_size, description="repetition_ngram, with ngram_min_count: a row is "
        "dropped when some n-gram of this many think-block words (paper: 50) ...")
    ngram_min_count: int = Field(
        default=_PAPER.ngram_min_count, description="... occurs at least this many times "
        "(paper: 3).")
    max_ngram_occurrences: int | None = Field(
        default=None, description="The same bound under its older name, kept for run configs "
        "that use it: the most occurrences a row may have (the paper's 2 = dropped at 3). Set, "
        "it replaces ngram_min_count (= max_ngram_occurrences + 1).")
    answer_tag_exempt_subsets: list[str] = Field(
        default=list(_PAPER.answer_tag_exempt_subsets),
        description="Subsets whose traces need no <answer> pair (the published exemptions).")

    def repetition_min_count(self) -> int:
        """The repetition rule's count: `max_ngram_occurrences` + 1 where the old name is set,
        else `ngram_min_count`."""
        if self.max_ngram_occurrences is not None:
            return self.max_ngram_occurrences + 1
        return self.ngram_min_count

    def rules(self) -> QualityRules:
        return QualityRules(
            min_response_words=self.min_response_words,
            min_caption_words=self.min_caption_words,
            error_marker=self.error_marker,
            ngram_size=self.ngram_size,
            ngram_min_count=self.repetition_min_count(),
            answer_tag_exempt_subsets=tuple(self.answer_tag_exempt_subsets),
        )


#: The asset whose config holds the thresholds in a run.
THRESHOLDS_ASSET = "quality_filtered"


def quality_rules_of_run(run_config: Mapping[str, Any] | None) -> QualityRules:
    """The thresholds `quality_filtered` applies in this run: its run config where the run
    sets one, else the defaults. The teachers validate with these, so a trace they keep is one
    selection keeps (and a threshold changed for the run changes both). Keys of the asset's
    config that are not thresholds (its batch size) are left out."""
    ops = (run_config or {}).get("ops") or {}
    given = (ops.get(THRESHOLDS_ASSET) or {}).get("config") or {}
    return QualityRulesConfig(**{k: v for k, v in given.items() if k in QualityRulesConfig.model_fields}).rules()
