"""Reading one answer: math delimiters and LaTeX spacing stripped, a normal form for exact
comparison, and a number with its unit, percent or degree sign (`parse_number`).

Written by hand, as the rules are (see `rules`): exact-format readers costing microseconds,
run before math-verify's sympy parse (milliseconds), which misreads several of these forms
("0,111" as a list, "1 1/2" as 11/2 or a product, "6.02e23" with Euler's e, "5 m" as 5).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from mmfr_assets.rules.verify import forms

# --- normalization -------------------------------------------------------------------------

LATEX_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textnormal|mathrm|mathbf|mbox|operatorname|textit)\s*\{([^{}]*)\}"
)
# Spacing and sizing commands: words must not run on into a letter ("\\leftarrow"), spacing
# symbols ("\\,cm") may.
LATEX_DROP = re.compile(r"\\(?:left|right|displaystyle|quad|qquad)(?![a-zA-Z])|\\[!,;: ]|~")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|º|\\degree")
_PERCENT = re.compile(r"\\?%")
_MATH_DELIMS = re.compile(r"^\s*(?:\$\$|\$|\\\(|\\\[)\s*(.*?)\s*(?:\$\$|\$|\\\)|\\\])\s*$", re.DOTALL)


def strip_delimiters(text: str) -> str:
    """Remove math delimiters ($…$, \\(…\\)), a wrapping `\\boxed{}`, trailing full stops and
    surrounding bold markers."""
    text = unicodedata.normalize("NFKC", text).strip().replace("\\$", "")
    for _ in range(3):
        before = text
        text = text.strip().strip("*").strip()
        match = _MATH_DELIMS.match(text)
        if match:
            text = match.group(1)
        if text.startswith("\\boxed{") and text.endswith("}"):
            text = text[len("\\boxed{") : -1]
        text = text.rstrip(" .。")
        if text == before:
            break
    return text.replace("$", "").strip()


def normalize(text: str) -> str:
    """A canonical form for exact comparison: delimiters, LaTeX spacing and wrappers, case and
    whitespace removed; `\\dfrac`/`\\tfrac` as `\\frac`; degrees as `°`."""
    text = strip_delimiters(text)
    text = LATEX_WRAPPERS.sub(r"\1", text)
    text = LATEX_DROP.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _DEGREE.sub("°", text)
    text = text.replace("\\pi", "π").replace("\\cdot", "*").replace("\\times", "×")
    text = text.replace("\\le", "≤").replace("\\ge", "≥")
    text = re.sub(r"(?<=\d)\s+(?=\d)", "␣", text)  # "1 1/2" is not "11/2"
    return re.sub(r"\s+", "", text).lower()


# --- numbers --------------------------------------------------------------------------------

WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER = re.compile(
    r"""^(?P<lhs>[a-zA-Z_][\w']*\s*=\s*)?            # "x = " before the value
    (?P<sign>[-+−]?)\s*
    (?:
      \\frac\s*\{\s*(?P<fn>-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(?P<fd>-?\d+(?:\.\d+)?)\s*\}   # \frac{a}{b}
     |(?P<num>\d+(?:\.\d+)?|\.\d+)(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?                  # a, a.b, a/b
    )
    (?P<rest>.*)$""",
    re.VERBOSE | re.DOTALL,
)
# What may follow a number and still leave it a plain quantity: a unit of a few words.
_UNIT = re.compile(r"^[a-zA-Zµμ°Ω/^·*\s\d\-²³.]{0,30}$")
THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?=\D|$)")
# "0,111", "1000,99", "1,22": a decimal comma (European notation); "1,000" stays thousands.
_DECIMAL_COMMA = re.compile(r"^(-?\d+),(\d+)$")
_THOUSANDS_SHAPED = re.compile(r"^-?[1-9]\d{0,2},\d{3}$")
# "1 1/2", "2\\frac{1}{3}": a whole number and a proper fraction (prm800k's grader reads "7 3/4"
# the same way).
_MIXED = re.compile(
    r"^(?P<sign>[-+−]?)\s*(?P<whole>\d+)(?:\s+(?P<n>\d+)\s*/\s*(?P<d>\d+)"
    r"|\s*\\frac\s*\{\s*(?P<fn>\d+)\s*\}\s*\{\s*(?P<fd>\d+)\s*\})$"
)
# "e-3", "\\times 10^{23}" right after a number.
_EXPONENT = re.compile(
    r"^(?:[eE](?P<e>[-+]?\d+)|(?:\\times|×|\\cdot|\*)\s*10\s*\^\s*\{?\s*(?P<p>[-+−]?\d+)\s*\}?)"
)
_FRAC_SHORTHAND = (
    (re.compile(r"\\[dtc]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),  # \\frac13
    (re.compile(r"\\frac\s*(\d)\s*\{"), r"\\frac{\1}{"),  # \\frac3{4}
)
_CURRENCY = "€£¥"
# Units that name degrees of angle ("45 degrees" is "45°"; "" for a bare number against "45°").
_DEGREE_UNITS = frozenset({"°", "", "degrees", "degree", "deg"})
_POWER_OF = re.compile(r"^\^\s*(?:\{\s*(?P<b>\d{1,3})\s*\}|(?P<p>\d))")
# Words and digits that make what follows a number something other than its unit.
_NOT_A_UNIT = re.compile(r"\b(?:or|and|to|not|vs|versus|plus|minus|times|of)\b|(?:^|\s)[-+]?\d", re.IGNORECASE)
# One lower-case letter after a number that names a variable or a constant rather than a unit
# ("m", "g", "s", "h", "l", "j", "w", "v" stay units, when written apart: "5 m").
_VARIABLE_LETTERS = frozenset("abcdefiknpqrtuxyz")


def _power(base: float, exponent: int) -> float | None:
    """base ** exponent as a float, None where that overflows ("10^999", "1e999")."""
    try:
        value = base**exponent
    except (OverflowError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def comma_pair(text: str) -> bool:
    """"2,3" without a space: a decimal comma on its own, or a list of two when the other side
    is one too (the list rule's call then, not the number rule's)."""
    return bool(_DECIMAL_COMMA.match(strip_delimiters(text)))


@dataclass(frozen=True)
class Quantity:
    """A number as written: value, decimal places written (None for exact forms), and whether
    it was a percentage, degrees or carried a unit."""

    value: float
    decimals: int | None
    percent: bool
    unit: str


def parse_number(text: str) -> Quantity | None:
    """A single number with an optional unit, percent or degree sign (None if the text is
    anything else). Thousands separators ("1,913.85"), fractions, `\\frac{a}{b}`, "x = 5",
    number words up to twenty and scale words ("1.9 million") are read."""
    text = strip_delimiters(text)
    text = LATEX_WRAPPERS.sub(r"\1", text)
    text = LATEX_DROP.sub("", text).strip().strip(_CURRENCY).strip()
    for pattern, replacement in _FRAC_SHORTHAND:
        text = pattern.sub(replacement, text)
    lowered = text.lower()
    if lowered in WORD_NUMBERS:
        return Quantity(float(WORD_NUMBERS[lowered]), None, False, "")
    comma = _DECIMAL_COMMA.match(text)
    if comma and not _THOUSANDS_SHAPED.match(text):
        text = f"{comma.group(1)}.{comma.group(2)}"
    mixed = _MIXED.match(text)
    if mixed:
        num, den = (int(mixed["n"]), int(mixed["d"])) if mixed["n"] else (int(mixed["fn"]), int(mixed["fd"]))
        if not 0 < num < den:
            return None  # "3 5/4" or "2\\frac{4}{2}": not a mixed number as written
        value = int(mixed["whole"]) + num / den
        return Quantity(-value if mixed["sign"] in ("-", "−") else value, None, False, "")
    thousands = THOUSANDS.match(text)
    if thousands:
        text = thousands.group(0).replace(",", "") + text[thousands.end() :]
    match = _NUMBER.match(text)
    if not match:
        return None
    decimals: int | None = None
    if match.group("fn") is not None:
        num, den = float(match.group("fn")), float(match.group("fd"))
    else:
        raw = match.group("num")
        num = float(raw)
        den = float(match.group("den")) if match.group("den") else 1.0
        if not match.group("den") and "." in raw:
            decimals = len(raw.split(".")[1])
    if den == 0:
        return None
    value = num / den
    rest = _DEGREE.sub("°", match.group("rest")).strip()  # "^\\circ" is no power
    power = _POWER_OF.match(rest)
    if power and match.group("num") and not match.group("den") and "." not in match.group("num"):
        value, rest = _power(value, int(power["b"] or power["p"])), rest[power.end() :].strip()  # "10^6"
        if value is None:
            return None
    if match.group("sign") in ("-", "−"):
        value = -value  # "-2^2" is -4
    exponent = _EXPONENT.match(rest)
    if exponent:
        scale = _power(10.0, int((exponent["e"] or exponent["p"]).replace("−", "-")))
        if scale is None:
            return None
        value, decimals, rest = value * scale, None, rest[exponent.end() :].strip()
    if rest[:1].isdigit() or (rest and rest[0] in "^+-−±"):
        return None  # "2 4" is two numbers, "2^{x}" a power, "1-i" a sum: no number with a unit
    if _NOT_A_UNIT.search(rest):
        return None  # "3 or 4", "5 not 6": more than one number
    percent = False
    if _PERCENT.match(rest):
        percent, rest = True, _PERCENT.sub("", rest, count=1).strip()
    elif rest.lower() in ("percent", "pct", "per cent"):
        percent, rest = True, ""
    rest = _DEGREE.sub("°", rest).strip()
    words = rest.lower().split()
    if words and words[0] in _SCALES:
        value *= _SCALES[words[0]]
        decimals = None
        rest = " ".join(rest.split()[1:])
    if rest and not _UNIT.match(rest):
        return None
    if rest and re.search(r"[a-zA-Z]", rest) and len(rest.split()) > 3:
        return None
    if len(rest) == 1 and rest.isalpha() and (rest in _VARIABLE_LETTERS or not match.group("rest")[:1].isspace()):
        return None  # "2x", "3i", "2R": a product with a variable, not a unit ("5 N" is one)
    return Quantity(value, decimals, percent, rest.strip().strip(".").lower())


def numbers_equal(a: float, b: float, decimals: int | None) -> bool:
    """Equal up to float noise, or up to the rounding the less precise side was written with
    (0.33 for 1/3, when written with at least two decimals and two significant digits)."""
    if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
        return True
    if decimals is None or decimals < 2 or round(b, decimals) != round(a, decimals):
        return False
    # two significant digits at least: "0.01" is no rounding of 1/150 = 0.0067
    return len(f"{abs(round(a, decimals)):.{decimals}f}".replace(".", "").lstrip("0")) >= 2


def compare_numbers(x: Quantity, y: Quantity) -> bool | None:
    """Two quantities: equal values (percent read both ways, units ignored when only one side
    names one) are equivalent; different values are different; the same value in two
    different named units is compared in a common unit where both are in `forms.unit_scale`'s
    table ("5 m" against "500 cm"), else left undecided."""
    if x.percent != y.percent and (x.unit or y.unit):
        return None  # "5%" against "5 cm"
    if {x.unit, y.unit} & {"°"} and not {x.unit, y.unit} <= _DEGREE_UNITS:
        return None  # "45°" against "45 min" or "60 km/h"
    if x.unit and y.unit and x.unit != y.unit and "°" not in (x.unit + y.unit):
        scales = forms.unit_scale(x.unit), forms.unit_scale(y.unit)
        if None in scales or scales[0][0] != scales[1][0]:
            return None  # units we cannot convert, or of different kinds: a reader's call
        x = Quantity(x.value * scales[0][1], None, x.percent, "")
        y = Quantity(y.value * scales[1][1], None, y.percent, "")
    decimals = min(
        (d for d in (x.decimals, y.decimals) if d is not None), default=None
    )
    candidates = [(x.value, y.value)]
    if x.percent != y.percent:  # "35%" against "0.35" or "35"
        pct, plain = (x, y) if x.percent else (y, x)
        candidates.append((pct.value / 100, plain.value))
    if any(numbers_equal(a, b, decimals) for a, b in candidates):
        return True
    return False
