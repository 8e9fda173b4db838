"""Question text as deduplication compares it: normalized words, character shingles, MinHash.

Normalization removes what two copies of one problem commonly differ by without being different
problems: case, Unicode forms, punctuation, whitespace, `<image>` placeholders, and the order
of its options (options one a line, read by the verifier's `options`, are compared as the
sorted set of their texts without letters: one problem with its options shuffled is one text). Shingles are
character 4-grams of the normalized text (measured on the real sample: a question reworded by
two or three words keeps a Jaccard similarity above 0.5 in 95% of cases, where word bigrams fell
to 0.33-0.44 on short questions; see bench/RESULTS.md). The MinHash is datasketch's.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from mmfr_assets.rules.verify.rules import options

WORD = re.compile(r"\w+")
IMAGE_TAG = re.compile(r"<image>", re.IGNORECASE)
SHINGLE_CHARS = 4
MINHASH_SEED = 1  # part of the signature: two tables compare only with the same seed and size
ASK_PERM = 64  # MinHash size of the asking line (a short text: its estimate needs fewer)


def stem_and_options(question: str) -> tuple[list[str], list[str]]:
    """`question`'s lines (NFKC) without its option lines ("A: 12", "(B) x"), and the option
    texts sorted, without their letters; ([every line], []) when it has no options one a line
    (options inline in a sentence are left in place)."""
    text = unicodedata.normalize("NFKC", question)
    lines = text.splitlines()
    choices = options(text)
    if not choices:
        return lines, []
    marks = [re.compile(rf"^\s*\(?{letter}\s*[.:)、]\s*{re.escape(option)}\s*$")
             for letter, option in choices.items()]
    stem = [line for line in lines if not any(m.match(line) for m in marks)]
    if len(lines) - len(stem) != len(choices):
        return lines, []
    return stem, sorted(choices.values())


def options_sorted(question: str) -> str:
    """`question` with its options moved to its end in a canonical order (`stem_and_options`)."""
    stem, choices = stem_and_options(question)
    return "\n".join([*stem, *choices])


def ask(question: str | None) -> str:
    """The part of a question that asks (normalized): the last line of its stem holding a word.
    A lecture or a game's rules come before it, shared by a whole template family."""
    stem, _ = stem_and_options(question or "")
    for line in reversed(stem):
        if (text := normalized(line)):
            return text
    return ""


def words(question: str | None) -> list[str]:
    """The question's words, lower-cased, NFKC-normalized, `<image>` tags removed, options in
    a canonical order (`options_sorted`)."""
    if not question:
        return []
    text = IMAGE_TAG.sub(" ", options_sorted(question)).lower()
    return WORD.findall(text)


def normalized(question: str | None) -> str:
    return " ".join(words(question))


def text_key(question: str | None) -> int:
    """A signed 64-bit key of the normalized question (Delta has no unsigned integers)."""
    digest = hashlib.blake2b(normalized(question).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_key(question: str | None) -> int:
    """A signed 64-bit key of the multiset of numbers in the question: a copy reworded keeps
    its numbers, while a template filled with other numbers ("AB = 3" / "AB = 4" over the same
    figure) is another problem with another answer."""
    found = sorted(NUMBER.findall(unicodedata.normalize("NFKC", question or "")))
    digest = hashlib.blake2b("\x1f".join(found).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def shingles(text: str, size: int = SHINGLE_CHARS) -> set[bytes]:
    """Character `size`-grams of a normalized text (the whole text when shorter)."""
    if len(text) <= size:
        return {text.encode()}
    return {text[i:i + size].encode() for i in range(len(text) - size + 1)}


def minhashes(questions: Sequence[str | None], num_perm: int) -> tuple[list[bytes], list[int]]:
    """One MinHash per question, as `num_perm` little-endian uint32 values (bytes), and the
    number of distinct shingles of each (to estimate how many differ between two questions)."""
    from datasketch import MinHash  # here: datasketch imports scipy, ~0.25 s of every run worker's start

    sets = [shingles(normalized(q)) for q in questions]
    values = [
        m.hashvalues.astype("<u4").tobytes()
        for m in MinHash.bulk(sets, num_perm=num_perm, seed=MINHASH_SEED)
    ]
    return values, [len(s) for s in sets]


def series_matrix(values, num_perm: int) -> np.ndarray:
    """A Polars Binary series of MinHashes (no nulls) as a (rows, num_perm) uint32 matrix read
    straight from its Arrow buffer: no Python bytes object per row (100,000 rows of 512 bytes
    cost 50 MB as a matrix, twice that again as a list of bytes)."""
    import pyarrow as pa

    array = values.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_binary())
    if not len(array):
        return np.zeros((0, num_perm), dtype=np.uint32)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    if array.null_count or not (np.diff(offsets) == 4 * num_perm).all():
        raise ValueError(f"MinHashes must all hold {num_perm} values")
    return np.frombuffer(array.buffers()[2], dtype="<u4", count=len(array) * num_perm,
                         offset=int(offsets[0])).reshape(len(array), num_perm)


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard estimate of two equally long MinHash matrices (share of equal values)."""
    return (left == right).mean(axis=1)


def estimated_difference(jaccard: np.ndarray, left_size: np.ndarray, right_size: np.ndarray) -> np.ndarray:
    """Shingles in one question but not the other (|A u B| - |A n B|), from the Jaccard estimate
    and both set sizes: (|A| + |B|)(1 - J)/(1 + J). A question reworded by a word differs by
    ~10-20 shingles whatever its length; two questions sharing a long preamble (a game's rules)
    but asking different things differ by hundreds even where their Jaccard is high."""
    return (left_size + right_size) * (1.0 - jaccard) / (1.0 + jaccard)
