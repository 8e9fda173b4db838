"""Conservative, rule-based text normalization (the LLM rewrite comes later).

Only changes that cannot alter meaning: Unicode NFC (NFKC would fold math symbols such as
superscripts), line endings, invisible characters, trailing spaces and runs of blank lines.
Vectorized as Polars expressions so a batch is normalized in Rust, not row by row in Python.
"""

from __future__ import annotations

import polars as pl

INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff]"
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def normalize_text(column: str) -> pl.Expr:
    return (
        pl.col(column)
        .str.normalize("NFC")
        .str.replace_all(r"\r\n?", "\n")
        .str.replace_all(INVISIBLE, "")
        .str.replace_all(CONTROL, "")
        .str.replace_all(r"[ \t]+\n", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


def is_blank(column: str) -> pl.Expr:
    """True where the (normalized) text is null or empty."""
    return pl.col(column).is_null() | (pl.col(column).str.len_chars() == 0)


def longer_than(column: str, max_chars: int) -> pl.Expr:
    """True where the text has more than `max_chars` characters. Over-long texts are dropped
    rather than truncated: a cut question or trace is wrong."""
    return pl.col(column).str.len_chars().fill_null(0) > max_chars


def length_detail(column: str, max_chars: int) -> pl.Expr:
    """`<column>: N chars > M` for the rejections table's detail."""
    return pl.format(f"{column}: {{}} chars > {max_chars}", pl.col(column).str.len_chars())
