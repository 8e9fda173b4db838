"""Words as the published rules count them: Python's `str.split()` on whitespace.

The vectorized rules match words with a regex; its whitespace class is built from
`str.isspace` itself, because Python's whitespace (e.g. U+001C..U+001F) differs from Rust
regex's `\\s`.

The hot rules do not go through a regex: compiled kernels (numba) scan the UTF-8 bytes of a
whole batch straight from the Arrow buffers Polars already holds, split over the cores. The
byte tables below are derived from the same `str.isspace` set, so a word is still exactly a
`str.split()` word: a whitespace character is an ASCII byte or a complete multi-byte sequence,
and no byte of another character can be mistaken for one. All kernels live in this one file:
numba's on-disk cache only notices changes to a kernel's own file, so a kernel calling a helper
from another module could keep running a stale copy of it.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

PY_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
WORD_PATTERN = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]+"


def _whitespace_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Byte tables of Python whitespace, and of the whitespace Polars' `strip_chars()` keeps.

    `ascii_ws[b]`: byte b (< 0x80) is whitespace; `ascii_kept[b]`: ... that strip_chars keeps.
    `multibyte`: one row per multi-byte whitespace character, (length, byte 0, byte 1, byte 2),
    with `multibyte_kept` alongside. Asked of Polars itself, so `blank` below means exactly what
    `pl.col(c).str.strip_chars().str.len_chars() == 0` means.
    """
    stripped = pl.Series(list(PY_WHITESPACE), dtype=pl.String).str.strip_chars().to_list()
    ascii_ws = np.zeros(128, np.bool_)
    ascii_kept = np.zeros(128, np.bool_)
    multibyte, multibyte_kept = [], []
    for char, rest in zip(PY_WHITESPACE, stripped):
        encoded = char.encode("utf-8")
        if len(encoded) == 1:
            ascii_ws[encoded[0]] = True
            ascii_kept[encoded[0]] = rest != ""
        else:
            multibyte.append([len(encoded), *encoded, *([0] * (3 - len(encoded)))])
            multibyte_kept.append(rest != "")
    return (
        ascii_ws,
        ascii_kept,
        np.array(multibyte, np.uint8).reshape(-1, 4),
        np.array(multibyte_kept, np.bool_),
    )


ASCII_WS, ASCII_KEPT, MULTIBYTE_WS, MULTIBYTE_KEPT = _whitespace_tables()


@nb.njit
def _multibyte_whitespace_at(data, i, end, multibyte):
    """For a byte >= 0x80 at data[i]: the length of the whitespace character starting there
    (0: none) and its row in `multibyte`. ASCII bytes are looked up inline by the kernels."""
    c = data[i]
    for k in range(multibyte.shape[0]):
        n = np.int64(multibyte[k, 0])
        if multibyte[k, 1] == c and i + n <= end:
            same = True
            for j in range(1, n):
                if data[i + j] != multibyte[k, 1 + j]:
                    same = False
                    break
            if same:
                return n, k
    return 0, -1


@nb.njit(nogil=True, cache=True)
def _count_words(data, starts, ends, rows, out, ascii_ws, ascii_kept, multibyte, multibyte_kept):
    for r in range(rows.shape[0]):
        start, end, row = starts[r], ends[r], rows[r]
        words = 0
        kept = 0
        in_word = False
        i = start
        while i < end:
            c = data[i]
            if c < 0x80:
                if ascii_ws[c]:
                    in_word = False
                    if ascii_kept[c]:
                        kept += 1
                    i += 1
                    continue
            else:
                n, k = _multibyte_whitespace_at(data, i, end, multibyte)
                if n:
                    in_word = False
                    if multibyte_kept[k]:
                        kept += 1
                    i += n
                    continue
            if not in_word:
                words += 1
                in_word = True
            i += 1
        out[row, 0] = words
        out[row, 1] = kept


FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd
_SPREAD = np.uint64(0xD6E8FEB86659FD93)  # odd: spreads window hashes over the table's slots


