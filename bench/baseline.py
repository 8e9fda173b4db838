"""The published selection, written the published way: one Python call per example.

`datasets.Dataset.filter(keep, num_proc=...)` over whole examples; each rule reads the example
dict; the repetition rule counts 50-word tuples of the think block with a `Counter`. The rules
and their order are those of docs/stage-selection.md / `mmfr_assets.rules.quality` (first failing reason
wins); words are `str.split()` words. Nothing here is vectorized on purpose: this is what ours
is measured against.
"""

from __future__ import annotations

import re
from collections import Counter

from mmfr_assets.rules.quality import ANSWER_TAG_EXEMPT_SUBSETS

MIN_RESPONSE_WORDS = 200
MIN_CAPTION_WORDS = 100
ERROR_MARKER = "[ERROR]"
NGRAM_SIZE = 50
MAX_NGRAM_OCCURRENCES = 2  # a think-block n-gram seen 3 times drops the row
EXEMPT = frozenset(ANSWER_TAG_EXEMPT_SUBSETS)
_ANSWER_TAG = re.compile(r"</?answer>")


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def content_reason(example: dict) -> str | None:
    response, caption = example["response"], example["caption"]
    if response is not None and ERROR_MARKER in response:
        return "content_error_marker"
    if _blank(response):
        return "content_missing_response"
    if len(response.split()) < MIN_RESPONSE_WORDS:
        return "content_short_response"
    if _blank(caption):
        return "content_missing_caption"
    if len(caption.split()) < MIN_CAPTION_WORDS:
        return "content_short_caption"
    return None


def structure_reason(example: dict) -> str | None:
    response = example["response"]
    if response.count("<think>") != 1 or response.count("</think>") != 1:
        return "structure_think_tags"
    think_open, think_close = response.index("<think>"), response.index("</think>")
    if think_open > think_close:
        return "structure_think_tags"
    if example["subset"] in EXEMPT:
        return None
    opens, closes = response.count("<answer>"), response.count("</answer>")
    if opens != closes or opens == 0:
        return "structure_answer_unbalanced"
    tags = [(m.start(), m.group()) for m in _ANSWER_TAG.finditer(response)]
    if any(tag != ("<answer>", "</answer>")[i % 2] for i, (_, tag) in enumerate(tags)):
        return "structure_answer_malformed"
    pairs = [(tags[i][0], tags[i + 1][0] + len("</answer>")) for i in range(0, len(tags), 2)]
    think_end = think_close + len("</think>")
    if not any(end <= think_open or start >= think_end for start, end in pairs):
        return "structure_answer_inside_think"
    return None


def repetition_reason(example: dict) -> str | None:
    response = example["response"]
    think = response[response.index("<think>") + len("<think>") : response.index("</think>")]
    words = think.split()
    if len(words) < NGRAM_SIZE:
        return None
    counts = Counter(tuple(words[i : i + NGRAM_SIZE]) for i in range(len(words) - NGRAM_SIZE + 1))
    if max(counts.values()) > MAX_NGRAM_OCCURRENCES:
        return "repetition_ngram"
    return None


def correctness_reason(example: dict) -> str | None:
    if example["is_consistent"] is None:
        return "correctness_unverified"
    if not example["is_consistent"]:
        return "correctness_inconsistent"
    return None


def quality_reason(example: dict) -> str | None:
    """The first failing reason of one example (None = keep)."""
    for rule in (content_reason, structure_reason, repetition_reason, correctness_reason):
        reason = rule(example)
        if reason is not None:
            return reason
    return None


def keep(example: dict) -> bool:
    return quality_reason(example) is None


def filter_dataset(dataset, num_proc: int | None = 2):
    """The published call: `Dataset.filter` with one Python call per whole example."""
    return dataset.filter(keep, num_proc=num_proc, desc="baseline quality filter")
