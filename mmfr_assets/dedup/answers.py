"""A row's reference answer as deduplication compares it: two rows are one problem only when
their answers mean the same thing (issue 30). A templated question with one entity changed over
the same figure ("the grass is a producer" / "the rabbit is a consumer"), or a puzzle template
over two simple figures ("pentagon" / "triangle"), shares its text and nearly its figure, but
not its answer.

The answer is read with the verifier's own functions (`mmfr_assets.rules.verify`), not a copy
of them: the reference reduced to its conclusion, a choice letter resolved to its option's text
(so the same problem with its options shuffled keeps one answer), a number read as a number
("0.5", "1/2" and "\\frac{1}{2}" are one), else the verifier's normal form. The form is stored
as a 64-bit key in `dedup_signatures`; equal keys mean the same answer, and the rare equal
answers written in forms the key does not unify (an expression against its expansion) make
two copies look different: a missed duplicate, never a false merge.
"""

from __future__ import annotations

import hashlib
import math

from collections.abc import Mapping, Sequence
from typing import Any

from mmfr_assets.rules.verify import REFERENCE_COLUMNS, reference_answer
from mmfr_assets.rules.verify.extract import answer_of
from mmfr_assets.rules.verify.reading import normalize, parse_number
from mmfr_assets.rules.verify.rules import as_letter, options

SIGNIFICANT_DIGITS = 9  # numbers equal to this precision are one answer (float noise aside)


def answer_form(question: str | None, answer: str | None) -> str | None:
    """The canonical form of a reference answer (as `reference_answers` reads it; None: no
    answer to compare)."""
    if not answer or not answer.strip():
        return None
    text = answer_of(answer)
    choices = options(question)
    letter = as_letter(text, choices)
    if letter is not None and letter in choices:
        text = choices[letter]
    number = parse_number(text)
    if number is not None and math.isfinite(number.value):
        value = float(f"{number.value:.{SIGNIFICANT_DIGITS}g}") + 0.0  # -0.0 is 0.0
        return f"number:{value!r}{'%' if number.percent else ''}"
    form = normalize(text)
    return f"text:{form}" if form else None


def answer_key(question: str | None, answer: str | None) -> int | None:
    """A signed 64-bit key of `answer_form` (Delta has no unsigned integers); None: no answer."""
    form = answer_form(question, answer)
    if form is None:
        return None
    digest = hashlib.blake2b(form.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def reference_answers(rows: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Each row's reference answer as the verifier reads it (`reference_answer`: the first of
    its reference columns that is not blank, reduced to its conclusion)."""
    return [reference_answer(row)[0] for row in rows]


#: The reference columns a row may hold (the verifier's), read by `dedup_signatures`.
ANSWER_COLUMNS = REFERENCE_COLUMNS