# --- the window table, shared by the kernels -------------------------------------------------
# Open addressing over one array of slots (window hash, owner row << 32 | count).
# A slot whose owner is not the current row is free, so moving to the next row needs no
# clearing. A row's table is sized before its bytes are read, from a bound on its words (a word
# and its separator take two bytes), so it never grows, hence never fills, inside the hot loop
# (reassigning arrays there would cost numba reference counting on every byte).

_COUNT = np.int64(0xFFFFFFFF)


@nb.njit
def table_for(table, text_bytes):
    """A table for a text of `text_bytes` bytes: the current one if it is large enough (at most
    half full), else a new one. Returns (table, shift)."""
    needed = 64
    while needed < text_bytes + 1:  # >= 2 * ((text_bytes + 1) // 2) windows
        needed *= 2
    if table.shape[0] < needed:
        table = np.full((needed, 2), -1, np.int64)
    bits = 0
    while (1 << bits) < table.shape[0]:
        bits += 1
    return table, np.uint64(64 - bits)


@nb.njit
def count_window(table, shift, window, row):
    """Count one more occurrence of `window` in `row`'s text; returns its count so far. A slot
    is (window hash, owner row << 32 | count), both in one cache line."""
    mask = table.shape[0] - 1
    key = np.int64(window)
    slot = np.int64((window * _SPREAD) >> shift)
    owner = np.int64(row) << 32
    while True:
        m = table[slot, 1]
        if m < 0 or (m & ~_COUNT) != owner:
            table[slot, 0] = key
            table[slot, 1] = owner | 1
            return 1
        if table[slot, 0] == key:
            table[slot, 1] = m + 1
            return (m + 1) & _COUNT
        slot = (slot + 1) & mask


@nb.njit
def window_top(n):
    """MULTIPLIER ** (n - 1): the weight of the word leaving a window of n words."""
    top = np.uint64(1)
    for _ in range(n - 1):
        top = top * MULTIPLIER
    return top


@nb.njit(inline="always")
def slide_window(ring, oldest, window, word, seen, n, top):
    """Push a word's hash into the rolling hash of the last n words: the ring holds them and
    `oldest` is where the word leaving next sits. Returns (window, oldest, seen) updated."""
    if seen >= n:
        window = window - ring[oldest] * top
    window = window * MULTIPLIER + word
    ring[oldest] = word
    return window, (oldest + 1 if oldest + 1 < n else 0), seen + 1


@nb.njit(nogil=True, cache=True)
def _flag_repeated_windows(data, starts, ends, rows, out, n, min_count, ascii_ws, multibyte):
    """out[row] = (1, k) where the window of n words starting at word k of data[start:end] is
    the first whose hash is seen min_count times; (0, -1) where none is."""
    top = window_top(n)
    table = np.empty((0, 2), np.int64)
    ring = np.empty(n, np.uint64)
    for r in range(rows.shape[0]):
        start, end, row = starts[r], ends[r], rows[r]
        table, shift = table_for(table, end - start)
        window = np.uint64(0)
        word = FNV_OFFSET
        seen = 0  # words read so far
        oldest = 0  # where the ring holds the word leaving the window
        in_word = False
        at = -1
        i = start
        while i <= end:
            if i == end:
                length = 1  # the end of the text closes the last word
            elif data[i] < 0x80:
                length = 1 if ascii_ws[data[i]] else 0
            else:
                length, _ = _multibyte_whitespace_at(data, i, end, multibyte)
            if length == 0:
                word = (word ^ np.uint64(data[i])) * FNV_PRIME
                in_word = True
                i += 1
                continue
            i += length
            if not in_word:
                continue
            in_word = False
            window, oldest, seen = slide_window(ring, oldest, window, word, seen, n, top)
            word = FNV_OFFSET
            if seen >= n and count_window(table, shift, window, r) >= min_count:
                at = seen - n
                break
        out[row, 0] = 1 if at >= 0 else 0
        out[row, 1] = at


