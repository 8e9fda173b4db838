"""Final answers extracted by `answer_llm` from worked solutions, as a model step.

Many sources give a full solution (`original_answer`) but no short answer: the published
cleaning dropped such rows as `text_empty_answer` although the selection keeps them. Rows with
an empty `answer` and a non-empty `original_answer` are sent to `answer_llm`, which writes the
solution's final result in `<answer>…</answer>` (empty when the solution reaches none). The
`extracted_answers` table says for every row where its answer comes from: `dataset` (the
source's), `extracted`, `failed` (asked, no usable answer: see `answer_error`), `missing` (no
endpoint configured) or `absent` (neither an answer nor a solution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import Field

from mmfr_assets.lineage import NAME
from mmfr_assets.llm.replies import snippet, strip_thinking, tag_contents
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step.declaration import ModelStep, ModelStepConfig, Parsed, Retry
from mmfr_assets.prompts import Prompt

DATASET = "dataset"
EXTRACTED = "extracted"
FAILED = "failed"
MISSING = "missing"
ABSENT = "absent"
ORIGINS = (DATASET, EXTRACTED, FAILED, MISSING, ABSENT)

ANSWER_SCHEMA = pa.schema(
    [
        ("extracted_answer", pa.string()),
        ("answer_origin", pa.string()),
        ("answer_error", pa.string()),
    ]
)


class NoAnswerTag(ValueError):
    """The reply has no `<answer>…</answer>`."""


def parse_extracted_answer(content: str) -> str:
    """The final answer in one reply's content: the last `<answer>` pair outside thinking,
    stripped, LaTeX untouched; "" when the model says there is none. Raises `NoAnswerTag`."""
    text = strip_thinking(content)
    answers = tag_contents(text, "answer")
    if not answers:
        raise NoAnswerTag(f"no <answer>...</answer> in the reply: {snippet(text)!r}")
    return answers[-1].strip()


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars().str.len_chars() == 0)


def rows_needing_extraction(batch: pl.DataFrame) -> pl.Series:
    """Rows with no answer but a solution to take it from."""
    return batch.select((_blank("answer") & ~_blank("original_answer")).alias("needs")).to_series()


def _columns(answer: str | None, origin: str, error: str | None) -> dict[str, Any]:
    return {"extracted_answer": answer, "answer_origin": origin, "answer_error": error}


class AnswerExtractionConfig(ModelStepConfig):
    max_attempts: int = Field(2, ge=1, description=(
        "Asks per row: a reply without <answer> tags is asked again with a new seed up to this many times."))


class AnswerExtraction(ModelStep):
    """The `extracted_answers` step: a short final answer for rows that have only a solution."""

    asset = NAME.extracted_answers
    config_class = AnswerExtractionConfig
    role = "answer_llm"
    columns = ("question", "answer", "original_answer")
    prompt = "answer_extraction"
    output_schema = ANSWER_SCHEMA
    status_column = "answer_origin"
    description = (
        "A short final answer for every collected row whose `answer` is empty but whose "
        "`original_answer` holds a solution, extracted by `answer_llm` (`<answer>...</answer>`, "
        "LaTeX kept); `answer_origin` says dataset, extracted, failed, missing (no endpoint) or "
        "absent (no solution either).")
    reason_column = "answer_error"
    skipped_status = MISSING

    def __init__(self, config: AnswerExtractionConfig | None = None) -> None:
        self.max_attempts = (config or AnswerExtractionConfig()).max_attempts

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        return rows_needing_extraction(batch)

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row.get("question") or "", solution=row.get("original_answer") or "")

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        reply = replies[0]
        if not reply.ok:
            error = f"request failed: {reply.error}"
            return Parsed(_columns(None, FAILED, error), failure=error)
        try:
            answer = parse_extracted_answer(reply.content)
        except NoAnswerTag as error:
            fallback = Parsed(_columns(None, FAILED, str(error)), failure=str(error))
            return Retry(str(error), fallback) if attempt < self.max_attempts else fallback
        if not answer:
            # A clear reply, not a model failure: the solution states no final result.
            return Parsed(_columns(None, FAILED, "the solution reaches no final answer"))
        return Parsed(_columns(answer, EXTRACTED, None))

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        has_answer = bool((row.get("answer") or "").strip())
        return Parsed(_columns(None, DATASET if has_answer else ABSENT, None))
