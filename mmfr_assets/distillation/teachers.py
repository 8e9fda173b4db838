"""Teacher annotations: keep the dataset's caption and reasoning trace where they are usable,
ask the teacher endpoint for the missing ones, and say for every row where its text came from.

As in the paper, the thinking teacher sees the image and the question only, never the caption,
and the caption teacher sees only the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from mmfr_assets.prompts import Prompt
from mmfr_assets.llm import ChatRequest, ChatResult, LLMEndpoint

ORIGIN_DATASET = "dataset"  # the source's annotation was usable
ORIGIN_GENERATED = "generated"  # the teacher wrote it in this pipeline
ORIGIN_FAILED = "failed"  # the teacher was asked and gave up after retries (see *_error)
ORIGIN_MISSING = "missing"  # no usable annotation and no endpoint configured
ORIGINS = (ORIGIN_DATASET, ORIGIN_GENERATED, ORIGIN_FAILED, ORIGIN_MISSING)


@dataclass(frozen=True)
class TeacherTask:
    """One kind of annotation and the endpoint role that writes it."""

    role: str  # resource key of the endpoint
    column: str  # the annotation's column in `distilled`
    dataset_column: str  # the source column holding the published annotation
    asks_question: bool  # the thinking teacher is asked the question; the captioner is not

    @property
    def asset(self) -> str:
        return f"teacher_{self.column}s"

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("subset", pa.string()),
                ("id", pa.string()),
                (self.column, pa.string()),
                (f"{self.column}_origin", pa.string()),
                (f"{self.column}_error", pa.string()),
            ]
        )

    def request(
        self, endpoint: LLMEndpoint, prompt: Prompt, question: str | None, image: bytes | None
    ) -> ChatRequest:
        text = prompt.render(question=question or "") if self.asks_question else prompt.user
        return endpoint.request(text, image=image, system=prompt.system or None)

    def text_of(self, result: ChatResult) -> str:
        """The annotation a successful result gives: a `<think>…</think>` trace followed by the
        answer for the thinking teacher (vLLM may return the reasoning separately)."""
        return result.think_text() if self.asks_question else result.content


COT = TeacherTask("cot_teacher", "response", "qwen3vl_235b_thinking_response", asks_question=True)
CAPTION = TeacherTask("caption_teacher", "caption", "qwen3vl_235b_instruct_caption", asks_question=False)


def usable(column: str) -> pl.Expr:
    """A usable annotation: present and not only whitespace."""
    return pl.col(column).is_not_null() & (pl.col(column).str.strip_chars().str.len_chars() > 0)


def rows_needing(batch: pl.DataFrame, task: TeacherTask) -> pl.Series:
    return ~batch.select(usable(task.dataset_column)).to_series()


def annotate(
    batch: pl.DataFrame,
    task: TeacherTask,
    generated: dict[str, ChatResult] | None,
) -> pl.DataFrame:
    """The teacher table's rows for a batch of `cleaned` rows.

    `generated` holds the endpoint's results for the rows that needed one (None: no endpoint).
    """
    need = rows_needing(batch, task).to_list()
    ids = batch["id"].to_list()
    existing = batch[task.dataset_column].to_list()
    texts: list[str | None] = []
    origins: list[str] = []
    errors: list[str | None] = []
    for row_id, needed, text in zip(ids, need, existing):
        if not needed:
            texts.append(text), origins.append(ORIGIN_DATASET), errors.append(None)
        elif generated is None:
            texts.append(None), origins.append(ORIGIN_MISSING), errors.append(None)
        elif generated[row_id].ok:
            texts.append(task.text_of(generated[row_id]))
            origins.append(ORIGIN_GENERATED), errors.append(None)
        else:
            texts.append(None), origins.append(ORIGIN_FAILED), errors.append(generated[row_id].error)
    return pl.DataFrame(
        {
            "subset": batch["subset"],
            "id": ids,
            task.column: pl.Series(texts, dtype=pl.String),
            f"{task.column}_origin": origins,
            f"{task.column}_error": pl.Series(errors, dtype=pl.String),
        }
    )


def origin_counts(frame: pl.DataFrame, task: TeacherTask) -> dict[str, int]:
    counts = dict(frame[f"{task.column}_origin"].value_counts().iter_rows())
    return {origin: counts.get(origin, 0) for origin in ORIGINS}