# Columns of `scan_responses`' output, per row.
WORDS = 0  # str.split() words
KEPT_WHITESPACE = 1  # whitespace characters strip_chars() keeps (U+001C..U+001F)
THINK_OPEN = 2  # occurrences of "<think>"
THINK_CLOSE = 3  # occurrences of "</think>"
THINK_OPEN_AT = 4  # byte offset of the first "<think>" (-1: none)
THINK_CLOSE_AT = 5  # byte offset of the first "</think>" (-1: none)
ANSWER_OPEN = 6  # occurrences of "<answer>"
ANSWER_CLOSE = 7  # occurrences of "</answer>"
ANSWER_ALTERNATE = 8  # 1: the answer tags in text order are <answer>, </answer>, <answer>, ...
ANSWER_PAIR_OUTSIDE = 9  # 1: an <answer>…</answer> pair ends before <think> or starts after </think>
REPEATED = 10  # 1: a window of the think block's words hashed min_count times (to confirm)
REPEATED_AT = 11  # the flagged window's first word, counted in the think block's words (-1)
SCAN_COLUMNS = 12

_THINK_OPEN = np.frombuffer(b"<think>", np.uint8)
_THINK_CLOSE = np.frombuffer(b"</think>", np.uint8)
_ANSWER_OPEN = np.frombuffer(b"<answer>", np.uint8)
_ANSWER_CLOSE = np.frombuffer(b"</answer>", np.uint8)


@nb.njit
def _tag_at(data, i, end, tag):
    n = tag.shape[0]
    if i + n > end:
        return False
    for j in range(1, n):  # data[i] is '<', as is tag[0]
        if data[i + j] != tag[j]:
            return False
    return True


# Byte classes of the response scan: 0 a byte of a word, 1 ASCII whitespace, 2 '<' (a tag may
# start there), 3 the first byte of a multi-byte whitespace character (or of another character).
BYTE_CLASS = np.zeros(256, np.uint8)
BYTE_CLASS[:128][ASCII_WS] = 1
BYTE_CLASS[ord("<")] = 2
BYTE_CLASS[MULTIBYTE_WS[:, 1]] = 3


