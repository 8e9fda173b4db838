"""Which existing annotations (teacher caption, teacher reasoning trace) a row can keep.

The columns are renamed from the card's model-specific names to what they are (`caption`,
`response`), with an `*_origin` column saying where each came from, because later issues fill
the gaps with other teachers.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

ORIGIN_DATASET = "dataset"
ORIGIN_MISSING = "missing"

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


def has_text(column: str) -> pl.Expr:
    """A usable annotation: present and not only whitespace."""
    return pl.col(column).is_not_null() & (pl.col(column).str.strip_chars().str.len_chars() > 0)


def existing_annotations(cleaned: pl.DataFrame) -> pl.DataFrame:
    """Map a batch of `cleaned` rows to the distilled columns, keeping valid annotations."""
    return cleaned.select(
        "subset",
        "id",
        "source",
        "original_question",
        "original_answer",
        "question",
        "answer",
        pl.when(has_text("qwen3vl_235b_instruct_caption"))
        .then(pl.col("qwen3vl_235b_instruct_caption"))
        .alias("caption"),
        pl.when(has_text("qwen3vl_235b_instruct_caption"))
        .then(pl.lit(ORIGIN_DATASET))
        .otherwise(pl.lit(ORIGIN_MISSING))
        .alias("caption_origin"),
        pl.when(has_text("qwen3vl_235b_thinking_response"))
        .then(pl.col("qwen3vl_235b_thinking_response"))
        .alias("response"),
        pl.when(has_text("qwen3vl_235b_thinking_response"))
        .then(pl.lit(ORIGIN_DATASET))
        .otherwise(pl.lit(ORIGIN_MISSING))
        .alias("response_origin"),
        pl.col("qwen3vl_4b_pass_rate").alias("pass_rate"),
        "is_consistent",
        "consistency_analysis",
        "image_sha256",
        "image_width",
        "image_height",
    )
