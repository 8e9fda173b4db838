"""The published quality selection rules, vectorized over a batch.

Filters run in order (content, structure, repetition, correctness) and a row gets the first
reason that fails, so per-filter counts form a funnel. Thresholds come from `QualityRules`
(the asset's config); `None` switches a length rule off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from mmfr_assets.selection.repetition import repeated_ngram_mask
from mmfr_assets.selection.words import WORD_PATTERN
from mmfr_assets.stage import Filter, Verdicts, split_by_reason

FILTERS = (
    Filter(
        "content",
        (
            "content_error_marker",
            "content_missing_response",
            "content_short_response",
            "content_missing_caption",
            "content_short_caption",
        ),
    ),
    Filter(
        "structure",
        (
            "structure_think_tags",
            "structure_answer_unbalanced",
            "structure_answer_malformed",
            "structure_answer_inside_think",
        ),
    ),
    Filter("repetition", ("repetition_ngram",)),
    Filter("correctness", ("correctness_inconsistent", "correctness_unverified")),
)
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}

# Subsets whose published answers carry no <answer> tags; only the think tags are checked.
ANSWER_TAG_EXEMPT_SUBSETS = (
    "FineVision-visualwebinstruct(filtered)",
    "LLaVA-CoT",
    "FineVision-ai2d_merged",
)
_PAIR = r"<answer>[\s\S]*?</answer>"


@dataclass(frozen=True)
class QualityRules:
    min_response_words: int | None = 200
    min_caption_words: int | None = 100
    error_marker: str = "[ERROR]"
    ngram_size: int = 50
    max_ngram_occurrences: int = 2  # a think-block n-gram seen 3 times drops the row
    answer_tag_exempt_subsets: tuple[str, ...] = field(default=ANSWER_TAG_EXEMPT_SUBSETS)


def _count(column: str, tag: str) -> pl.Expr:
    return pl.col(column).str.count_matches(tag, literal=True)


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars().str.len_chars() == 0)


def _answer_tags_alternate(column: str) -> pl.Expr:
    """Answer tags in text order are <answer>, </answer>, <answer>, </answer>, ..."""
    expected = (
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.lit("<answer>"))
        .otherwise(pl.lit("</answer>"))
    )
    return (
        pl.col(column)
        .str.extract_all(r"</?answer>")
        .list.eval((pl.element() == expected).all())
        .list.first()
        .fill_null(True)
    )


def _pair_outside_think(column: str) -> pl.Expr:
    """A complete <answer>…</answer> pair lies before <think> or after </think>.

    With well-formed alternating tags, the nearest </answer> after an <answer> is its partner,
    so a pair matched inside the prefix or the suffix is a real pair, not a straddling one.
    """
    before = pl.col(column).str.splitn("<think>", 2).struct.field("field_0")
    after = pl.col(column).str.splitn("</think>", 2).struct.field("field_1")
    return before.str.contains(_PAIR) | after.fill_null("").str.contains(_PAIR)


def think_block(column: str) -> pl.Expr:
    """The text between <think> and </think> (rows that passed the structure filter)."""
    inside = pl.col(column).str.splitn("<think>", 2).struct.field("field_1")
    return inside.str.splitn("</think>", 2).struct.field("field_0").alias("think")


def quality_reason(frame: pl.DataFrame, rules: QualityRules) -> pl.Series:
    """The first failing reason per row of a distilled batch (null = keep)."""
    words = lambda c: pl.col(c).str.count_matches(WORD_PATTERN)  # noqa: E731
    content = (
        pl.when(pl.col("response").str.contains(rules.error_marker, literal=True).fill_null(False))
        .then(pl.lit("content_error_marker"))
        .when(_blank("response"))
        .then(pl.lit("content_missing_response"))
        .when(
            pl.lit(rules.min_response_words is not None)
            & (words("response") < (rules.min_response_words or 0))
        )
        .then(pl.lit("content_short_response"))
        .when(_blank("caption"))
        .then(pl.lit("content_missing_caption"))
        .when(
            pl.lit(rules.min_caption_words is not None)
            & (words("caption") < (rules.min_caption_words or 0))
        )
        .then(pl.lit("content_short_caption"))
    )
    answers_checked = ~pl.col("subset").is_in(list(rules.answer_tag_exempt_subsets))
    opens, closes = _count("response", "<answer>"), _count("response", "</answer>")
    structure = (
        pl.when(
            (_count("response", "<think>") != 1)
            | (_count("response", "</think>") != 1)
            | (
                pl.col("response").str.find("<think>", literal=True)
                > pl.col("response").str.find("</think>", literal=True)
            )
        )
        .then(pl.lit("structure_think_tags"))
        .when(answers_checked & ((opens != closes) | (opens == 0)))
        .then(pl.lit("structure_answer_unbalanced"))
        .when(answers_checked & ~_answer_tags_alternate("response"))
        .then(pl.lit("structure_answer_malformed"))
        .when(answers_checked & ~_pair_outside_think("response"))
        .then(pl.lit("structure_answer_inside_think"))
    )
    staged = frame.select(pl.coalesce(content, structure).alias("reason"), think_block("response"))
    reason = staged["reason"]
    # Repetition is the costly rule: only rows that passed content and structure are hashed.
    candidates = reason.is_null()
    repeated = repeated_ngram_mask(
        staged["think"].filter(candidates), rules.ngram_size, rules.max_ngram_occurrences + 1
    )
    repetition = pl.Series("repetition", [None] * frame.height, pl.String).scatter(
        candidates.arg_true().filter(repeated), "repetition_ngram"
    )
    correctness = (
        pl.when(pl.col("is_consistent").is_null())
        .then(pl.lit("correctness_unverified"))
        .when(~pl.col("is_consistent"))
        .then(pl.lit("correctness_inconsistent"))
    )
    return frame.select(
        pl.coalesce(pl.lit(reason), pl.lit(repetition), correctness).alias("reason")
    ).to_series()


def select_quality(batch: pl.DataFrame, rules: QualityRules) -> Verdicts:
    return split_by_reason(batch, quality_reason(batch, rules), FILTER_OF)