@nb.njit(nogil=True, cache=True)
def _scan_responses(data, starts, ends, rows, out, n, min_count, byte_class, ascii_kept,
                    multibyte, multibyte_kept, think_open, think_close, answer_open,
                    answer_close):
    """One pass over each response: words, tags, and the think block's n-gram windows (from
    after the first <think> to the first </think> after it; n < 1 skips them). The common
    bytes (of a word, or ASCII whitespace) take the two short paths at the top of the loop."""
    top = window_top(max(n, 1))
    table = np.empty((0, 2), np.int64)
    ring = np.empty(max(n, 1), np.uint64)
    for r in range(rows.shape[0]):
        start, end, row = starts[r], ends[r], rows[r]
        table, shift = table_for(table, end - start)
        words = kept = 0
        in_word = False
        n_open = n_close = n_aopen = n_aclose = 0
        open_at = close_at = -1
        alternate = 1
        outside = 0
        open_after_think = False
        # the think block's windows
        hashing = False
        word = FNV_OFFSET
        word_bytes = 0  # of the think word being read
        window = np.uint64(0)
        seen = 0
        oldest = 0
        at = -1
        i = start
        while i < end:
            c = data[i]
            cls = byte_class[c]
            word_done = False
            if cls == 0:  # a byte of a word
                if not in_word:
                    words += 1
                    in_word = True
                if hashing:
                    word = (word ^ np.uint64(c)) * FNV_PRIME
                    word_bytes += 1
                i += 1
                continue
            if cls == 1:  # ASCII whitespace
                in_word = False
                if ascii_kept[c]:
                    kept += 1
                i += 1
                if word_bytes == 0:
                    continue
                word_done = True
            else:
                space = 0
                if cls == 3:
                    space, k = _multibyte_whitespace_at(data, i, end, multibyte)
                if space:
                    in_word = False
                    if multibyte_kept[k]:
                        kept += 1
                    word_done = word_bytes > 0
                    i += space
                else:
                    if not in_word:
                        words += 1
                        in_word = True
                    skip = 1
                    starts_think = ends_think = False
                    if cls == 2:  # '<': maybe a tag (no tag holds whitespace or another '<')
                        if _tag_at(data, i, end, think_open):
                            if n_open == 0:
                                open_at = i - start
                                starts_think = n_close == 0
                            n_open += 1
                            skip = think_open.shape[0]
                        elif _tag_at(data, i, end, think_close):
                            if n_close == 0:
                                close_at = i - start
                                ends_think = hashing
                            n_close += 1
                            skip = think_close.shape[0]
                        elif _tag_at(data, i, end, answer_open):
                            if (n_aopen + n_aclose) % 2 != 0:
                                alternate = 0
                            open_after_think = n_close > 0
                            n_aopen += 1
                            skip = answer_open.shape[0]
                        elif _tag_at(data, i, end, answer_close):
                            if (n_aopen + n_aclose) % 2 != 1:
                                alternate = 0
                            elif n_open == 0 or open_after_think:
                                outside = 1  # the pair ends before <think> or starts after </think>
                            n_aclose += 1
                            skip = answer_close.shape[0]
                    if starts_think:  # the think block starts after the tag
                        hashing = n >= 1
                    elif ends_think:  # ... and ends before this one
                        hashing = False
                        word_done = word_bytes > 0
                    elif hashing:
                        for j in range(i, i + skip):
                            word = (word ^ np.uint64(data[j])) * FNV_PRIME
                        word_bytes += skip
                    i += skip
            if word_done:
                if at < 0:
                    window, oldest, seen = slide_window(ring, oldest, window, word, seen, n, top)
                    if seen >= n and count_window(table, shift, window, r) >= min_count:
                        at = seen - n
                        hashing = False
                word = FNV_OFFSET
                word_bytes = 0
        out[row, 0] = words
        out[row, 1] = kept
        out[row, 2] = n_open
        out[row, 3] = n_close
        out[row, 4] = open_at
        out[row, 5] = close_at
        out[row, 6] = n_aopen
        out[row, 7] = n_aclose
        out[row, 8] = alternate
        out[row, 9] = outside
        out[row, 10] = 1 if at >= 0 else 0
        out[row, 11] = at


@dataclass(frozen=True)
class Utf8Segments:
    """The UTF-8 bytes of a string column, as (buffer, start, end) per row, without copying.

    `parts` groups rows by the Arrow buffer holding their bytes: (buffer, rows, starts, ends),
    offsets in bytes into the buffer. `valid` is False for null rows (which are in no part).
    """

    length: int
    valid: np.ndarray
    parts: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]

    def text(self, row: int, begin: int = 0, stop: int | None = None) -> str:
        """The row's string (or its bytes [begin, stop) as a string)."""
        for data, rows, starts, ends in self.parts:
            at = np.flatnonzero(rows == row)
            if at.size:
                s, e = int(starts[at[0]]), int(ends[at[0]])
                return bytes(data[s + begin : e if stop is None else s + stop]).decode("utf-8")
        raise KeyError(row)


def utf8_segments(series: pl.Series) -> Utf8Segments:
    """Where each string of `series` lies in memory (Arrow string-view or offset layout)."""
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    array = series.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    valid = (
        np.ones(n, np.bool_)
        if array.null_count == 0
        else array.is_valid().to_numpy(zero_copy_only=False)
    )
    buffers = array.buffers()
    parts = []
    if pa.types.is_string_view(array.type):
        raw = np.frombuffer(buffers[1], np.uint8)
        views = raw.view(np.int32).reshape(-1, 4)[array.offset : array.offset + n]
        lengths = views[:, 0].astype(np.int64)
        rows = np.flatnonzero(valid)
        inline = rows[lengths[rows] <= 12]
        if inline.size:  # short strings live inside their 16-byte view
            begin = (inline + array.offset) * 16 + 4
            parts.append((raw, inline, begin, begin + lengths[inline]))
        outside = rows[lengths[rows] > 12]
        if outside.size:
            buffer_of = views[outside, 2]
            for b in np.unique(buffer_of):
                mine = outside[buffer_of == b]
                begin = views[mine, 3].astype(np.int64)
                data = np.frombuffer(buffers[2 + int(b)], np.uint8)
                parts.append((data, mine, begin, begin + lengths[mine]))
    else:  # string / large_string: one offsets buffer, one data buffer
        if not pa.types.is_large_string(array.type):
            array = array.cast(pa.large_string())
            buffers = array.buffers()
        offsets = np.frombuffer(buffers[1], np.int64)[array.offset : array.offset + n + 1]
        data = (
            np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        )
        rows = np.flatnonzero(valid)
        parts.append((data, rows, offsets[:-1][rows], offsets[1:][rows]))
    return Utf8Segments(n, valid, tuple(parts))


