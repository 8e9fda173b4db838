"""The published quality selection rules, vectorized over a batch.

Filters run in order (content, structure, repetition, correctness) and a row gets the first
reason that fails, so per-filter counts form a funnel. Thresholds come from `QualityRules`
(the asset's config); `None` switches a length rule off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mmfr_assets.selection.repetition import confirm_repeated
from mmfr_assets.selection.words import (
    ANSWER_ALTERNATE,
    ANSWER_CLOSE,
    ANSWER_OPEN,
    ANSWER_PAIR_OUTSIDE,
    KEPT_WHITESPACE,
    REPEATED,
    REPEATED_AT,
    THINK_CLOSE,
    THINK_CLOSE_AT,
    THINK_OPEN,
    THINK_OPEN_AT,
    WORDS,
    count_words,
    scan_responses,
    utf8_segments,
)
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
# Reason codes of `quality_reason`: 0 keeps the row, then every reason in the order tested.
_REASONS = [None, *(r for f in FILTERS for r in f.reasons)]

# Subsets whose published answers carry no <answer> tags; only the think tags are checked.
ANSWER_TAG_EXEMPT_SUBSETS = (
    "FineVision-visualwebinstruct(filtered)",
    "LLaVA-CoT",
    "FineVision-ai2d_merged",
)


@dataclass(frozen=True)
class QualityRules:
    min_response_words: int | None = 200
    min_caption_words: int | None = 100
    error_marker: str = "[ERROR]"
    ngram_size: int = 50
    max_ngram_occurrences: int = 2  # a think-block n-gram seen 3 times drops the row
    answer_tag_exempt_subsets: tuple[str, ...] = field(default=ANSWER_TAG_EXEMPT_SUBSETS)


def quality_reason(frame: pl.DataFrame, rules: QualityRules) -> pl.Series:
    """The first failing reason per row of a distilled batch (null = keep).

    One compiled pass over each response's UTF-8 bytes (`scan_responses`, both cores) gives
    what the content and structure rules test: `str.split()` word counts, blankness as
    `str.strip_chars()` sees it, the counts, first positions and order of the think and answer
    tags (byte offsets: the tags are ASCII, so comparing them is comparing character positions),
    and the think block's hashed n-gram windows. A row flagged by the hash is confirmed exactly,
    and only if it passed content and structure.
    """
    height = frame.height
    n, min_count = rules.ngram_size, rules.max_ngram_occurrences + 1
    response = utf8_segments(frame["response"])
    scan = scan_responses(response, n, min_count)
    caption = utf8_segments(frame["caption"])
    caption_words, caption_kept = count_words(caption)
    exempt = list(rules.answer_tag_exempt_subsets)
    flags = frame.select(
        pl.col("response").str.contains(rules.error_marker, literal=True).fill_null(False),
        # a null subset gives a null `~is_in`, which `when` reads as false: answers not checked
        (~pl.col("subset").is_in(exempt)).fill_null(False),
        pl.col("is_consistent").is_null().alias("unverified"),
        (~pl.col("is_consistent")).fill_null(False).alias("inconsistent"),
    )
    error, checked, unverified, inconsistent = (c.to_numpy() for c in flags.iter_columns())
    words = scan[:, WORDS]
    no_rule = np.zeros(height, np.bool_)
    opens, closes = scan[:, ANSWER_OPEN], scan[:, ANSWER_CLOSE]
    conditions = [  # in the order of _REASONS[1:10]
        error,
        # `strip_chars()` leaves nothing exactly when there is no word and no whitespace it keeps
        ~response.valid | ((words == 0) & (scan[:, KEPT_WHITESPACE] == 0)),
        no_rule if rules.min_response_words is None else words < rules.min_response_words,
        ~caption.valid | ((caption_words == 0) & (caption_kept == 0)),
        no_rule if rules.min_caption_words is None else caption_words < rules.min_caption_words,
        (scan[:, THINK_OPEN] != 1)
        | (scan[:, THINK_CLOSE] != 1)
        | (scan[:, THINK_OPEN_AT] > scan[:, THINK_CLOSE_AT]),
        checked & ((opens != closes) | (opens == 0)),
        checked & (scan[:, ANSWER_ALTERNATE] == 0),
        checked & (scan[:, ANSWER_PAIR_OUTSIDE] == 0),
    ]
    code = np.select(conditions, np.arange(1, len(conditions) + 1), 0)
    # Repetition: rows that passed content and structure, flagged by the hash, confirmed exactly.
    for row in np.flatnonzero((code == 0) & ((scan[:, REPEATED] == 1) | (n < 1))):
        begin = int(scan[row, THINK_OPEN_AT]) + len("<think>")
        think = response.text(row, begin, int(scan[row, THINK_CLOSE_AT]))
        if confirm_repeated(think.split(), int(scan[row, REPEATED_AT]), n, min_count):
            code[row] = _REASONS.index("repetition_ngram")
    correctness = np.select(
        [unverified, inconsistent],
        [_REASONS.index("correctness_unverified"), _REASONS.index("correctness_inconsistent")],
        0,
    )
    code = np.where(code == 0, correctness, code)
    return pl.Series("reason", _REASONS, pl.String).gather(code)


def select_quality(batch: pl.DataFrame, rules: QualityRules) -> Verdicts:
    return split_by_reason(batch, quality_reason(batch, rules), FILTER_OF)
