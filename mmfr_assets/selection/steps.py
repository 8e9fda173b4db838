"""The two model steps of selection: `answer_verdicts` (is the trace's answer right?) and
`student_rollouts` (how often does the student solve it?). Row logic only; the shared runner
(`mmfr_assets.model_step`) streams, calls the endpoint, retries and writes.

Both take their config as an object with the attributes they read (the asset's `Config`,
or a plain namespace in unit tests).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step.declaration import ModelStep, Parsed, Retry
from mmfr_assets.prompts import Prompt
from mmfr_assets.selection.verify import (
    REFERENCE_COLUMNS,
    AnswerVerifier,
    Item,
    final_answer,
    reference_answer,
)
from mmfr_assets.selection.verify.agreement import Agreement
from mmfr_assets.selection.verify.batch import verdicts_of_batch
from mmfr_assets.selection.verify.judge import parse_judgment, visible_text

# `method` values besides the rule names (rules.RULES) and "math_verify".
DATASET_LABEL = "dataset_label"
JUDGE = "judge"
UNVERIFIED = "unverified"

_TRACE_TAIL = 1500  # characters of a trace shown to the judge when it commits to no answer


class _LazyVerifier:
    """One `AnswerVerifier` per step instance, started on first use and closed when the step
    is collected or the process exits (the runner has no close hook); a lock because the
    runner may parse on several threads."""

    def __init__(self, workers: int, timeout_s: float, use_math_verify: bool) -> None:
        self._args = dict(workers=workers, timeout_s=timeout_s, use_math_verify=use_math_verify)
        self._verifier: AnswerVerifier | None = None
        self._lock = threading.Lock()

    def get(self) -> AnswerVerifier:
        with self._lock:
            if self._verifier is None:
                self._verifier = AnswerVerifier(**self._args)
                weakref.finalize(self, self._verifier.close)
            return self._verifier

    def verify_many(self, items: Sequence[Item]):
        verifier = self.get()
        with self._lock:
            return verifier.verify_many(items)

    def close(self) -> None:
        with self._lock:
            if self._verifier is not None:
                self._verifier.close()
                self._verifier = None


def _config(config: Any, name: str, default: Any) -> Any:
    return getattr(config, name, default) if config is not None else default


class AnswerVerdictsStep(ModelStep):
    """Per distilled row: does the trace's final answer match the reference, and who decided.

    `prepare` runs the rules (then math-verify) on every row, so the metadata can compare them
    with the dataset's labels; a row keeps its dataset `is_consistent` unless `recompute`.
    Rows still undecided with a reference go to the judge; with no judge they are
    `unverified` (quality_filtered drops them as `correctness_unverified`).
    """

    asset = "answer_verdicts"
    role = "judge_llm"
    upstream = "distilled"
    columns = ("question", "answer", "original_answer", "response", "is_consistent")
    prompt = "answer_judge"
    output_schema = pa.schema(
        [
            ("is_consistent", pa.bool_()),  # the verdict: null = unverified
            ("method", pa.string()),  # dataset_label, a rule name, math_verify, judge, unverified
            ("analysis", pa.string()),  # the judge's analysis, or why the row is unverified
            ("final_answer", pa.string()),
            ("reference", pa.string()),
            ("reference_column", pa.string()),
            ("rule_verdict", pa.bool_()),  # what the rules (+ math-verify) said, for agreement
            ("rule_method", pa.string()),
            ("dataset_label", pa.bool_()),
        ]
    )
    status_column = "method"
    max_attempts = 2

    def __init__(self, config: Any = None) -> None:
        self.recompute = bool(_config(config, "recompute", False))
        wanted = list(_config(config, "reference_columns", REFERENCE_COLUMNS))
        known = set(DISTILLED_SCHEMA.names)
        self.reference_columns = [c for c in wanted if c in known]
        self.columns = tuple(dict.fromkeys(["question", *self.reference_columns, "response", "is_consistent"]))
        self._verifier = _LazyVerifier(
            int(_config(config, "math_verify_workers", 2)),
            float(_config(config, "math_verify_timeout_s", 5.0)),
            bool(_config(config, "use_math_verify", True)),
        )
        self.agreement = Agreement()

    def close(self) -> None:
        self._verifier.close()

    def extra_metadata(self) -> dict[str, Any]:
        """How the rules (+ math-verify) compare with the dataset's labels, where it has them."""
        return self.agreement.metadata()

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        verdicts = verdicts_of_batch(
            batch, self._verifier.get(), reference_columns=self.reference_columns
        )
        self.agreement.add(batch["is_consistent"], verdicts["equivalent"])
        return batch.with_columns(
            verdicts.select(
                "final_answer", "reference", "reference_column",
                pl.col("equivalent").alias("rule_verdict"),
                pl.col("method").alias("rule_method"),
                pl.col("detail").alias("rule_detail"),
            )
        )

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        labelled = pl.col("is_consistent").is_not_null() & pl.lit(not self.recompute)
        return batch.select(
            (~labelled & pl.col("rule_verdict").is_null() & pl.col("reference").is_not_null()).alias("needs")
        )["needs"]

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        candidate = row.get("final_answer")
        if not candidate:
            tail = visible_text(row.get("response") or "")[-_TRACE_TAIL:]
            candidate = f"(no marked final answer; the end of the solution follows)\n{tail}"
        return prompt.render(question=row.get("question") or "", reference=row["reference"], candidate=candidate)

    def _base(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "final_answer": row.get("final_answer"),
            "reference": row.get("reference"),
            "reference_column": row.get("reference_column"),
            "rule_verdict": row.get("rule_verdict"),
            "rule_method": row.get("rule_method") if row.get("rule_verdict") is not None else None,
            "dataset_label": row.get("is_consistent"),
        }

    def _unverified(self, row: Mapping[str, Any], why: str) -> dict[str, Any]:
        return {**self._base(row), "is_consistent": None, "method": UNVERIFIED, "analysis": why}

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        reply = replies[0]
        if not reply.ok or not reply.choices:
            why = f"judge request failed: {reply.error or 'no choices'}"
            return Parsed(self._unverified(row, why), failure=why)
        judgment = parse_judgment(visible_text(reply.choices[0].think_text()))
        if judgment.equivalent is None:
            why = f"judge reply unparsed: {judgment.analysis}"
            return Retry(why, Parsed(self._unverified(row, why), failure=why))
        return Parsed(
            {**self._base(row), "is_consistent": judgment.equivalent, "method": JUDGE, "analysis": judgment.analysis}
        )

    def without_model(self, row: Mapping[str, Any], reason: str | None) -> Parsed:
        label = row.get("is_consistent")
        if label is not None and not self.recompute:
            return Parsed({**self._base(row), "is_consistent": label, "method": DATASET_LABEL, "analysis": None})
        if row.get("rule_verdict") is not None:
            return Parsed(
                {**self._base(row), "is_consistent": row["rule_verdict"], "method": row["rule_method"], "analysis": None}
            )
        if reason is None:  # needed no request: nothing to compare against
            return Parsed(self._unverified(row, row.get("rule_detail") or "no_reference"))
        return Parsed(self._unverified(row, f"{row.get('rule_detail') or 'rules_undecided'}; {reason}"))


