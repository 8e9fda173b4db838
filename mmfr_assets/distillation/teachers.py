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
from mmfr_assets.selection.verify import AnswerVerifier, Item, final_answer, reference_answer

#: The cleaned columns a trace's answer is checked against, in order (cleaning puts an
#: extracted answer in `answer`; a solution in `original_answer` is the last resort).
REFERENCE_COLUMNS = ("answer", "original_answer")

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
    # Where the row has a reference answer, a trace whose final answer the verifier finds
    # different is asked again (rules, then math-verify; undecided ones are kept and left to
    # `answer_verdicts`).
    check_answer: bool = True


def usable(column: str) -> pl.Expr:
    """A usable annotation: present and not only whitespace."""
    return pl.col(column).is_not_null() & (pl.col(column).str.strip_chars().str.len_chars() > 0)


def trace_problems(traces: Sequence[str], subsets: Sequence[str], config: CotTeacherConfig) -> list[str | None]:
    """The selection's first failing content/structure/repetition reason for each trace alone,
    or None, in one vectorized pass. The rules are the selection's own
    (`quality.quality_reason`); caption and correctness are judged elsewhere, so they are given
    as passing here."""
    rules = quality.QualityRules(
        min_response_words=config.min_response_words, min_caption_words=None,
        ngram_size=config.ngram_size, max_ngram_occurrences=config.max_ngram_occurrences,
    )
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
    columns = ("question", dataset_column, *REFERENCE_COLUMNS)
    status_column = "response_origin"
    output_schema = teacher_schema("response")

    def __init__(self, config: CotTeacherConfig) -> None:
        super().__init__(config)
        self._verifier: AnswerVerifier | None = None  # started on the first trace to check
        # Load the selection's compiled kernels (numba) now, before the first request: the
        # first call takes seconds holding the GIL, and on the first reply it would stall the
        # request window while the endpoint idles (measured by bench/model_step.py).
        trace_problems(["<think>warm-up</think><answer>0</answer>"], ["warm-up"], config)

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def problems(self, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The selection's rules on every trace at once, then, for those that pass and whose row
        has a reference, the answer check: `correctness_inconsistent` when the final answer is
        decidedly not the reference (no reference, or no decision: kept for `answer_verdicts`)."""
        found = trace_problems(texts, [row["subset"] for row in rows], self.config)
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
                if verdict.equivalent is False:
                    found[k] = "correctness_inconsistent"
        return found

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row["question"] or "")

    def text_of(self, reply: ChatResult) -> str:
        """`<think>…</think>` then the answer, whether the server returned the reasoning
        separately (`reasoning_content`) or inline."""
        return reply.think_text()



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

    def problems(self, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
        minimum = self.config.min_caption_words
        return ["content_short_caption" if len(text.split()) < minimum else None for text in texts]


TEACHERS = (CaptionTeacher, CotTeacher)
