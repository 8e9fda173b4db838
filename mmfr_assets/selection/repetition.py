"""The repetition rule: some n-gram of words occurs at least `min_count` times in a text.

The published code counts n-word tuples with a `Counter`, row by row: 2,000 words make 2,000
tuples of 50 strings each. Here a whole batch is hashed at once: words are hashed by Polars,
every window of n words gets a polynomial rolling hash computed with NumPy prefix sums (the
multiplier is odd, hence invertible modulo 2^64), and repeated (row, window-hash) pairs are
counted. A hash can only produce false alarms, never misses, so flagged rows are re-checked
exactly with the published algorithm.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

from mmfr_assets.selection.words import WORD_PATTERN

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd
_INVERSE = np.uint64(pow(int(_MULTIPLIER), -1, 2**64))


def has_repeated_ngram(words: list[str], n: int, min_count: int) -> bool:
    """The published check, exactly: any n-word tuple occurring >= min_count times."""
    if len(words) < n:
        return False
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return max(counts.values()) >= min_count


def repeated_ngram_mask(texts: pl.Series, n: int = 50, min_count: int = 3) -> pl.Series:
    """Boolean per text: True where some n-gram of its words occurs >= min_count times."""
    rows = len(texts)
    flags = np.zeros(rows, dtype=bool)
    tokens = (
        pl.DataFrame({"text": texts})
        .with_row_index("row")
        .select("row", pl.col("text").fill_null("").str.extract_all(WORD_PATTERN).alias("word"))
        .explode("word")
        .drop_nulls("word")
    )
    if tokens.height >= n:
        row = tokens["row"].to_numpy()
        hashes = tokens["word"].hash(seed=7).to_numpy()
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(len(hashes), _MULTIPLIER, dtype=np.uint64))
            inverse_powers = np.cumprod(np.full(len(hashes), _INVERSE, dtype=np.uint64))
            prefix = np.concatenate(([np.uint64(0)], np.cumsum(hashes * powers)))
            starts = np.arange(len(hashes) - n + 1)
            same_row = row[starts] == row[starts + n - 1]
            starts = starts[same_row]
            window = (prefix[starts + n] - prefix[starts]) * inverse_powers[starts]
        keyed = pl.DataFrame({"row": row[starts], "window": window})
        candidates = (
            keyed.group_by("row", "window").len().filter(pl.col("len") >= min_count)["row"].unique()
        )
        values = texts.to_list()
        for r in candidates.to_list():
            flags[r] = has_repeated_ngram(values[r].split(), n, min_count)
    return pl.Series(texts.name, flags)