_POOL: ThreadPoolExecutor | None = None
_PARALLEL_MIN_BYTES = 1 << 20  # below this a batch is scanned on the calling thread


def run_parallel(kernel, parts, *args) -> None:
    """Run `kernel(data, starts, ends, rows, *args)` over every part, split in about equal
    byte shares over the cores (the kernels release the GIL; outputs are per row)."""
    global _POOL
    jobs = []
    workers = os.cpu_count() or 1
    for data, rows, starts, ends in parts:
        total = int((ends - starts).sum()) if rows.size else 0
        pieces = min(workers, max(1, total // _PARALLEL_MIN_BYTES), rows.size) if rows.size else 0
        if pieces <= 1:
            if rows.size:
                jobs.append((data, starts, ends, rows))
            continue
        cuts = np.searchsorted(np.cumsum(ends - starts), np.arange(1, pieces) * total / pieces)
        for s, e in zip(np.r_[0, cuts], np.r_[cuts, rows.size]):
            if e > s:
                jobs.append((data, starts[s:e], ends[s:e], rows[s:e]))
    if len(jobs) <= 1:
        for data, starts, ends, rows in jobs:
            kernel(data, starts, ends, rows, *args)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmfr-words")
    for future in [_POOL.submit(kernel, d, s, e, r, *args) for d, s, e, r in jobs]:
        future.result()


def count_words(segments: Utf8Segments) -> tuple[np.ndarray, np.ndarray]:
    """Per row: `len(s.split())`, and how many whitespace characters `str.strip_chars()` would
    keep (U+001C..U+001F): the text is blank to Polars exactly when both are 0. Null rows: 0."""
    out = np.zeros((segments.length, 2), np.int64)
    run_parallel(
        _count_words, segments.parts, out, ASCII_WS, ASCII_KEPT, MULTIBYTE_WS, MULTIBYTE_KEPT
    )
    return out[:, 0], out[:, 1]


def flag_repeated_windows(segments: Utf8Segments, n: int, min_count: int) -> np.ndarray:
    """Per row (int64 columns flagged, first word of the flagged window): rows that may hold an
    n-gram seen >= min_count times. Never misses one; may flag a few more (hash collisions)."""
    out = np.zeros((segments.length, 2), np.int64)
    out[:, 1] = -1
    if n < 1:  # degenerate windows: leave it all to the published check
        out[:, 0] = segments.valid
        return out
    run_parallel(_flag_repeated_windows, segments.parts, out, n, min_count, ASCII_WS, MULTIBYTE_WS)
    return out


def scan_responses(segments: Utf8Segments, n: int, min_count: int) -> np.ndarray:
    """Per row (int64, `SCAN_COLUMNS` columns) what the content, structure and repetition rules
    test; null rows are all zeros."""
    out = np.zeros((segments.length, SCAN_COLUMNS), np.int64)
    out[:, REPEATED_AT] = -1
    run_parallel(
        _scan_responses, segments.parts, out, n, min_count, BYTE_CLASS, ASCII_KEPT, MULTIBYTE_WS,
        MULTIBYTE_KEPT, _THINK_OPEN, _THINK_CLOSE, _ANSWER_OPEN, _ANSWER_CLOSE,
    )
    return out
