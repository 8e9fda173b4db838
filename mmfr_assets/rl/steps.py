"""The RL set's two model steps: `rl_rollouts` (the policy answers each rule-checkable row,
with its image and without it) and `rl_verdicts` (the judge settles the samples the rules
could not). Row logic only, reusing the student's: the samples are verified by
`selection.steps.verified_samples` and judged by `StudentVerdictsStep`'s parse, so the
pass rate with its bounds means the same thing in both sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa

from mmfr_assets.dedup.assets import DEDUPLICATED_SCHEMA
from mmfr_assets.exports.turns import question_without_images
from mmfr_assets.lineage import NAME
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step.declaration import Ask, ModelStep, Parsed, Retry
from mmfr_assets.model_step.join import joins_of, take
from mmfr_assets.prompts import Prompt
from mmfr_assets.rl.checkable import reference_form
from mmfr_assets.rl.configs import RlRolloutsConfig, RlVerdictsConfig
from mmfr_assets.selection.steps import (
    PASS_RATE_SCHEMA, StudentVerdictsStep, _verifier, answers_to_judge, batch_references, settled_samples,
    verified_samples,
)

#: Rows rolled out (or judged): their origin says the samples hold a pass rate or its bounds.
ROLLED_OUT = ("rollouts", "bounds")


def blind(column: str) -> str:
    """The blind group's name of a sample column: `blind_pass_rate`, `blind_answers`, ..."""
    return "blind_" + column.removeprefix("sample_")


#: The samples' columns, once per group: with the image (the student's names) and blind.
SAMPLE_SCHEMA = [
    *PASS_RATE_SCHEMA,  # origin: rollouts, bounds, failed, not_checkable, missing
    ("sample_answers", pa.list_(pa.string())),
    ("sample_verdicts", pa.list_(pa.bool_())),
    ("sample_methods", pa.list_(pa.string())),
    ("detail", pa.string()),
]
BLIND_SCHEMA = [(blind(name), dtype) for name, dtype in SAMPLE_SCHEMA]  # blind origin also `off`


def _blind_columns(columns: Mapping[str, Any]) -> dict[str, Any]:
    return {blind(name): columns.get(name) for name, _ in SAMPLE_SCHEMA}


def _empty_group(origin: str | None, detail: str | None) -> dict[str, Any]:
    return {"pass_rate": None, "pass_rate_low": None, "pass_rate_high": None, "pass_rate_origin": origin,
            "samples": 0, "correct": 0, "incorrect": 0, "undecided": 0, "failed": 0, "sample_answers": [],
            "sample_verdicts": [], "sample_methods": [], "detail": detail}


class RlRolloutsStep(ModelStep):
    """Per deduplicated row whose reference a rule can check: the policy answers `num_samples`
    times with the image and `blind_samples` times without it (the same prompt, placeholders
    removed); each answer verified by the rules and math-verify, as the student's are.

    Every sample is in its group's denominator; undecided samples and failed requests make
    the pass rate a range (`*_low`/`*_high`, origin `bounds`), which `rl_verdicts` narrows
    with the judge. Rows whose reference is prose, too long or missing are not rolled out
    (origin `not_checkable`; `rl_selected` drops them as `rl_not_checkable`).
    """

    asset = NAME.rl_rollouts
    config_class = RlRolloutsConfig
    role = "policy_llm"
    columns = ("question", "answer", "original_answer")
    prompt = "rl_rollout"
    output_schema = pa.schema([
        *SAMPLE_SCHEMA,
        *BLIND_SCHEMA,
        ("reference", pa.string()),
        ("reference_form", pa.string()),  # rl/checkable.py: choice, number, ..., prose, long, none
        ("checkable", pa.bool_()),
    ])
    sends_image = True
    status_column = "pass_rate_origin"
    reason_column = "detail"
    skipped_status = "missing"
    description = (
        "Per deduplicated row with a rule-checkable reference: the `policy_llm` endpoint (the model "
        "to be RL-trained) answers `num_samples` times with the image and `blind_samples` times "
        "without it; each answer verified by the rules and math-verify; the pass rate of each group, "
        "or its bounds where some samples are undecided.")

    def __init__(self, config: RlRolloutsConfig | None = None) -> None:
        config = config or RlRolloutsConfig()
        self.samples = config.num_samples
        self.blind_samples = config.blind_samples
        self.forms = tuple(config.checkable_forms)
        self.max_chars = config.max_expression_chars
        known = set(DEDUPLICATED_SCHEMA.names)
        self.reference_columns = [c for c in config.reference_columns if c in known]
        self.columns = tuple(dict.fromkeys(["question", *self.reference_columns]))
        self._verifier = _verifier(config)

    def close(self) -> None:
        self._verifier.close()

    def extra_metadata(self) -> dict[str, Any]:
        """The sampling settings, for the export's card (text: the UI plots only row counts)."""
        return {"num_samples": dg.MetadataValue.text(str(self.samples)),
                "blind_samples": dg.MetadataValue.text(str(self.blind_samples)),
                "checkable_forms": dg.MetadataValue.text(", ".join(self.forms))}

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        references = batch_references(batch, self.reference_columns)
        forms = [reference_form(ref, q, max_expression_chars=self.max_chars)
                 for ref, q in zip(references, batch["question"].to_list())]
        return batch.with_columns(pl.Series("reference", references, pl.String),
                                  pl.Series("reference_form", forms, pl.String),
                                  pl.Series("checkable", [f in self.forms for f in forms], pl.Boolean))

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        return batch["checkable"].alias("needs")

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row.get("question") or "")

    def ask_samples(self) -> tuple[int, ...]:
        return (self.samples, self.blind_samples) if self.blind_samples else (self.samples,)

    def asks(self, row: Mapping[str, Any], prompt: Prompt) -> Sequence[Ask]:
        with_image = Ask(self.render(row, prompt), True, self.samples)
        if not self.blind_samples:
            return (with_image,)
        text = prompt.render(question=question_without_images(row.get("question")))
        return (with_image, Ask(text, False, self.blind_samples))

    def _row(self, row: Mapping[str, Any], image: Mapping[str, Any], blind_group: Mapping[str, Any]) -> dict:
        return {**image, **_blind_columns(blind_group), "reference": row.get("reference"),
                "reference_form": row.get("reference_form"), "checkable": row.get("checkable")}

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        image = verified_samples(self._verifier, row["reference"], row.get("question"), replies[:self.samples])
        blind_group = (verified_samples(self._verifier, row["reference"], row.get("question"), replies[self.samples:])
                       if self.blind_samples else _empty_group("off", None))
        columns = self._row(row, image, blind_group)
        failed = [g["detail"] for g in (image, blind_group) if g["pass_rate_origin"] == "failed"]
        return Parsed(columns, failure=failed[0] if failed else None)

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        if not row.get("checkable"):
            why = f"reference of form {row.get('reference_form')!r} is not rule-checkable: not rolled out"
            return Parsed(self._row(row, _empty_group("not_checkable", why), _empty_group("not_checkable", None)))
        return Parsed(self._row(row, _empty_group("missing", None), _empty_group("missing", None)))