class StudentRolloutsStep(ModelStep):
    """Per quality-filtered row: the student answers `num_samples` times (with the image);
    each sample's final answer is verified against the reference by the rules (then
    math-verify); pass rate = correct / counted samples.

    A sample counts as correct or incorrect when verified, and as incorrect when the student
    committed to no final answer. Samples the verifier cannot decide, and requests given up on,
    are recorded and not counted; a row with no counted sample has no pass rate, with the
    reason. A dataset `pass_rate` is kept unless `recompute`.
    """

    asset = "student_rollouts"
    role = "student_llm"
    upstream = "quality_filtered"
    columns = ("question", "answer", "original_answer", "pass_rate")
    prompt = "student_rollout"
    output_schema = pa.schema(
        [
            ("pass_rate", pa.float64()),  # null: no pass rate (see pass_rate_origin, detail)
            ("pass_rate_origin", pa.string()),  # dataset, rollouts, failed, no_reference, missing
            ("samples", pa.int32()),
            ("correct", pa.int32()),
            ("incorrect", pa.int32()),
            ("undecided", pa.int32()),
            ("failed", pa.int32()),
            ("sample_answers", pa.list_(pa.string())),
            ("detail", pa.string()),
        ]
    )
    sends_image = True
    status_column = "pass_rate_origin"

    def __init__(self, config: Any = None) -> None:
        self.recompute = bool(_config(config, "recompute", False))
        self.samples = int(_config(config, "num_samples", 4))
        wanted = list(_config(config, "reference_columns", REFERENCE_COLUMNS))
        self.reference_columns = [c for c in wanted if c in set(DISTILLED_SCHEMA.names)]
        self.columns = tuple(dict.fromkeys(["question", *self.reference_columns, "pass_rate"]))
        self._verifier = _LazyVerifier(
            int(_config(config, "math_verify_workers", 2)),
            float(_config(config, "math_verify_timeout_s", 5.0)),
            bool(_config(config, "use_math_verify", True)),
        )

    def close(self) -> None:
        self._verifier.close()

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        present = [c for c in self.reference_columns if c in batch.columns]
        references = [reference_answer(r, present)[0] for r in batch.select(present).iter_rows(named=True)]
        return batch.with_columns(pl.Series("reference", references, pl.String))

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        missing = pl.col("pass_rate").is_null() | pl.col("pass_rate").is_nan() | pl.lit(self.recompute)
        return batch.select((missing & pl.col("reference").is_not_null()).alias("needs"))["needs"]

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row.get("question") or "")

    def _columns(self, **values: Any) -> dict[str, Any]:
        base = {"pass_rate": None, "samples": 0, "correct": 0, "incorrect": 0, "undecided": 0,
                "failed": 0, "sample_answers": [], "detail": None}
        return {**base, **values}

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        answers: list[str | None] = []
        errors: list[str] = []
        for reply in replies:
            if reply.ok and reply.choices:
                answers.append(final_answer(reply.choices[0].think_text()))
            else:
                answers.append(None)
                errors.append(reply.error or "no choices")
        ok = [a for a, r in zip(answers, replies) if r.ok and r.choices]
        verdicts = self._verifier.verify_many(
            [Item(a, row["reference"], row.get("question")) for a in ok if a is not None]
        )
        correct = sum(v.equivalent is True for v in verdicts)
        incorrect = sum(v.equivalent is False for v in verdicts) + sum(a is None for a in ok)
        undecided = sum(v.equivalent is None for v in verdicts)
        failed = len(replies) - len(ok)
        counted = correct + incorrect
        details = []
        if failed:
            details.append(f"{failed} failed: {errors[0]}")
        if undecided:
            details.append(f"{undecided} undecided: {next(v.detail for v in verdicts if v.equivalent is None)}")
        columns = self._columns(
            samples=len(replies), correct=correct, incorrect=incorrect, undecided=undecided,
            failed=failed, sample_answers=[a if a is not None else "" for a in answers],
            detail="; ".join(details) or None,
        )
        if counted == 0:
            why = f"no sample of {len(replies)} could be counted" + (f" ({'; '.join(details)})" if details else "")
            return Parsed({**columns, "pass_rate_origin": "failed", "detail": why},
                          failure=why if failed == len(replies) else None)
        return Parsed({**columns, "pass_rate": correct / counted, "pass_rate_origin": "rollouts"})

    def without_model(self, row: Mapping[str, Any], reason: str | None) -> Parsed:
        rate = row.get("pass_rate")
        if rate is not None and rate == rate and not self.recompute:
            return Parsed(self._columns(pass_rate=rate, pass_rate_origin="dataset"))
        if row.get("reference") is None:
            return Parsed(self._columns(pass_rate_origin="no_reference", detail="no reference answer to verify samples against"))
        return Parsed(self._columns(pass_rate_origin="missing", detail=reason))
