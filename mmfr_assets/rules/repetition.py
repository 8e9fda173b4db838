"""The repetition rule: some n-gram of words occurs at least `min_count` times in a text.

The published code counts n-word tuples with a `Counter`, row by row: 2,000 words make 2,000
tuples of 50 strings each. Here a compiled kernel (`words.flag_repeated_windows`, or the think
block inside `words.scan_responses`) reads each text's UTF-8 bytes once, straight from the Arrow
buffers: words are `str.split()` words, each hashed as it is read (FNV-1a), every window of n
words gets a polynomial rolling hash (odd multiplier, modulo 2^64), and window hashes are
counted in an open-addressing table, stopping at the first hash seen `min_count` times. Equal
windows always have equal hashes, so a hash can only produce false alarms, never misses: a
flagged row is confirmed exactly, by counting the flagged window's real occurrences, and falls
back to the published algorithm if they are too few (a hash collision).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

from mmfr_assets.rules.words import flag_repeated_windows, utf8_segments


def has_repeated_ngram(words: list[str], n: int, min_count: int) -> bool:
    """The published check, exactly: any n-word tuple occurring >= min_count times."""
    if len(words) < n:
        return False
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return max(counts.values()) >= min_count


def confirm_repeated(words: list[str], at: int, n: int, min_count: int) -> bool:
    """Exactly: does `words` hold an n-gram >= min_count times, given that the one starting at
    word `at` was flagged? Counts that window's real occurrences; if they are too few (a hash
    collision), answers with the published algorithm."""
    if n >= 1 and 0 <= at <= len(words) - n:
        target = words[at : at + n]
        hits, i = 0, -1
        while True:
            try:
                i = words.index(target[0], i + 1, len(words) - n + 1)
            except ValueError:
                break
            if words[i : i + n] == target:
                hits += 1
                if hits >= min_count:
                    return True
    return has_repeated_ngram(words, n, min_count)


def repeated_ngram_mask(texts: pl.Series, n: int = 50, min_count: int = 3) -> pl.Series:
    """Boolean per text: True where some n-gram of its words occurs >= min_count times."""
    segments = utf8_segments(texts)
    flagged = flag_repeated_windows(segments, n, min_count)
    flags = np.zeros(segments.length, np.bool_)
    for r in np.flatnonzero(flagged[:, 0]):
        flags[r] = confirm_repeated(segments.text(r).split(), int(flagged[r, 1]), n, min_count)
    return pl.Series(texts.name, flags)