#: What `rl_verdicts` takes of `rl_rollouts`.
_ROLLOUT_COLUMNS = tuple(n for n, _ in SAMPLE_SCHEMA + BLIND_SCHEMA if n not in ("detail", "blind_detail"))


class RlVerdictsStep(StudentVerdictsStep):
    """Per deduplicated row: the policy's samples (both groups) the rules and math-verify
    could not settle, judged by `judge_llm` in one request per row (the distinct answers of
    both groups together), then each group's pass rate; without a judge, or where it fails,
    the bounds stay and `rl_selected` decides on them (`rl_undecided` where they straddle a
    threshold). The student's judge step, on two groups."""

    asset = NAME.rl_verdicts
    config_class = RlVerdictsConfig
    role = "judge_llm"
    columns = ("question",)
    # the policy's samples (`rl_rollouts`: the one step its lineage node joins)
    joins = tuple(take(rollouts, "reference", "reference_form", "checkable", *_ROLLOUT_COLUMNS,
                       detail="rollout_detail", blind_detail="rollout_blind_detail")
                  for rollouts in joins_of(asset))
    prompt = "sample_judge"
    output_schema = pa.schema([
        *PASS_RATE_SCHEMA,  # origin: rollouts, judged, bounds, failed, not_checkable, missing
        ("judged", pa.int32()),  # samples of both groups the judge settled
        ("sample_verdicts", pa.list_(pa.bool_())),
        ("detail", pa.string()),
        *[(blind(name), dtype) for name, dtype in PASS_RATE_SCHEMA],
        ("blind_verdicts", pa.list_(pa.bool_())),
        ("blind_detail", pa.string()),
    ])
    description = (
        "Per deduplicated row: the policy samples (with and without the image) the rules and "
        "math-verify left undecided, or called different on math-verify's weak word, judged by the "
        "`judge_llm` endpoint; each group's pass rate, or the bounds that remain without a judge.")

    def __init__(self, config: RlVerdictsConfig | None = None) -> None:
        super().__init__(config or RlVerdictsConfig())

    @staticmethod
    def _group(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        """One group's sample columns of a joined row, under the student's names."""
        if prefix:
            return {name: row.get(blind(name)) for name, _ in SAMPLE_SCHEMA if name != "detail"}
        return {name: row.get(name) for name, _ in SAMPLE_SCHEMA if name != "detail"}

    def _to_judge(self, row: Mapping[str, Any]) -> list[str]:
        if not row.get("reference"):
            return []
        wanted: list[str] = []
        for prefix in ("", "blind"):
            group = self._group(row, prefix)
            if group["pass_rate_origin"] in ROLLED_OUT:
                wanted += answers_to_judge(group["sample_answers"], group["sample_verdicts"],
                                           group["sample_methods"], judge_weak=self.judge_weak)
        return list(dict.fromkeys(wanted))

    def _settle(self, row: Mapping[str, Any], prefix: str, settled: Mapping[str, bool],
                note: str | None) -> dict[str, Any]:
        group = self._group(row, prefix)
        if group["pass_rate_origin"] not in ROLLED_OUT:  # failed, off, not_checkable, missing: as rolled out
            detail = row.get("rollout_blind_detail" if prefix else "rollout_detail")
            return {**{name: group.get(name) for name, _ in PASS_RATE_SCHEMA}, "judged": 0,
                    "sample_verdicts": group["sample_verdicts"] or [], "detail": detail}
        return settled_samples(group["sample_answers"], group["sample_verdicts"], group["sample_methods"],
                               samples=int(group["samples"] or 0), failed=int(group["failed"] or 0),
                               settled=settled, note=note)

    def _outcome(self, row: Mapping[str, Any], settled: Mapping[str, bool], note: str | None) -> dict[str, Any]:
        image = self._settle(row, "", settled, note)
        blind_group = self._settle(row, "blind", settled, None)
        return {**{name: image[name] for name, _ in PASS_RATE_SCHEMA}, "judged": image["judged"] + blind_group["judged"],
                "sample_verdicts": image["sample_verdicts"], "detail": image["detail"],
                **{blind(name): blind_group[name] for name, _ in PASS_RATE_SCHEMA},
                "blind_verdicts": blind_group["sample_verdicts"], "blind_detail": blind_group["detail"]}

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        return Parsed(self._outcome(row, {}, None))
