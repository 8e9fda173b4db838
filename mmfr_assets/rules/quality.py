"""The published quality selection rules, vectorized over a batch.

Filters run in order (content, structure, repetition, correctness) and a row gets the first
reason that fails, so per-filter counts form a funnel. Thresholds come from `QualityRules`
(the asset's config); `None` switches a length rule off.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mmfr_assets.rules.repetition import confirm_repeated
from mmfr_assets.rules.words import (
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
# Reason codes inside `_decide` (never stored: the lake records the reason's name): 0 keeps the
# row, then every reason in the order tested. A condition is written beside its reason's name,
# so inserting a reason in FILTERS moves no other rule.
_REASONS = [None, *(r for f in FILTERS for r in f.reasons)]
_CODE = {r: code for code, r in enumerate(_REASONS) if r is not None}
# The rules `_decide` tests in one vectorized pass; repetition and correctness come after.
_SCANNED = tuple(r for f in FILTERS if f.name in ("content", "structure") for r in f.reasons)

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
    ngram_size: int = 50  # the repetition rule: an n-gram of this many think-block words ...
    ngram_min_count: int = 3  # ... occurring this many times drops the row
    answer_tag_exempt_subsets: tuple[str, ...] = field(default=ANSWER_TAG_EXEMPT_SUBSETS)


def quality_reason(frame: pl.DataFrame, rules: QualityRules) -> pl.Series:
    """The first failing reason per row of a distilled batch (null = keep)."""
    return _decide(frame, rules).reasons()


@dataclass
class _Decision:
    """What `_decide` found in a batch: the reason code per row and what the details of the
    dropped rows are made from."""

    code: np.ndarray
    scan: np.ndarray
    caption_words: np.ndarray
    repeated: dict[int, tuple[list[str], int]]  # row -> (the repeated n-gram, its occurrences)

    def reasons(self) -> pl.Series:
        return pl.Series("reason", _REASONS, pl.String).gather(self.code)


def _decide(frame: pl.DataFrame, rules: QualityRules) -> _Decision:
    """The reason code of every row of a distilled batch (0 = keep).

    One compiled pass over each response's UTF-8 bytes (`scan_responses`, both cores) gives
    what the content and structure rules test: `str.split()` word counts, blankness as
    `str.strip_chars()` sees it, the counts, first positions and order of the think and answer
    tags (byte offsets: the tags are ASCII, so comparing them is comparing character positions),
    and the think block's hashed n-gram windows. A row flagged by the hash is confirmed exactly,
    and only if it passed content and structure.
    """
    height = frame.height
    n, min_count = rules.ngram_size, rules.ngram_min_count
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
    conditions = {
        "content_error_marker": error,
        # `strip_chars()` leaves nothing exactly when there is no word and no whitespace it keeps
        "content_missing_response": ~response.valid | ((words == 0) & (scan[:, KEPT_WHITESPACE] == 0)),
        "content_short_response":
            no_rule if rules.min_response_words is None else words < rules.min_response_words,
        "content_missing_caption": ~caption.valid | ((caption_words == 0) & (caption_kept == 0)),
        "content_short_caption":
            no_rule if rules.min_caption_words is None else caption_words < rules.min_caption_words,
        "structure_think_tags": (scan[:, THINK_OPEN] != 1)
        | (scan[:, THINK_CLOSE] != 1)
        | (scan[:, THINK_OPEN_AT] > scan[:, THINK_CLOSE_AT]),
        "structure_answer_unbalanced": checked & ((opens != closes) | (opens == 0)),
        "structure_answer_malformed": checked & (scan[:, ANSWER_ALTERNATE] == 0),
        "structure_answer_inside_think": checked & (scan[:, ANSWER_PAIR_OUTSIDE] == 0),
    }
    if set(conditions) != set(_SCANNED):
        raise RuntimeError(f"content/structure reasons without a condition, or the reverse: "
                           f"{sorted(set(conditions) ^ set(_SCANNED))}")
    code = np.select([conditions[r] for r in _SCANNED], [_CODE[r] for r in _SCANNED], 0)
    # Repetition: rows that passed content and structure, flagged by the hash, confirmed exactly.
    repeated: dict[int, tuple[list[str], int]] = {}
    for row in np.flatnonzero((code == 0) & ((scan[:, REPEATED] == 1) | (n < 1))):
        begin = int(scan[row, THINK_OPEN_AT]) + len("<think>")
        think = response.text(row, begin, int(scan[row, THINK_CLOSE_AT])).split()
        if confirm_repeated(think, int(scan[row, REPEATED_AT]), n, min_count):
            code[row] = _CODE["repetition_ngram"]
            repeated[int(row)] = most_repeated_ngram(think, int(scan[row, REPEATED_AT]), n)
    correctness = np.select(
        [unverified, inconsistent],
        [_CODE["correctness_unverified"], _CODE["correctness_inconsistent"]],
        0,
    )
    code = np.where(code == 0, correctness, code)
    return _Decision(code, scan, caption_words, repeated)


def most_repeated_ngram(words: list[str], at: int, n: int) -> tuple[list[str], int]:
    """The n-gram the repetition rule found and how often it occurs (for the drop's detail):
    the window the hash flagged at word `at` if it is repeated, else (a hash collision) the most
    frequent window, counted the published way. Only dropped rows get here."""
    if n >= 1 and 0 <= at <= len(words) - n:
        target = words[at : at + n]
        count = sum(words[i : i + n] == target for i in range(len(words) - n + 1))
        if count > 1:
            return target, count
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = counts.most_common(1)[0] if counts else ((), 0)
    return list(gram), count


def _quoted(text, limit: int = 80) -> str:
    text = " ".join(str(text).split()) if text is not None else ""
    return f"«{text[:limit]}{'…' if len(text) > limit else ''}»" if text else "(none)"


# The columns `quality_filtered` joins from `answer_verdicts` to say who decided a verdict
# (dropped from the kept rows).
VERDICT_COLUMNS = ("_verdict_method", "_verdict_analysis", "_verdict_final_answer", "_verdict_reference")


def _detail(reason: str, frame: pl.DataFrame, row: int, d: _Decision, rules: QualityRules) -> str:
    """What failed, for a person reading the drop: the measured value against its threshold,
    the tag counts, the repeated n-gram, the verdict and who decided it."""
    scan = d.scan[row]
    values = frame.row(row, named=True)
    if reason == "content_error_marker":
        return f"the response contains the error marker {rules.error_marker!r}"
    if reason == "content_missing_response":
        return "no response" if values.get("response") is None else "the response is blank"
    if reason == "content_short_response":
        return f"response has {int(scan[WORDS])} words < {rules.min_response_words} (min_response_words)"
    if reason == "content_missing_caption":
        return "no caption" if values.get("caption") is None else "the caption is blank"
    if reason == "content_short_caption":
        return f"caption has {int(d.caption_words[row])} words < {rules.min_caption_words} (min_caption_words)"
    if reason == "structure_think_tags":
        opens, closes = int(scan[THINK_OPEN]), int(scan[THINK_CLOSE])
        if opens == closes == 1:
            return "</think> comes before <think>"
        return f"<think> occurs {opens} times and </think> {closes} times (exactly one of each needed)"
    if reason == "structure_answer_unbalanced":
        opens, closes = int(scan[ANSWER_OPEN]), int(scan[ANSWER_CLOSE])
        if opens == closes == 0:
            return "no <answer>…</answer> pair"
        return f"<answer> occurs {opens} times and </answer> {closes} times (equal counts needed)"
    if reason == "structure_answer_malformed":
        return "<answer> and </answer> do not alternate (a tag opened twice, or closed before it opened)"
    if reason == "structure_answer_inside_think":
        return "every <answer>…</answer> pair is inside the think block (one outside it is needed)"
    if reason == "repetition_ngram":
        gram, count = d.repeated.get(row, ([], 0))
        shown = " ".join(gram[:12]) + (" …" if len(gram) > 12 else "")
        return (f"a {rules.ngram_size}-word sequence occurs {count} times in the think block "
                f"(limit {rules.ngram_min_count - 1}): «{shown}»")
    method = values.get("_verdict_method")
    who = f"decided by {method}" if method else "verdict from the dataset's is_consistent"
    answers = (f"final answer {_quoted(values.get('_verdict_final_answer'))} vs reference "
               f"{_quoted(values.get('_verdict_reference', values.get('answer')))}")
    if reason == "correctness_inconsistent":
        return f"inconsistent ({who}): {answers}"
    if reason == "correctness_unverified":
        why = values.get("_verdict_analysis")
        return f"no verdict ({method or 'none'}{': ' + ' '.join(str(why).split())[:200] if why else ''}): {answers}"
    return ""


def select_quality(batch: pl.DataFrame, rules: QualityRules) -> Verdicts:
    """Kept rows and drops, each drop with its detail (`_detail`); the `answer_verdicts`
    columns the batch may carry (`VERDICT_COLUMNS`) are used for details, not kept."""
    decision = _decide(batch, rules)
    reasons = decision.reasons()
    details = [None] * batch.height
    for row in np.flatnonzero(decision.code):
        details[row] = _detail(_REASONS[decision.code[row]], batch, int(row), decision, rules)
    verdicts = split_by_reason(batch, reasons, FILTER_OF, detail=pl.Series(details, dtype=pl.String))
    extra = [c for c in VERDICT_COLUMNS if c in batch.columns]
    return Verdicts(verdicts.kept.drop(extra), verdicts.dropped) if extra else verdicts
