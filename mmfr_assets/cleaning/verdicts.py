"""How `cleaned` uses the model steps' verdicts on the text: pure Polars expressions.

`question_reviews` may rewrite a question (the source text stays in `original_question`), say
it has no checkable answer (the row is dropped as `text_non_answer_question`) or fail (the row
keeps its text, flagged in `question_review`, unless config drops it as `text_review_failed`).
`extracted_answers` gives an answer to rows that had only a solution; without one the solution
itself (`original_answer`) is the row's `answer_reference` for verification, and only a row with
no reference at all is dropped (`text_empty_answer`).

A batch without the verdict columns (no model steps joined: `STEP_JOINS`) is cleaned as not
reviewed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl

from mmfr_assets.cleaning.review import (
    FAILED, NON_ANSWER_STATUS, NOT_ROUTED, REWRITTEN, SKIPPED,
)
from mmfr_assets.cleaning.text import is_blank, normalize_text
from mmfr_assets.lineage import NAME
from mmfr_assets.model_step.join import joins_of, take

#: Verdict columns joined from the model steps, and their value when a batch lacks them.
VERDICT_DEFAULTS: dict[str, pl.Expr] = {
    "review_status": pl.lit(NOT_ROUTED, pl.String),
    "error_types": pl.lit([], pl.List(pl.String)),
    "corrected_question": pl.lit(None, pl.String),
    "review_error": pl.lit(None, pl.String),
    "extracted_answer": pl.lit(None, pl.String),
    "answer_error": pl.lit(None, pl.String),
    "image_count": pl.lit(None, pl.Int32),
    # collected always has these; hand-made batches may not
    "original_question": pl.lit(None, pl.String),
    "original_answer": pl.lit(None, pl.String),
}


def _present(column: str) -> pl.Expr:
    return ~is_blank(column)


def apply_text_verdicts(batch: pl.DataFrame) -> pl.DataFrame:
    """The batch's text as cleaned: normalized, rewritten where the review says so, answers
    filled from extraction, plus `answer_reference`, `answer_origin`, `question_review`,
    `question_error_types` and a `_text_detail` for drop details. Verdict columns are consumed."""
    missing = {k: v for k, v in VERDICT_DEFAULTS.items() if k not in batch.columns}
    frame = batch.with_columns(**missing) if missing else batch
    frame = frame.with_columns(
        # The source text, before any rewrite (a published row already has its own).
        pl.coalesce(pl.col("original_question"), pl.col("question")).alias("original_question"),
        pl.when(pl.col("review_status") == REWRITTEN)
        .then(pl.col("corrected_question"))
        .otherwise(pl.col("question"))
        .alias("question"),
        pl.col("extracted_answer").str.strip_chars(),
    ).with_columns(
        normalize_text("question"),
        normalize_text("answer"),
        normalize_text("original_answer").alias("_solution"),
    )
    has_answer, has_extracted, has_solution = (
        _present("answer"), _present("extracted_answer"), _present("_solution")
    )
    frame = frame.with_columns(
        pl.when(has_answer).then(pl.col("answer"))
        .when(has_extracted).then(pl.col("extracted_answer"))
        .otherwise(pl.col("answer"))
        .alias("answer"),
        pl.when(has_answer).then(pl.lit("dataset"))
        .when(has_extracted).then(pl.lit("extracted"))
        .when(has_solution).then(pl.lit("original_answer"))
        .alias("answer_origin"),
    ).with_columns(
        pl.when(pl.col("answer_origin") == "original_answer")
        .then(pl.col("_solution"))
        .otherwise(pl.col("answer"))
        .alias("answer_reference"),
        pl.col("review_status").alias("question_review"),
        pl.col("error_types").alias("question_error_types"),
    ).with_columns(
        pl.when(pl.col("review_status") == FAILED)
        .then(pl.col("review_error"))
        .when(pl.col("review_status") == NON_ANSWER_STATUS)
        .then(pl.lit("question_reviews: non-answer question"))
        .when(is_blank("answer_reference") & pl.col("answer_error").is_not_null())
        .then(pl.format("extracted_answers: {}", pl.col("answer_error")))
        .alias("_text_detail"),
    )
    return frame.drop(
        "review_status", "error_types", "corrected_question", "review_error",
        "extracted_answer", "answer_error", "_solution",
        *[c for c in ("route_reasons", "answer_origin_step") if c in frame.columns],
    )


def text_drop_reason(*, drop_failed_reviews: bool) -> pl.Expr:
    """The text filter's reason per row (null = keep), in order."""
    reason = (
        pl.when(is_blank("question"))
        .then(pl.lit("text_empty_question"))
        .when(pl.col("question_review") == NON_ANSWER_STATUS)
        .then(pl.lit("text_non_answer_question"))
    )
    if drop_failed_reviews:
        reason = reason.when(pl.col("question_review") == FAILED).then(pl.lit("text_review_failed"))
    return reason.when(is_blank("answer_reference")).then(pl.lit("text_empty_answer")).otherwise(
        pl.lit(None, pl.String)
    )


#: The model steps' columns `cleaned` reads beside each collected row (`model_step/join.py`):
#: of the question review and the answer extraction, the steps its lineage node joins.
_REVIEWS, _ANSWERS = joins_of(NAME.cleaned)
STEP_JOINS = (
    take(_REVIEWS, "review_status", "error_types", "corrected_question", "review_error"),
    take(_ANSWERS, "extracted_answer", "answer_error"),
)


class ReviewTally:
    """Counts for `cleaned`'s metadata: review verdicts, error types, answer provenance."""

    def __init__(self) -> None:
        self.statuses: Counter = Counter()
        self.error_types: Counter = Counter()
        self.answers: Counter = Counter()

    def add(self, batch: pl.DataFrame) -> None:
        if "review_status" in batch.columns:
            self.statuses.update(batch["review_status"].drop_nulls().to_list())
            self.error_types.update(batch["error_types"].explode().drop_nulls().to_list())
        if "extracted_answer" in batch.columns:
            extracted = batch["extracted_answer"].fill_null("").str.strip_chars() != ""
            self.answers.update({"extracted": int(extracted.sum())})

    def metadata(self) -> dict[str, Any]:
        reviewed = sum(n for s, n in self.statuses.items() if s not in (NOT_ROUTED, SKIPPED))
        out: dict[str, Any] = {
            "review/calls_made": reviewed,
            "review/calls_saved": self.statuses.get(NOT_ROUTED, 0),
            "review/rewritten": self.statuses.get(REWRITTEN, 0),
            "review/non_answer": self.statuses.get(NON_ANSWER_STATUS, 0),
            "review/failed": self.statuses.get(FAILED, 0),
            "review/skipped_no_endpoint": self.statuses.get(SKIPPED, 0),
            "answers/extracted": self.answers.get("extracted", 0),
        }
        out.update({f"review/error_type/{t}": n for t, n in sorted(self.error_types.items())})
        return out
