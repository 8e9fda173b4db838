"""Single answers compared: the same normal form (`compare_exact`), or two numbers, or a decimal
against a constant in closed form (`compare_number`). `scalar_equal` is what the list and
choice rules use for one item against another."""

from __future__ import annotations

import math

from mmfr_assets.rules.verify import approximation, closed_form
from mmfr_assets.rules.verify.reading import (
    LATEX_DROP,
    comma_pair,
    compare_numbers,
    normalize,
    parse_number,
    strip_delimiters,
)


def compare_exact(candidate: str, reference: str) -> bool | None:
    return True if normalize(candidate) == normalize(reference) else None


def _decimal_text(text: str) -> str:
    return LATEX_DROP.sub("", strip_delimiters(text)).strip()


def compare_number(candidate: str, reference: str, question: str | None = None) -> bool | None:
    """Two numbers (`reading.compare_numbers`), or a decimal against a constant in closed form
    ("62.83" against "20\\pi", `approximation`). A decimal the question forbids ("as a common
    fraction") is no approximation of the exact reference."""
    if comma_pair(candidate) and comma_pair(reference):
        return None  # "2,3" against "3,2": two lists as much as two decimals
    x, y = parse_number(candidate), parse_number(reference)
    if x is not None and y is not None:
        verdict = compare_numbers(x, y)
        if x.unit or y.unit or x.percent or y.percent or verdict is None:
            return verdict
        if verdict and not math.isclose(x.value, y.value, rel_tol=1e-9, abs_tol=1e-12):
            if approximation.exact_form_asked(question) and y.decimals is None:
                return False  # "0.67" where the question asks for a common fraction
        if not verdict and approximation.precision_asked(question) is not None:
            # "\\frac{100}{3}" against "33.3" where the question asks for tenths
            for decimal, exact, is_reference in ((candidate, y, False), (reference, x, True)):
                if exact.decimals is None and approximation.shown_decimals(_decimal_text(decimal)):
                    return approximation.approximately(_decimal_text(decimal), exact.value,
                                                       decimal_is_reference=is_reference, question=question) or False
        return verdict
    if x is None and y is None:
        return None
    decimal, exact, is_reference = (candidate, reference, False) if x is not None else (reference, candidate, True)
    decimal = _decimal_text(decimal)
    if approximation.shown_decimals(decimal) is None:
        return None
    value = closed_form.value(_decimal_text(exact), pi=approximation.pi_fixed(question))
    if value is None:
        return None
    return approximation.approximately(decimal, value, decimal_is_reference=is_reference, question=question)


def scalar_equal(candidate: str, reference: str, question: str | None = None) -> bool | None:
    """Exact, then numbers: the rules used for single items (inside lists and options)."""
    for rule in (compare_exact, compare_number):
        verdict = rule(candidate, reference, question) if rule is compare_number else rule(candidate, reference)
        if verdict is not None:
            return verdict
    return None
