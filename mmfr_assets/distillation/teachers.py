"""The two teachers as declared model steps: the reasoning trace (`cot_teacher`) and the dense
caption (`caption_teacher`) of every cleaned row.

As in the paper, the thinking teacher sees the image and the question only, never the caption,
and the caption teacher sees only the image. A generated text must pass the selection's own
checks before it is kept (structure, length and 50-gram repetition for a trace, length for a
caption); one that fails is asked again with a new seed, up to `max_attempts`, and otherwise
kept with its failure recorded, so that selection drops it with the reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
from pydantic import Field

from mmfr_assets.lineage import NAME
from mmfr_assets.llm.replies import is_blank
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step import ModelStep, ModelStepConfig, Parsed, Retry
from mmfr_assets.prompts import Prompt
from mmfr_assets.rules import quality
from mmfr_assets.rules.config import QUALITY_THRESHOLDS, QualityThresholds, repetition_min_count
from mmfr_assets.rules.verify import AnswerVerifier, Item, final_answer, reference_answer

#: The cleaned columns a trace's answer is checked against, in order (cleaning puts an
#: extracted answer in `answer`; a solution in `original_answer` is the last resort).
REFERENCE_COLUMNS = ("answer", "original_answer")

ORIGIN_DATASET = "dataset"  # the source's annotation, kept
ORIGIN_GENERATED = "generated"  # written by the teacher in this pipeline and passed validation
ORIGIN_REJECTED = "rejected"  # written, but no attempt passed validation (see *_error)
ORIGIN_FAILED = "failed"  # the teacher was asked and never answered usably (see *_error)
ORIGIN_MISSING = "missing"  # no usable annotation and no endpoint configured
#: Re-ask causes named for the metadata (other causes are the selection reason itself).
REASK_CAUSES = {"correctness_inconsistent": "answer_rule"}
ORIGINS = (ORIGIN_DATASET, ORIGIN_GENERATED, ORIGIN_REJECTED, ORIGIN_FAILED, ORIGIN_MISSING)


class TeacherConfig(ModelStepConfig):
    regenerate: bool = Field(
        default=False, description="Ask the teacher for every row, replacing the dataset's own "
        "annotations too (distil again); off: only rows whose annotation is missing or unusable.")
    max_attempts: int = Field(
        default=3, description="Asks per row (each with a new seed) until a generated text "
        "passes validation; the row keeps its failure after the last.")
    samples_per_question: int = Field(
        default=1, description="Texts drawn per ask (the request's n); the first that passes "
        "validation is kept.")

    def rule_overrides(self) -> dict[str, Any]:
        """The `QualityRules` fields this config sets for the teacher alone (none here)."""
        return {}


_SAME_AS_SELECTION = ("null (default): the quality_thresholds resource's value in this run, the "
                      "one quality_filtered applies, so the teacher keeps exactly what selection "
                      "keeps; a number overrides it for the teacher only.")


class CaptionTeacherConfig(TeacherConfig):
    min_caption_words: int | None = Field(default=None, description=_SAME_AS_SELECTION)

    def rule_overrides(self) -> dict[str, Any]:
        return _set(min_caption_words=self.min_caption_words)


class CotTeacherConfig(TeacherConfig):
    min_response_words: int | None = Field(default=None, description=_SAME_AS_SELECTION)
    ngram_size: int | None = Field(default=None, description=_SAME_AS_SELECTION)
    ngram_min_count: int | None = Field(default=None, description=_SAME_AS_SELECTION)
    max_ngram_occurrences: int | None = Field(
        default=None, description="The older name of the same bound (ngram_min_count - 1), kept "
        "for run configs that use it; set, it wins over ngram_min_count. " + _SAME_AS_SELECTION)
    check_answer: bool = Field(
        default=True, description="Where the row has a reference, ask again (new seed) when the "
        "trace's final answer is decidedly different: a rule that understands both sides says "
        "so. math-verify's 'different' is weak (it says so where it fails to parse) and never "
        "costs another trace: answer_verdicts' judge settles it.")

    def rule_overrides(self) -> dict[str, Any]:
        count = repetition_min_count(self.ngram_min_count, self.max_ngram_occurrences)
        return _set(min_response_words=self.min_response_words, ngram_size=self.ngram_size, ngram_min_count=count)


def _set(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def teacher_rules(selection: quality.QualityRules, config: TeacherConfig) -> quality.QualityRules:
    """The selection's thresholds, with the teacher config's explicit overrides."""
    return dataclasses.replace(selection, **config.rule_overrides())


def usable(column: str) -> pl.Expr:
    """A usable annotation: present and not only whitespace."""
    return pl.col(column).is_not_null() & (pl.col(column).str.strip_chars().str.len_chars() > 0)


def trace_problems(traces: Sequence[str], subsets: Sequence[str], rules: quality.QualityRules) -> list[str | None]:
    """The selection's first failing content/structure/repetition reason for each trace alone,
    or None, in one vectorized pass. The rules are the selection's own
    (`quality.quality_reason`) with its thresholds; caption and correctness are judged
    elsewhere, so they are given as passing here."""
    rules = dataclasses.replace(rules, min_caption_words=None)
    n = len(traces)
    frame = pl.DataFrame(
        {"subset": list(subsets), "response": list(traces), "caption": ["-"] * n, "is_consistent": [True] * n},
        schema={"subset": pl.String, "response": pl.String, "caption": pl.String, "is_consistent": pl.Boolean},
    )
    return quality.quality_reason(frame, rules).to_list()


def teacher_schema(column: str) -> pa.Schema:
    """A teacher table's own columns: the text, where it came from, why it failed, which model
    wrote it, and how many samples were drawn and passed validation."""
    return pa.schema([(column, pa.string()), (f"{column}_origin", pa.string()),
                      (f"{column}_error", pa.string()), (f"{column}_model", pa.string()),
                      ("samples_drawn", pa.int32()), ("samples_passed", pa.int32())])


class _Teacher(ModelStep):
    """What both teachers share: keep usable dataset annotations (unless `regenerate`), draw
    `samples_per_question` per ask, keep the first valid one, record provenance; validate with
    the `quality_thresholds` resource `quality_filtered` applies in the same run."""

    sends_image = True
    shared_resources = {QUALITY_THRESHOLDS: QualityThresholds}
    skipped_status = ORIGIN_MISSING
    column: str  # the annotation's column in `distilled`
    dataset_column: str  # the source column holding the published annotation

    def __init__(self, config: TeacherConfig, selection: quality.QualityRules | None = None) -> None:
        self.config = config
        self.rules = teacher_rules(selection or quality.QualityRules(), config)
        self.samples = max(1, config.samples_per_question)
        self.max_attempts = max(1, config.max_attempts)
        self.reasks: Counter = Counter()  # why a row was asked again -> times
        self.reask_tokens: Counter = Counter()  # ... and the completion tokens of what was rejected

    @classmethod
    def for_run(cls, config: TeacherConfig, run_config: Mapping[str, Any],
                resources: Mapping[str, Any] | None = None) -> "_Teacher":
        """The teacher of one run, validating with the run's `quality_thresholds` resource
        (what `quality_filtered` applies in that run) and the config's own overrides."""
        thresholds = (resources or {}).get(QUALITY_THRESHOLDS)
        if not isinstance(thresholds, QualityThresholds):
            raise TypeError(f"{cls.asset} is built with the {QUALITY_THRESHOLDS!r} resource "
                            f"(QualityThresholds), got {thresholds!r}")
        return cls(config, thresholds.rules())

    def extra_metadata(self) -> dict[str, Any]:
        """Re-asks by cause (a rule's strong "different", or the selection rule the text
        failed), with the completion tokens the rejected texts cost; and the thresholds used."""
        out: dict[str, Any] = {f"reasks/{cause}": n for cause, n in sorted(self.reasks.items())}
        out.update({f"reask_tokens/{cause}": n for cause, n in sorted(self.reask_tokens.items())})
        out["validation_thresholds"] = dg.MetadataValue.json(
            {k: v for k, v in dataclasses.asdict(self.rules).items() if k != "answer_tag_exempt_subsets"})
        return out

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        if self.config.regenerate:
            return pl.Series([True] * batch.height, dtype=pl.Boolean)
        return ~batch.select(usable(self.dataset_column)).to_series()

    def problems(self, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """Why each generated text (of the row beside it) is not kept, or None: vectorized."""
        raise NotImplementedError

    def text_of(self, reply: ChatResult) -> str:
        return reply.content.strip()

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        return self.parse_many([(row, replies, attempt)])[0]

    def parse_many(
        self, jobs: Sequence[tuple[Mapping[str, Any], Sequence[ChatResult], int]]
    ) -> list[Parsed | Retry]:
        """Every usable reply of every row checked in one `problems` call."""
        texts, owners, models = [], [], []
        for j, (_, replies, _) in enumerate(jobs):
            for reply in replies:
                if reply.ok:
                    texts.append(self.text_of(reply))
                    owners.append(j)
                    models.append(reply.model)
        problems = self.problems(texts, [jobs[j][0] for j in owners]) if texts else []
        checked: list[list[tuple[str, str, str | None]]] = [[] for _ in jobs]
        for j, text, model, problem in zip(owners, texts, models, problems):
            checked[j].append((text, model, problem))
        return [self._outcome(replies, attempt, done) for (_, replies, attempt), done in zip(jobs, checked)]

    def _outcome(self, replies: Sequence[ChatResult], attempt: int,
                 checked: list[tuple[str, str, str | None]]) -> Parsed | Retry:
        drawn = attempt * self.samples
        if not checked:
            # The client already retried what can pass on a retry; only a reply cut at max_tokens
            # is worth a new seed (another sample may be shorter). Anything else is a failure.
            error = next((r.error for r in replies if r.error), "no reply")
            failed = Parsed(self._columns(None, ORIGIN_FAILED, error, None, drawn, 0), failure=error)
            return Retry(error, failed) if "finish_reason=length" in error else failed
        passing = [(text, model) for text, model, problem in checked if problem is None]
        if passing:
            text, model = passing[0]
            return Parsed(self._columns(text, ORIGIN_GENERATED, None, model, drawn, len(passing)))
        text, model, problem = checked[-1]
        if attempt < self.max_attempts:
            cause = REASK_CAUSES.get(problem, problem)
            self.reasks[cause] += 1
            self.reask_tokens[cause] += sum(r.completion_tokens for r in replies if r.ok and not r.cached)
        return Retry(problem, Parsed(self._columns(text, ORIGIN_REJECTED, problem, model, drawn, 0)))

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        """The dataset's annotation; none where it is unusable or being replaced (`regenerate`):
        a row skipped for want of an endpoint then says `missing`, not the stale text."""
        text = row[self.dataset_column]
        keep = not self.config.regenerate and not is_blank(text)
        return Parsed(self._columns(text if keep else None, ORIGIN_DATASET, None, None, 0, 0))

    def _columns(self, text, origin, error, model, drawn, passed) -> dict[str, Any]:
        c = self.column
        return {c: text, f"{c}_origin": origin, f"{c}_error": error, f"{c}_model": model,
                "samples_drawn": drawn, "samples_passed": passed}


class CotTeacher(_Teacher):
    asset = NAME.teacher_responses
    config_class = CotTeacherConfig
    role = "cot_teacher"
    prompt = "cot_teacher"
    column = "response"
    dataset_column = "qwen3vl_235b_thinking_response"
    columns = ("question", dataset_column, *REFERENCE_COLUMNS)
    status_column = "response_origin"
    reason_column = "response_error"
    description = (
        "The <think> reasoning trace of every cleaned row: the dataset's where usable, else "
        "written by the `cot_teacher` endpoint from the image and question (never the caption), "
        "validated by the selection's rules and asked again with a new seed when invalid "
        "(cached: a re-run never pays twice).")
    output_schema = teacher_schema("response")

    def __init__(self, config: CotTeacherConfig, selection: quality.QualityRules | None = None) -> None:
        super().__init__(config, selection)
        self._verifier: AnswerVerifier | None = None  # started on the first trace to check
        self.weak_kept = 0  # traces math-verify called different, kept for the judge
        # Load the selection's compiled kernels (numba) now, before the first request: the
        # first call takes seconds holding the GIL, and on the first reply it would stall the
        # request window while the endpoint idles (measured by bench/model_step.py).
        trace_problems(["<think>warm-up</think><answer>0</answer>"], ["warm-up"], self.rules)

    def extra_metadata(self) -> dict[str, Any]:
        return {**super().extra_metadata(), "answer_check/weak_different_kept": self.weak_kept}

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def problems(self, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The selection's rules on every trace at once, then, for those that pass and whose row
        has a reference, the answer check: `correctness_inconsistent` when a rule that
        understands both sides finds the final answer different (no reference, no decision, or
        math-verify's weak "different": kept for `answer_verdicts` and its judge)."""
        found = trace_problems(texts, [row["subset"] for row in rows], self.rules)
        if not self.config.check_answer:
            return found
        checks = []
        for k, (text, row) in enumerate(zip(texts, rows)):
            reference, _ = reference_answer(row, REFERENCE_COLUMNS)
            if found[k] is None and reference is not None:
                checks.append((k, Item(final_answer(text), reference, row.get("question"))))
        if checks:
            if self._verifier is None:
                self._verifier = AnswerVerifier(workers=1)
            verdicts = self._verifier.verify_many([item for _, item in checks])
            for (k, _), verdict in zip(checks, verdicts):
                if verdict.equivalent is False and not verdict.weak:
                    found[k] = "correctness_inconsistent"
                elif verdict.weak:
                    self.weak_kept += 1
        return found

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row["question"] or "")

    def text_of(self, reply: ChatResult) -> str:
        """`<think>…</think>` then the answer, whether the server returned the reasoning
        separately (`reasoning_content`) or inline."""
        return reply.think_text()



class CaptionTeacher(_Teacher):
    asset = NAME.teacher_captions
    config_class = CaptionTeacherConfig
    role = "caption_teacher"
    prompt = "caption_teacher"
    column = "caption"
    dataset_column = "qwen3vl_235b_instruct_caption"
    columns = (dataset_column,)
    status_column = "caption_origin"
    reason_column = "caption_error"
    description = (
        "The dense caption of every cleaned row: the dataset's where usable, else written by "
        "the `caption_teacher` endpoint from the image alone, checked for length and asked again "
        "when too short (cached: a re-run never pays twice).")
    output_schema = teacher_schema("caption")

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render()

    def problems(self, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        minimum = self.rules.min_caption_words or 0
        return ["content_short_caption" if len(text.split()) < minimum else None for text in texts]


TEACHERS = (CaptionTeacher, CotTeacher)
