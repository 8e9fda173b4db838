"""The two model steps of selection: `answer_verdicts` (is the trace's answer right?) and
`student_rollouts` (how often does the student solve it?). Row logic only; the shared runner
(`mmfr_assets.model_step`) streams, calls the endpoint, retries and writes.

Each is built from its asset's typed `Config` (`configs.py`); its defaults are written there
once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.lineage import NAME
from mmfr_assets.llm.replies import visible_text
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step.declaration import ModelStep, Parsed, Retry
from mmfr_assets.model_step.join import joins_of, take
from mmfr_assets.prompts import Prompt
from mmfr_assets.selection.configs import (
    AnswerVerdictsConfig, StudentRolloutsConfig, StudentVerdictsConfig,
)
from mmfr_assets.rules.verify import (
    REFERENCE_COLUMNS,
    AnswerVerifier,
    Item,
    final_answer,
    reference_answer,
    verify_rules,
)
from mmfr_assets.rules.verify.agreement import Agreement
from mmfr_assets.rules.verify.batch import items_of_batch, verdict_frame
from mmfr_assets.rules.verify.judge import parse_judgment
from mmfr_assets.rules.verify.sample_judge import parse_sample_judgments
from mmfr_assets.rules.verify.verifier import WEAK_METHODS

# `method` values besides the rule names (rules.RULES) and "math_verify".
DATASET_LABEL = "dataset_label"
JUDGE = "judge"
UNVERIFIED = "unverified"


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


def _verifier(config: StudentRolloutsConfig | AnswerVerdictsConfig) -> _LazyVerifier:
    return _LazyVerifier(config.math_verify_workers, config.math_verify_timeout_s, config.use_math_verify)


def _reference_columns(config: StudentRolloutsConfig | AnswerVerdictsConfig) -> list[str]:
    known = set(DISTILLED_SCHEMA.names)
    return [c for c in config.reference_columns if c in known]


class AnswerVerdictsStep(ModelStep):
    """Per distilled row: does the trace's final answer match the reference, and who decided.

    `prepare` runs the rules (then math-verify) on every row, so the metadata can compare them
    with the dataset's labels; a row keeps its dataset `is_consistent` unless `recompute`.
    Rows still undecided with a reference go to the judge, and so do rows math-verify called
    different (a weak verdict, `Verdict.weak`: it says so wherever it fails to parse or
    simplify). With no judge undecided rows are `unverified` (quality_filtered drops them as
    `correctness_unverified`) and weak verdicts stand, recorded as `weak`.
    """

    asset = NAME.answer_verdicts
    config_class = AnswerVerdictsConfig
    role = "judge_llm"
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
            ("weak", pa.bool_()),  # the verdict is math-verify's "different", no judge confirmed it
        ]
    )
    status_column = "method"
    reason_column = "analysis"
    description = (
        "Per distilled row: does the trace's final answer match the reference, and who decided "
        "(dataset label, a rule, math-verify, or the `judge_llm` endpoint for what the rules "
        "leave undecided; `unverified` without a judge). Metadata compares the rules with the "
        "dataset's labels where it has them.")
    max_attempts = 2

    def __init__(self, config: AnswerVerdictsConfig | None = None) -> None:
        config = config or AnswerVerdictsConfig()
        self.recompute = config.recompute
        self.reference_columns = _reference_columns(config)
        self.columns = tuple(dict.fromkeys(["question", *self.reference_columns, "response", "is_consistent"]))
        self.trace_tail = config.judge_trace_tail_chars
        self._verifier = _verifier(config)
        self.agreement = Agreement()

    def close(self) -> None:
        self._verifier.close()

    def extra_metadata(self) -> dict[str, Any]:
        """How the rules (+ math-verify) compare with the dataset's labels, where it has them."""
        return self.agreement.metadata()

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The rules on every row; math-verify (milliseconds to seconds per item) only on rows
        whose verdict is used: unlabelled ones, or all with `recompute`. Labelled rows kept as
        labelled are compared with the rules alone (the agreement metadata)."""
        items, used = items_of_batch(batch, reference_columns=self.reference_columns)
        results = [verify_rules(item) for item in items]
        labels = batch["is_consistent"].to_list()
        pending = [
            k for k, v in enumerate(results)
            if v.detail == "rules_undecided" and (self.recompute or labels[k] is None)
        ]
        if pending:
            for k, verdict in zip(pending, self._verifier.verify_many([items[k] for k in pending])):
                results[k] = verdict
        verdicts = verdict_frame(items, used, results)
        self.agreement.add(batch["is_consistent"], verdicts["equivalent"])
        return batch.with_columns(
            verdicts.select(
                "final_answer", "reference", "reference_column",
                pl.col("equivalent").alias("rule_verdict"),
                pl.col("method").alias("rule_method"),
                pl.col("detail").alias("rule_detail"),
                pl.Series("rule_weak", [v.weak for v in results], pl.Boolean),
            )
        )

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        labelled = pl.col("is_consistent").is_not_null() & pl.lit(not self.recompute)
        unsettled = pl.col("rule_verdict").is_null() | pl.col("rule_weak")
        return batch.select(
            (~labelled & unsettled & pl.col("reference").is_not_null()).alias("needs")
        )["needs"]

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        candidate = row.get("final_answer")
        if not candidate:
            tail = visible_text(row.get("response") or "")[-self.trace_tail:] if self.trace_tail else ""
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
            "weak": False,
        }

    def _unverified(self, row: Mapping[str, Any], why: str) -> dict[str, Any]:
        return {**self._base(row), "is_consistent": None, "method": UNVERIFIED, "analysis": why}

    def _judge_failed(self, row: Mapping[str, Any], why: str) -> dict[str, Any]:
        """A row the judge could not settle: unverified, or its weak verdict where it had one."""
        if row.get("rule_weak"):
            return {**self._base(row), "is_consistent": False, "method": row["rule_method"],
                    "analysis": f"math-verify says different (weak: not confirmed; {why})", "weak": True}
        return self._unverified(row, why)

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        reply = replies[0]
        if not reply.ok or not reply.choices:
            why = f"judge request failed: {reply.error or 'no choices'}"
            return Parsed(self._judge_failed(row, why), failure=why)
        judgment = parse_judgment(visible_text(reply.choices[0].think_text()))
        if judgment.equivalent is None:
            why = f"judge reply unparsed: {judgment.analysis}"
            return Retry(why, Parsed(self._judge_failed(row, why), failure=why))
        return Parsed(
            {**self._base(row), "is_consistent": judgment.equivalent, "method": JUDGE, "analysis": judgment.analysis}
        )

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        label = row.get("is_consistent")
        if label is not None and not self.recompute:
            return Parsed({**self._base(row), "is_consistent": label, "method": DATASET_LABEL, "analysis": None})
        if row.get("rule_verdict") is not None:
            weak = bool(row.get("rule_weak"))
            analysis = "math-verify says different (weak: not confirmed)" if weak else None
            return Parsed({**self._base(row), "is_consistent": row["rule_verdict"], "method": row["rule_method"],
                           "analysis": analysis, "weak": weak})
        undecided = "rules_undecided" if row.get("reference") is not None else "no_reference"
        return Parsed(self._unverified(row, row.get("rule_detail") or undecided))


def batch_references(batch: pl.DataFrame, columns: Sequence[str]) -> list[str | None]:
    """Each row's reference answer: the first non-blank of `columns` the batch has, reduced to
    what it concludes (`reference_answer`)."""
    present = [c for c in columns if c in batch.columns]
    return [reference_answer(r, present)[0] for r in batch.select(present).iter_rows(named=True)]


def pass_rate_bounds(samples: int, correct: int, unknown: int) -> tuple[float | None, float | None]:
    """What the samples say of the pass rate over all `samples`: at least `correct`/n, at most
    (`correct` + `unknown`)/n, where `unknown` are samples nobody could decide (or whose request
    was given up on). None, None when there is no sample."""
    if samples <= 0:
        return None, None
    return correct / samples, (correct + unknown) / samples


def _rate_columns(samples: int, correct: int, incorrect: int, undecided: int, failed: int) -> dict[str, Any]:
    low, high = pass_rate_bounds(samples, correct, undecided + failed)
    return {"samples": samples, "correct": correct, "incorrect": incorrect, "undecided": undecided,
            "failed": failed, "pass_rate_low": low, "pass_rate_high": high,
            "pass_rate": low if low is not None and low == high else None}


def _counts_text(c: Mapping[str, Any]) -> str:
    parts = [f"{c['correct']} correct", f"{c['incorrect']} incorrect"]
    parts += [f"{c[k]} {k}" for k in ("undecided", "failed") if c[k]]
    return f"{', '.join(parts)} of {c['samples']} samples"


def verified_samples(verifier: _LazyVerifier, reference: str, question: str | None,
                     replies: Sequence[ChatResult]) -> dict[str, Any]:
    """The pass-rate columns of one row's samples (`PASS_RATE_SCHEMA`, with `sample_answers`,
    `sample_verdicts`, `sample_methods` and `detail`): each sample's final answer verified
    against `reference` by the rules (then math-verify). A sample committing to no final answer
    counts incorrect; undecided samples and failed requests widen the bounds. Origin `rollouts`
    (every sample decided), `bounds`, or `failed` (every request failed: no pass rate, `detail`
    says why). Shared by every step that rolls a model out (the student, the RL policy)."""
    answers: list[str | None] = []
    errors: list[str] = []
    for reply in replies:
        if reply.ok and reply.choices:
            answers.append(final_answer(reply.choices[0].think_text()))
        else:
            answers.append(None)
            errors.append(reply.error or "no choices")
    asked = [k for k, (a, r) in enumerate(zip(answers, replies)) if r.ok and r.choices and (a or "").strip()]
    verdicts = dict(zip(asked, verifier.verify_many(
        [Item(answers[k], reference, question) for k in asked])))
    sample_verdicts: list[bool | None] = []
    methods: list[str] = []
    for k, reply in enumerate(replies):
        if not (reply.ok and reply.choices):
            sample_verdicts.append(None)
            methods.append("failed")
        elif not (answers[k] or "").strip():  # no final answer, or an empty one: the model did not answer
            sample_verdicts.append(False)
            methods.append("no_final_answer")
        else:
            sample_verdicts.append(verdicts[k].equivalent)
            methods.append(verdicts[k].method if verdicts[k].equivalent is not None else verdicts[k].detail)
    failed = len(replies) - sum(r.ok and bool(r.choices) for r in replies)
    counts = _rate_columns(
        len(replies), sum(v is True for v in sample_verdicts), sum(v is False for v in sample_verdicts),
        sum(v is None for v in sample_verdicts) - failed, failed,
    )
    details = [_counts_text(counts)]
    if failed:
        details.append(f"failed: {errors[0]}")
    undecided = [methods[k] for k, v in enumerate(sample_verdicts) if v is None and methods[k] != "failed"]
    if undecided:
        details.append(f"undecided: {undecided[0]}")
    columns = {**counts, "sample_answers": [a if a is not None else "" for a in answers],
               "sample_verdicts": sample_verdicts, "sample_methods": methods, "detail": "; ".join(details)}
    if replies and failed == len(replies):
        return {**columns, "pass_rate_low": None, "pass_rate_high": None, "pass_rate_origin": "failed",
                "detail": f"every sample's request failed ({len(replies)}): {errors[0]}"}
    return {**columns, "pass_rate_origin": "rollouts" if counts["pass_rate"] is not None else "bounds"}


#: The pass-rate columns both student tables carry (null: no pass rate; see the origin).
PASS_RATE_SCHEMA = [
    ("pass_rate", pa.float64()),  # the pass rate over all samples, where every sample is decided
    ("pass_rate_low", pa.float64()),  # it lies in [low, high]: undecided samples counted wrong ...
    ("pass_rate_high", pa.float64()),  # ... and right
    ("pass_rate_origin", pa.string()),
    ("samples", pa.int32()),
    ("correct", pa.int32()),
    ("incorrect", pa.int32()),
    ("undecided", pa.int32()),
    ("failed", pa.int32()),
]


class StudentRolloutsStep(ModelStep):
    """Per quality-filtered row: the student answers `num_samples` times (with the image);
    each sample's final answer is verified against the reference by the rules (then
    math-verify).

    Every sample is in the pass rate's denominator. A verified sample is correct or incorrect;
    one that commits to no final answer is incorrect (the student did not answer). Samples the
    verifier cannot decide, and requests given up on, are unknown: the pass rate is then only
    known to lie in [correct/n, (correct + unknown)/n] (`pass_rate_low`/`_high`,
    `pass_rate_origin` `bounds`), which `student_verdicts` narrows with the judge. A dataset
    `pass_rate` is kept unless `recompute`.
    """

    asset = NAME.student_rollouts
    config_class = StudentRolloutsConfig
    role = "student_llm"
    columns = ("question", "answer", "original_answer", "pass_rate")
    prompt = "student_rollout"
    output_schema = pa.schema(
        [
            *PASS_RATE_SCHEMA,  # origin: dataset, rollouts, bounds, failed, no_reference, missing
            ("sample_answers", pa.list_(pa.string())),  # "" where the sample gave none
            ("sample_verdicts", pa.list_(pa.bool_())),  # null: undecided (or request failed)
            ("sample_methods", pa.list_(pa.string())),  # who decided, or why undecided
            ("reference", pa.string()),
            ("detail", pa.string()),
        ]
    )
    sends_image = True
    status_column = "pass_rate_origin"
    reason_column = "detail"
    skipped_status = "missing"
    description = (
        "Per quality row: the `student_llm` endpoint answers the question with its image "
        "`num_samples` times; each answer verified by the rules and math-verify; the pass rate "
        "over all samples, or its bounds where some are undecided (the dataset's pass rate is "
        "kept unless recompute).")

    def __init__(self, config: StudentRolloutsConfig | None = None) -> None:
        config = config or StudentRolloutsConfig()
        self.recompute = config.recompute
        self.samples = config.num_samples
        self.reference_columns = _reference_columns(config)
        self.columns = tuple(dict.fromkeys(["question", *self.reference_columns, "pass_rate"]))
        self._verifier = _verifier(config)

    def close(self) -> None:
        self._verifier.close()

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        return batch.with_columns(pl.Series("reference", batch_references(batch, self.reference_columns), pl.String))

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        missing = pl.col("pass_rate").is_null() | pl.col("pass_rate").is_nan() | pl.lit(self.recompute)
        return batch.select((missing & pl.col("reference").is_not_null()).alias("needs"))["needs"]

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row.get("question") or "")

    def _columns(self, row: Mapping[str, Any], **values: Any) -> dict[str, Any]:
        base = {"pass_rate": None, "pass_rate_low": None, "pass_rate_high": None, "samples": 0,
                "correct": 0, "incorrect": 0, "undecided": 0, "failed": 0, "sample_answers": [],
                "sample_verdicts": [], "sample_methods": [], "reference": row.get("reference"),
                "detail": None}
        return {**base, **values}

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        columns = self._columns(row, **verified_samples(self._verifier, row["reference"], row.get("question"), replies))
        if columns["pass_rate_origin"] == "failed":
            return Parsed(columns, failure=columns["detail"])
        return Parsed(columns)

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        rate = row.get("pass_rate")
        if rate is not None and rate == rate and not self.recompute:
            return Parsed(self._columns(row, pass_rate=rate, pass_rate_low=rate, pass_rate_high=rate,
                                        pass_rate_origin="dataset"))
        if row.get("reference") is None:
            return Parsed(self._columns(row, pass_rate_origin="no_reference",
                                        detail="no reference answer to verify samples against"))
        return Parsed(self._columns(row, pass_rate_origin="missing"))


#: `student_rollouts` columns `student_verdicts` reads beside the quality rows' text.
_ROLLOUT_COLUMNS = (
    "pass_rate", "pass_rate_low", "pass_rate_high", "pass_rate_origin", "samples", "correct",
    "incorrect", "undecided", "failed", "sample_answers", "sample_verdicts", "sample_methods",
    "reference", "detail",
)


def answers_to_judge(answers: Sequence[str] | None, verdicts: Sequence[bool | None] | None,
                     methods: Sequence[str] | None, *, judge_weak: bool) -> list[str]:
    """The distinct answers of one row's samples that need a judge, in sample order: those
    undecided, and (with `judge_weak`) those math-verify called different on its weak word."""
    wanted = []
    for answer, verdict, method in zip(answers or [], verdicts or [], methods or []):
        weak = verdict is False and method in WEAK_METHODS
        if answer and (verdict is None or (weak and judge_weak)):
            wanted.append(answer)
    return list(dict.fromkeys(wanted))


def settled_samples(answers: Sequence[str] | None, verdicts: Sequence[bool | None] | None,
                    methods: Sequence[str] | None, *, samples: int, failed: int,
                    settled: Mapping[str, bool], note: str | None) -> dict[str, Any]:
    """One row's samples with the judge's verdicts (`settled`: answer -> equivalent) in place
    of undecided and weak ones: the pass-rate columns, origin `judged`, `rollouts` or
    `bounds`, `judged` (samples settled), `sample_verdicts` and `detail`."""
    verdicts = list(verdicts or [])
    judged = 0
    for k, (answer, verdict, method) in enumerate(zip(answers or [], verdicts, methods or [])):
        if answer in settled and (verdict is None or (verdict is False and method in WEAK_METHODS)):
            verdicts[k] = settled[answer]
            judged += 1
    counts = _rate_columns(samples, sum(v is True for v in verdicts),
                           sum(v is False for v in verdicts), sum(v is None for v in verdicts) - failed, failed)
    origin = ("judged" if judged else "rollouts") if counts["pass_rate"] is not None else "bounds"
    detail = _counts_text(counts) + (f" ({judged} settled by the judge)" if judged else "")
    if counts["pass_rate"] is None:
        detail += f"; pass rate between {counts['pass_rate_low']:.2f} and {counts['pass_rate_high']:.2f}"
    if note:
        detail += f"; {note}"
    return {**counts, "pass_rate_origin": origin, "judged": judged, "sample_verdicts": verdicts, "detail": detail}


class StudentVerdictsStep(ModelStep):
    """Per quality row: the student's samples that the rules and math-verify could not settle
    (undecided, and math-verify's weak "different") judged by `judge_llm`, then the pass rate
    over all samples.

    The distinct answers needing a judge go in one request (a student repeating an answer is
    asked about once). Where the judge is not configured or fails, the pass rate stays the
    bounds `student_rollouts` found, and the recipes keep a row only when every value in them
    passes (`difficulty_undecided` otherwise): nothing is guessed.
    """

    asset = NAME.student_verdicts
    config_class = StudentVerdictsConfig
    role = "judge_llm"
    columns = ("question",)
    # the student's samples (`student_rollouts`: the one step its lineage node joins)
    joins = tuple(take(rollouts, *(c for c in _ROLLOUT_COLUMNS if c != "detail"), detail="rollout_detail")
                  for rollouts in joins_of(asset))
    prompt = "sample_judge"
    output_schema = pa.schema(
        [
            *PASS_RATE_SCHEMA,  # origin: dataset, rollouts, judged, bounds, failed, no_reference, missing
            ("judged", pa.int32()),  # samples the judge settled
            ("sample_verdicts", pa.list_(pa.bool_())),
            ("detail", pa.string()),
        ]
    )
    status_column = "pass_rate_origin"
    reason_column = "detail"
    max_attempts = 2
    description = (
        "Per quality row: the student samples the rules and math-verify left undecided (or "
        "called different on math-verify's weak word) judged by the `judge_llm` endpoint; the "
        "pass rate over all samples, or the bounds that remain without a judge.")

    def __init__(self, config: StudentVerdictsConfig | None = None) -> None:
        config = config or StudentVerdictsConfig()
        self.judge_weak = config.judge_weak
        self.samples_judged = 0
        self.samples_unsettled = 0
        self.rows_with_bounds = 0

    def _to_judge(self, row: Mapping[str, Any]) -> list[str]:
        """The distinct answers of the row's samples that need a judge, in sample order."""
        if row.get("pass_rate_origin") not in ("rollouts", "bounds") or not row.get("reference"):
            return []
        return answers_to_judge(row.get("sample_answers"), row.get("sample_verdicts"), row.get("sample_methods"),
                                judge_weak=self.judge_weak)

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        return pl.Series("needs", [bool(self._to_judge(r)) for r in batch.iter_rows(named=True)], pl.Boolean)

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        # one line per candidate (a multi-line answer would read as several): whitespace collapsed
        candidates = "\n".join(f"{k}. {' '.join(answer.split())}" for k, answer in enumerate(self._to_judge(row), 1))
        return prompt.render(question=row.get("question") or "", reference=row["reference"], candidates=candidates)

    def _outcome(self, row: Mapping[str, Any], settled: Mapping[str, bool], note: str | None) -> dict[str, Any]:
        return settled_samples(row.get("sample_answers"), row.get("sample_verdicts"), row.get("sample_methods"),
                               samples=int(row.get("samples") or 0), failed=int(row.get("failed") or 0),
                               settled=settled, note=note)

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        answers = self._to_judge(row)
        reply = replies[0]
        if not reply.ok or not reply.choices:
            why = f"judge request failed: {reply.error or 'no choices'}"
            return Parsed(self._outcome(row, {}, why), failure=why)
        read = parse_sample_judgments(reply.choices[0].think_text(), len(answers))
        settled = {answers[n - 1]: v for n, v in read.verdicts.items()}
        if read.unread:
            first = next(iter(read.unread.items()))
            why = f"judge reply unread for {len(read.unread)} of {len(answers)} answers (answer {first[0]}: {first[1]})"
            fallback = Parsed(self._outcome(row, settled, why), failure=why if not settled else None)
            return Retry(why, fallback)
        return Parsed(self._outcome(row, settled, None))

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        origin = row.get("pass_rate_origin")
        if origin in ("rollouts", "bounds"):
            return Parsed(self._outcome(row, {}, None))
        columns = {name: row.get(name) for name, _ in PASS_RATE_SCHEMA}
        return Parsed({**columns, "judged": 0, "sample_verdicts": row.get("sample_verdicts") or [],
                       "detail": row.get("rollout_detail")})

    def finished(self, out: Parsed) -> None:
        self.samples_judged += out.columns.get("judged") or 0
        self.samples_unsettled += out.columns.get("undecided") or 0
        self.rows_with_bounds += out.columns.get("pass_rate_origin") == "bounds"

    def extra_metadata(self) -> dict[str, Any]:
        return {"samples_judged": self.samples_judged, "samples_still_undecided": self.samples_unsettled,
                "rows_with_pass_rate_bounds": self.rows_with_bounds}
