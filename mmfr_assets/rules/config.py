"""The quality thresholds as one shared Dagster resource, the one place every reader takes them.

`quality_filtered` applies them and the teachers validate what they write with them, so both
take the `quality_thresholds` resource (`QualityThresholds`): a run that sets
`resources.quality_thresholds.config.*` changes the stage and the teachers alike, and the
code location registers it once for every run. A resource, not an asset's config, because
several assets share it (the Dagster idiom); before, the teachers read the fields out of
`quality_filtered`'s raw run config. The defaults are `QualityRules`' (the paper's values),
written once; the exports and anything else that needs "the paper's thresholds" read them as
`QualityThresholds()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from mmfr_assets.lineage import NAME
from mmfr_assets.rules.quality import QualityRules

_PAPER = QualityRules()


def repetition_min_count(ngram_min_count: int | None, max_ngram_occurrences: int | None) -> int | None:
    """The repetition rule's count from a config that may use either name: the older
    `max_ngram_occurrences` (the most occurrences a row may have) wins where set, as
    `max_ngram_occurrences + 1`; else `ngram_min_count`. The one home of the conversion."""
    return max_ngram_occurrences + 1 if max_ngram_occurrences is not None else ngram_min_count


#: The resource key of the thresholds, in the code location and under a run config's `resources`.
QUALITY_THRESHOLDS = "quality_thresholds"


class QualityThresholds(dg.ConfigurableResource):
    """The published quality thresholds, shared by `quality_filtered` (which applies them) and
    the teachers (which validate their texts with them); null switches a length rule off."""

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
        return repetition_min_count(self.ngram_min_count, self.max_ngram_occurrences)

    def applied(self) -> dict[str, Any]:
        """The config as applied, for a materialization's metadata: the older name folded into
        `ngram_min_count` (listed only where a run set it, beside the count it became)."""
        values = self.model_dump()
        if values.get("max_ngram_occurrences") is None:
            values.pop("max_ngram_occurrences", None)
        values["ngram_min_count"] = self.repetition_min_count()
        return values

    def rules(self) -> QualityRules:
        return QualityRules(
            min_response_words=self.min_response_words,
            min_caption_words=self.min_caption_words,
            error_marker=self.error_marker,
            ngram_size=self.ngram_size,
            ngram_min_count=self.repetition_min_count(),
            answer_tag_exempt_subsets=tuple(self.answer_tag_exempt_subsets),
        )


#: Where the thresholds were set before they became a resource: `ops.quality_filtered.config`.
#: Only named in the error that says where they moved (`moved_threshold_keys`).
FORMER_ASSET = NAME.quality_filtered


def moved_threshold_keys(run_config: Mapping[str, Any] | None) -> list[str]:
    """The thresholds a run config still sets at their former place,
    `ops.quality_filtered.config.<field>`, which Dagster rejects as unexpected entries; the
    CLI names their new place, `resources.quality_thresholds.config.<field>`."""
    ops = (run_config or {}).get("ops") or {}
    given = (ops.get(FORMER_ASSET) or {}).get("config") or {}
    return [key for key in given if key in QualityThresholds.model_fields] if isinstance(given, Mapping) else []


#: The thresholds each teacher validates its generated texts with (the rest do not apply to it).
TEACHER_THRESHOLDS: Mapping[str, tuple[str, ...]] = {
    NAME.teacher_responses: ("min_response_words", "error_marker", "ngram_size", "ngram_min_count"),
    NAME.teacher_captions: ("min_caption_words",),
}


def threshold_drift(applied: QualityRules, validated: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list]]:
    """Per teacher, the thresholds it validated with (its last materialization's
    `validation_thresholds`) that differ from the ones `quality_filtered` applies now:
    {teacher: {threshold: [teacher's, applied]}}. A teacher validating with other thresholds
    than selection keeps texts selection then drops (or re-asked for texts selection would keep):
    the two agree within one run (one `quality_thresholds` resource), but a teacher materialized
    in another run, with other config, may not, and a user must see that rather than find it in
    the counts."""
    drift: dict[str, dict[str, list]] = {}
    for teacher, used in validated.items():
        differ = {name: [used.get(name), getattr(applied, name)]
                  for name in TEACHER_THRESHOLDS.get(teacher, ()) if name in used and used[name] != getattr(applied, name)}
        if differ:
            drift[teacher] = differ
    return drift


def teachers_validation_thresholds(instance: dg.DagsterInstance, partition_key: str) -> dict[str, Mapping[str, Any]]:
    """Each teacher's `validation_thresholds` from its latest materialization of this
    partition (teachers never materialized here are left out)."""
    found: dict[str, Mapping[str, Any]] = {}
    for teacher in TEACHER_THRESHOLDS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(teacher), asset_partitions=[partition_key]), limit=1)
        for record in records.records:
            materialization = record.asset_materialization
            value = materialization.metadata.get("validation_thresholds") if materialization else None
            if value is not None and isinstance(value.value, Mapping):
                found[teacher] = value.value
    return found
