"""The two teachers as declared model steps: the reasoning trace (`cot_teacher`) and the dense
caption (`caption_teacher`) of every cleaned row.

As in the paper, the thinking teacher sees the image and the question only, never the caption,
and the caption teacher sees only the image. A generated text must pass the selection's own
checks before it is kept (structure, length and 50-gram repetition for a trace, length for a
caption); one that fails is asked again with a new seed, up to `max_attempts`, and otherwise
kept with its failure recorded, so that selection drops it with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step import ModelStep, Parsed, Retry
from mmfr_assets.model_step.asset import ModelStepConfig
from mmfr_assets.prompts import Prompt
from mmfr_assets.selection import quality

ORIGIN_DATASET = "dataset"  # the source's annotation, kept
ORIGIN_GENERATED = "generated"  # written by the teacher in this pipeline and passed validation
ORIGIN_REJECTED = "rejected"  # written, but no attempt passed validation (see *_error)
ORIGIN_FAILED = "failed"  # the teacher was asked and never answered usably (see *_error)
ORIGIN_MISSING = "missing"  # no usable annotation and no endpoint configured
ORIGINS = (ORIGIN_DATASET, ORIGIN_GENERATED, ORIGIN_REJECTED, ORIGIN_FAILED, ORIGIN_MISSING)


class TeacherConfig(ModelStepConfig):
    regenerate: bool = False  # also replace the dataset's own annotations (distil again)
    max_attempts: int = 3  # asks per row until a generated text passes validation
    samples_per_question: int = 1  # drawn per ask; the first that passes is kept


class CaptionTeacherConfig(TeacherConfig):
    min_caption_words: int = 100  # as quality_filtered's rule


class CotTeacherConfig(TeacherConfig):
    min_response_words: int = 200  # the selection's rules, as quality_filtered's defaults
    ngram_size: int = 50
    max_ngram_occurrences: int = 2


def usable(column: str) -> pl.Expr:
    """A usable annotation: present and not only whitespace."""
    return pl.col(column).is_not_null() & (pl.col(column).str.strip_chars().str.len_chars() > 0)


def trace_problem(trace: str, subset: str, config: CotTeacherConfig) -> str | None:
    """The selection's first failing content/structure/repetition reason for a trace alone, or
    None. The rules are the selection's own (`quality.quality_reason`); caption and correctness
    are judged elsewhere, so they are given as passing here."""
    rules = quality.QualityRules(
        min_response_words=config.min_response_words, min_caption_words=None,
        ngram_size=config.ngram_size, max_ngram_occurrences=config.max_ngram_occurrences,
    )
    frame = pl.DataFrame(
        {"subset": [subset], "response": [trace], "caption": ["-"], "is_consistent": [True]},
        schema={"subset": pl.String, "response": pl.String, "caption": pl.String, "is_consistent": pl.Boolean},
    )
    return quality.quality_reason(frame, rules)[0]


def teacher_schema(column: str) -> pa.Schema:
    """A teacher table's own columns: the text, where it came from, why it failed, which model
    wrote it, and how many samples were drawn and passed validation."""
    return pa.schema([(column, pa.string()), (f"{column}_origin", pa.string()),
                      (f"{column}_error", pa.string()), (f"{column}_model", pa.string()),
                      ("samples_drawn", pa.int32()), ("samples_passed", pa.int32())])


class _Teacher(ModelStep):
    """What both teachers share: keep usable dataset annotations (unless `regenerate`), draw
    `samples_per_question` per ask, keep the first valid one, record provenance."""

    upstream = "cleaned"
    sends_image = True
    column: str  # the annotation's column in `distilled`
    dataset_column: str  # the source column holding the published annotation

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config
        self.samples = max(1, config.samples_per_question)
        self.max_attempts = max(1, config.max_attempts)

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        if self.config.regenerate:
            return pl.Series([True] * batch.height, dtype=pl.Boolean)
        return ~batch.select(usable(self.dataset_column)).to_series()

    def problem(self, text: str, row: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def text_of(self, reply: ChatResult) -> str:
        return reply.content.strip()

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        drawn = attempt * self.samples
        texts = [(self.text_of(r), r.model) for r in replies if r.ok]
        if not texts:
            # The client already retried what can pass on a retry; only a reply cut at max_tokens
            # is worth a new seed (another sample may be shorter). Anything else is a failure.
            error = next((r.error for r in replies if r.error), "no reply")
            failed = Parsed(self._columns(None, ORIGIN_FAILED, error, None, drawn, 0), failure=error)
            return Retry(error, failed) if "finish_reason=length" in error else failed
        checked = [(text, model, self.problem(text, row)) for text, model in texts]
        passing = [(text, model) for text, model, problem in checked if problem is None]
        if passing:
            text, model = passing[0]
            return Parsed(self._columns(text, ORIGIN_GENERATED, None, model, drawn, len(passing)))
        text, model, problem = checked[-1]
        return Retry(problem, Parsed(self._columns(text, ORIGIN_REJECTED, problem, model, drawn, 0)))

    def without_model(self, row: Mapping[str, Any], reason: str | None) -> Parsed:
        if reason is None:
            return Parsed(self._columns(row[self.dataset_column], ORIGIN_DATASET, None, None, 0, 0))
        return Parsed(self._columns(None, ORIGIN_MISSING, reason, None, 0, 0))

    def _columns(self, text, origin, error, model, drawn, passed) -> dict[str, Any]:
        c = self.column
        return {c: text, f"{c}_origin": origin, f"{c}_error": error, f"{c}_model": model,
                "samples_drawn": drawn, "samples_passed": passed}


class CotTeacher(_Teacher):
    asset = "teacher_responses"
    role = "cot_teacher"
    prompt = "cot_teacher"
    column = "response"
    dataset_column = "qwen3vl_235b_thinking_response"
    columns = ("question", dataset_column)
    status_column = "response_origin"
    output_schema = teacher_schema("response")

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row["question"] or "")

    def text_of(self, reply: ChatResult) -> str:
        """`<think>…</think>` then the answer, whether the server returned the reasoning
        separately (`reasoning_content`) or inline."""
        return reply.think_text()

    def problem(self, text: str, row: Mapping[str, Any]) -> str | None:
        return trace_problem(text, row["subset"], self.config)


class CaptionTeacher(_Teacher):
    asset = "teacher_captions"
    role = "caption_teacher"
    prompt = "caption_teacher"
    column = "caption"
    dataset_column = "qwen3vl_235b_instruct_caption"
    columns = (dataset_column,)
    status_column = "caption_origin"
    output_schema = teacher_schema("caption")

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render()

    def problem(self, text: str, row: Mapping[str, Any]) -> str | None:
        if len(text.split()) < self.config.min_caption_words:
            return "content_short_caption"
        return None


TEACHERS = (CaptionTeacher, CotTeacher)
