"""The `distilled` row: the cleaned text with the caption and reasoning response it is trained
with, renamed from the card's model-specific columns to what they are, each with its origin."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

DISTILLED_SCHEMA = pa.schema(
    [
        ("subset", pa.string()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("original_question", pa.string()),
        ("original_answer", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("caption", pa.string()),
        ("caption_origin", pa.string()),
        ("response", pa.string()),
        ("response_origin", pa.string()),
        ("pass_rate", pa.float64()),
        ("is_consistent", pa.bool_()),
        ("consistency_analysis", pa.string()),
        ("image_sha256", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
    ]
)
# What `distilled` reads of `cleaned`: everything but the image bytes.
CLEANED_TEXT_COLUMNS = [
    "subset", "id", "source", "original_question", "original_answer", "question", "answer",
    "qwen3vl_235b_instruct_caption", "qwen3vl_235b_thinking_response", "qwen3vl_4b_pass_rate",
    "is_consistent", "consistency_analysis", "image_sha256", "image_width", "image_height",
]


def assemble(cleaned: pl.DataFrame) -> pl.DataFrame:
    """Distilled rows from a batch of cleaned rows joined with their annotation columns
    (`caption`, `caption_origin`, `response`, `response_origin`: the teachers' tables)."""
    return cleaned.select(
        "subset", "id", "source", "original_question", "original_answer", "question", "answer",
        "caption", "caption_origin", "response", "response_origin",
        pl.col("qwen3vl_4b_pass_rate").alias("pass_rate"),
        "is_consistent", "consistency_analysis", "image_sha256", "image_width", "image_height",
    )
