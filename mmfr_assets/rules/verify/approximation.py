"""A decimal against an exact value: when is "62.83" the answer "20\\pi"?

Accepted when the decimal (on either side) is the exact value rounded to the digits it shows,
and showing those digits is allowed: it shows at least two decimals and two significant digits
("0.67" for 2/3, "2.236" for sqrt 5; as `reading.numbers_equal` already reads "0.33" for 1/3),
or the question names that precision ("to the nearest tenth": "62.8", "33.3" for 100/3). A decimal off by less than one unit of
its last digit without being rounded right ("0.78" for pi/4 = 0.785...) is undecided: a
truncation, which some graders accept. Never accepted where the question asks for an exact
form ("in terms of pi", "simplest radical form", "as a common fraction"): the value is close,
the answer is not the one asked.
"""

from __future__ import annotations

import math
import re

_PLAIN_DECIMAL = re.compile(r"^[-+−]?(?P<int>\d+)(?:\.(?P<frac>\d+))?$")
_EXACT_FORM = re.compile(
    r"in\s+terms\s+of\s+(?:\\?pi|π|\$\\pi\$)|simplest\s+radical\s+form|radical\s+form|common\s+fraction"
    r"|exact\s+(?:value|answer|form)|as\s+a\s+fraction|simplest\s+form|do\s+not\s+(?:round|approximate)",
    re.IGNORECASE,
)
_PLACES = {"whole number": 0, "integer": 0, "unit": 0, "one": 0, "tenth": 1, "hundredth": 2,
           "thousandth": 3, "ten-thousandth": 4}
_NEAREST = re.compile(r"nearest\s+(whole\s+number|integer|unit|tenth|hundredth|thousandth|ten-thousandth)", re.IGNORECASE)
_DECIMAL_PLACES = re.compile(r"\b(\d|one|two|three|four)\s+decimal\s+places?", re.IGNORECASE)
_WORD_DIGITS = {"one": 1, "two": 2, "three": 3, "four": 4}
# "Use 3.14 for pi", "π取3.14", "take \\pi = 3.14", "\\pi \\approx 3.14": the value the question fixes.
_PI_FIXED = re.compile(
    r"(?:π|\\pi|\bpi)\s*\$?\s*(?:取|=|≈|\\approx|is|as)\s*\$?\s*(?P<a>3\.14\d*)"
    r"|(?P<b>3\.14\d*)\s*\$?\s*(?:for|as)\s*\$?\s*(?:π|\\pi|\bpi)",
    re.IGNORECASE,
)


def pi_fixed(question: str | None) -> float:
    """The value the question gives pi ("use 3.14 for pi"), else pi itself."""
    match = _PI_FIXED.search(question or "")
    return float(match["a"] or match["b"]) if match else math.pi


def shown_decimals(text: str) -> tuple[float, int] | None:
    """(value, decimals shown) of a plain decimal or integer ("62.83" -> (62.83, 2)); None for
    anything else (fractions, units, expressions)."""
    match = _PLAIN_DECIMAL.match(text.strip())
    if not match:
        return None
    return float(text.strip().replace("−", "-")), len(match["frac"] or "")


def significant_digits(text: str) -> int:
    digits = re.sub(r"\D", "", text).lstrip("0")
    return len(digits)


def exact_form_asked(question: str | None) -> bool:
    return bool(question and _EXACT_FORM.search(question))


def precision_asked(question: str | None) -> int | None:
    """The decimals the question asks to round to ("to the nearest tenth": 1), or None."""
    if not question:
        return None
    nearest = _NEAREST.search(question)
    if nearest:
        return _PLACES[re.sub(r"\s+", " ", nearest[1].lower())]
    places = _DECIMAL_PLACES.search(question)
    if places:
        word = places[1].lower()
        return int(word) if word.isdigit() else _WORD_DIGITS[word]
    return None


def approximately(decimal_text: str, exact: float, *, decimal_is_reference: bool, question: str | None) -> bool | None:
    """Whether the plain decimal `decimal_text` is `exact` as an allowed approximation (see the
    module's docstring); None when it is neither clearly right nor clearly wrong. An exact form
    the question asks for binds the candidate only (`decimal_is_reference` False)."""
    shown = shown_decimals(decimal_text)
    if shown is None:
        return None
    value, decimals = shown
    if math.isclose(value, exact, rel_tol=1e-9, abs_tol=1e-12):
        return True
    if not decimal_is_reference and exact_form_asked(question):
        return False
    allowed = (decimals >= 2 and significant_digits(decimal_text) >= 2) or precision_asked(question) == decimals
    unit = 10.0**-decimals
    gap = abs(value - exact)
    if gap <= 0.5 * unit * (1 + 1e-9):
        return allowed
    if gap < unit and allowed:
        return None  # the last digit truncated rather than rounded
    return False
