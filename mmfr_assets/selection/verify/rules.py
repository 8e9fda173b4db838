"""Cheap, exact-minded rules deciding whether two short answers say the same thing.

Each rule returns True (equivalent), False (different) or None (cannot tell); `decide` tries
them cheapest first and the first decision wins. A rule says "different" only where it
understands both sides completely (two numbers, two option letters, two lists of decided
items): everything else is left to `math-verify` and then the judge. The published rule
(strip punctuation, then substring) is deliberately not here: it accepts "2" for "12", "-2"
for "2" and "$" for anything.

Written by hand rather than with a library: math-verify (used after these rules) parses
LaTeX into sympy, which costs milliseconds per answer; these rules cost microseconds and
decide most rows of real data (letters, integers, decimals with units).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

# --- normalization -------------------------------------------------------------------------

_LATEX_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname|textit)\s*\{([^{}]*)\}")
_LATEX_DROP = re.compile(r"\\(?:left|right|displaystyle|!|,|;|:|quad|qquad)(?![a-zA-Z])|\\ ")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|º|\\degree")
_PERCENT = re.compile(r"\\?%")
_MATH_DELIMS = re.compile(r"^\s*(?:\$\$|\$|\\\(|\\\[)\s*(.*?)\s*(?:\$\$|\$|\\\)|\\\])\s*$", re.DOTALL)


def strip_delimiters(text: str) -> str:
    """Remove math delimiters ($…$, \\(…\\)), a wrapping `\\boxed{}`, trailing full stops and
    surrounding bold markers."""
    text = unicodedata.normalize("NFKC", text).strip()
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
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _LATEX_DROP.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _DEGREE.sub("°", text)
    text = text.replace("\\pi", "π").replace("\\cdot", "*").replace("\\times", "×")
    text = text.replace("\\le", "≤").replace("\\ge", "≥")
    return re.sub(r"\s+", "", text).lower()


# --- numbers --------------------------------------------------------------------------------

_WORD_NUMBERS = {
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
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?=\D|$)")


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
    text = _LATEX_WRAPPERS.sub(r"\1", text)
    text = _LATEX_DROP.sub("", text).strip()
    lowered = text.lower()
    if lowered in _WORD_NUMBERS:
        return Quantity(float(_WORD_NUMBERS[lowered]), None, False, "")
    thousands = _THOUSANDS.match(text)
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
    if match.group("sign") in ("-", "−"):
        value = -value
    rest = match.group("rest").strip()
    percent = False
    if _PERCENT.match(rest):
        percent, rest = True, _PERCENT.sub("", rest, count=1).strip()
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
    return Quantity(value, decimals, percent, rest.strip().strip(".").lower())


def numbers_equal(a: float, b: float, decimals: int | None) -> bool:
    """Equal up to float noise, or up to the rounding the less precise side was written with
    (0.33 for 1/3, when written with at least two decimals)."""
    if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
        return True
    return decimals is not None and decimals >= 2 and round(b, decimals) == round(a, decimals)


def compare_numbers(x: Quantity, y: Quantity) -> bool | None:
    """Two quantities: equal values (percent read both ways, units ignored when only one side
    names one) are equivalent; different values are different; the same value in two
    different named units is left undecided."""
    if x.unit and y.unit and x.unit != y.unit and "°" not in (x.unit + y.unit):
        return None
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


# --- multiple choice ------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])\s*[\.．:：\)）、]\s*(.+?)\s*$", re.MULTILINE)
_LETTER = re.compile(
    r"^(?:option|choice|answer)?\s*[:：]?\s*\(?([A-J])\)?(?:\s*[\.．:：\)）]\s*(.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_LETTER_SET = re.compile(r"^\(?[A-J]\)?(?:\s*(?:,|，|、|;|and|和|\s)\s*\(?[A-J]\)?)+$")


def options(question: str | None) -> dict[str, str]:
    """Option letter -> option text, from lines like "A. 80J", "C: 55°", "(B) x"; empty when
    the question lists fewer than two options or repeats a letter."""
    if not question:
        return {}
    found: dict[str, str] = {}
    for letter, text in _OPTION_LINE.findall(question):
        if letter in found:
            return {}
        found[letter] = text
    letters = sorted(found)
    if len(letters) < 2 or letters != [chr(ord("A") + i) for i in range(len(letters))]:
        return {}
    return found


def as_letter(text: str, choices: dict[str, str]) -> str | None:
    """The option letter an answer names: "C", "(C)", "C.", "Option C", "C: 55°" (the text
    after the letter, if any, must be that option's text)."""
    text = strip_delimiters(text)
    match = _LETTER.match(text)
    if not match:
        return None
    letter = match.group(1)
    if letter.islower() and not text.lower().startswith(("option", "choice", "answer")):
        return None
    letter = letter.upper()
    tail = (match.group(2) or "").strip()
    if tail:
        if letter not in choices or scalar_equal(tail, choices[letter]) is not True:
            return None
    return letter


def letter_set(text: str) -> frozenset[str] | None:
    """Several option letters ("B, C", "BC" is not read: it could be a segment name)."""
    text = strip_delimiters(text)
    if _LETTER_SET.match(text):
        return frozenset(re.findall(r"[A-J]", text))
    return None


def compare_choice(candidate: str, reference: str, question: str | None) -> bool | None:
    """Option letters against letters or against option texts, both ways."""
    choices = options(question)
    got, want = as_letter(candidate, choices), as_letter(reference, choices)
    got_set = frozenset(got) if got else letter_set(candidate)
    want_set = frozenset(want) if want else letter_set(reference)
    if got_set is not None and want_set is not None:
        return got_set == want_set  # one letter or several, against one or several
    if not (got or want):
        return None
    if not choices:
        return None
    letter, text = (got, reference) if got else (want, candidate)
    if letter not in choices:
        return None
    if scalar_equal(text, choices[letter]) is True:
        return True
    # the text is another option's text: a different choice
    if any(scalar_equal(text, t) is True for k, t in choices.items() if k != letter):
        return False
    return None


# --- lists ----------------------------------------------------------------------------------

_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_DATE = re.compile(
    r"^(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,\s*\d{4}"
    r"|\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*,?\s*\d{4})$",
    re.IGNORECASE,
)


def split_items(text: str) -> tuple[list[str], bool] | None:
    """(items, ordered) for a list or tuple: "2, 4", "2 4", "(8, 13)", "x=1; x=2". Bracketed
    lists are ordered (points, vectors); bare lists are compared as multisets (roots). None for
    a single item, or when commas could be inside LaTeX groups."""
    text = strip_delimiters(text)
    if _DATE.match(text):  # "September 24, 1968" is one answer
        return None
    ordered = False
    if len(text) >= 2 and text[0] in _BRACKETS and text[-1] == _BRACKETS[text[0]]:
        inner = text[1:-1]
        if inner.count("(") == inner.count(")") and inner.count("[") == inner.count("]"):
            text, ordered = inner, True
    depth = 0
    for c in text:  # a comma inside braces/parentheses is not a separator
        depth += c in "({[" 
        depth -= c in ")}]"
        if depth < 0:
            return None
        if c in ",;，" and depth > 0:
            return None
    if re.search(r"[,;，]", text):
        if _THOUSANDS.fullmatch(text.strip()):
            return None
        items = [t.strip() for t in re.split(r"[,;，]|\band\b", text) if t.strip()]
    elif re.fullmatch(r"\s*-?\d+(?:\.\d+)?(?:\s+-?\d+(?:\.\d+)?)+\s*", text):
        items = text.split()
    else:
        return None
    return (items, ordered) if len(items) >= 2 else None


def compare_lists(candidate: str, reference: str, question: str | None) -> bool | None:
    """Two lists of the same length, item by item (or as multisets when neither is
    bracketed): every item equivalent, or some item different. Other lengths: undecided."""
    a, b = split_items(candidate), split_items(reference)
    if a is None and b is None:
        return None
    if a is None or b is None:
        return None  # one item against several: only a reader can tell which part was asked
    (xs, x_ordered), (ys, y_ordered) = a, b
    if len(xs) != len(ys):
        return None
    if x_ordered or y_ordered:
        verdicts = [scalar_equal(x, y, question) for x, y in zip(xs, ys)]
        if all(v is True for v in verdicts):
            return True
        return False if any(v is False for v in verdicts) else None
    remaining = list(ys)
    for x in xs:
        match = next((k for k, y in enumerate(remaining) if scalar_equal(x, y, question) is True), None)
        if match is None:
            decided = all(scalar_equal(x, y, question) is not None for y in remaining)
            return False if decided else None
        remaining.pop(match)
    return True


def parts_differ(candidate: str, reference: str) -> bool:
    """One side lists more items than the other ("g/3" against "(3A-g)/4, (5A+g)/4, g/3")."""
    a, b = split_items(candidate), split_items(reference)
    return (a is None) != (b is None) or (a is not None and b is not None and len(a[0]) != len(b[0]))


_FUNCTION_WORDS = frozenset(
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp sqrt max min lim "
    "det gcd lcm mod deg frac".split()
)


def is_prose(text: str) -> bool:
    """Words rather than mathematics: a run of 3+ letters that is not a LaTeX command or a
    function name ("a feline", "Product availability"). math-verify would read "cat" as
    c*a*t, so prose never goes to it."""
    text = re.sub(r"_\{[^{}]*\}", " ", strip_delimiters(text))  # subscripts name things
    text = re.sub(r"\\[a-zA-Z]+", " ", text)
    words = re.findall(r"[^\W\d_]{3,}", text)
    return any(w.lower() not in _FUNCTION_WORDS for w in words)


# Function names math-verify (latex2sympy) reads as products of letters when written without a
# backslash: "tan(x)" is t*a*n*x, "arctan(2)" a*a*c*r*t*n*2. ("sqrt(" it rewrites as \\sqrt.)
_BARE_FUNCTION = re.compile(
    r"(?<![\\a-zA-Z])(?:arc)?(?:sin|cos|tan|cot|sec|csc)h?(?![a-zA-Z])"
    r"|(?<![\\a-zA-Z])(?:log|ln|exp|lim|max|min|det|gcd|lcm)(?![a-zA-Z])"
)


def is_plain_text_math(text: str) -> bool:
    """Mathematics written as plain text that math-verify misreads rather than fails on: a
    function name without its backslash ("tan(θ₀) ≤ (7/2)μ", read as t*a*n*θ*0), or a letter
    with a combining accent ("x̂ + 1", read as 1). Such pairs go to the judge, not math-verify,
    whose "different" on them would mean nothing."""
    text = strip_delimiters(text)
    text = _LATEX_WRAPPERS.sub(" ", text)  # \\text{max} and \\operatorname{lcm} are LaTeX
    if _BARE_FUNCTION.search(text):
        return True
    return any(unicodedata.combining(c) for c in text)  # NFKC already: only marks left apart


# --- the rules, cheapest first ------------------------------------------------------------

def compare_exact(candidate: str, reference: str) -> bool | None:
    return True if normalize(candidate) == normalize(reference) else None


def compare_number(candidate: str, reference: str) -> bool | None:
    x, y = parse_number(candidate), parse_number(reference)
    if x is None or y is None:
        return None
    return compare_numbers(x, y)


_HAS_MATH = re.compile(r"[\d\\^_=+*/<>≤≥πθα-ωΑ-Ω√∞]")


def compare_numeric_against_words(candidate: str, reference: str) -> bool | None:
    """A numeric reference against an answer in plain words without any number or math
    ("Product availability", "Insufficient data"): different."""
    if parse_number(reference) is None:
        return None
    text = strip_delimiters(candidate)
    if _HAS_MATH.search(text) or not re.search(r"[^\W\d_]{2,}", text):
        return None
    if text.lower() in _WORD_NUMBERS or len(text) < 2:
        return None
    return False


def scalar_equal(candidate: str, reference: str, question: str | None = None) -> bool | None:
    """Exact, then numbers: the rules used for single items (inside lists and options)."""
    for rule in (compare_exact, compare_number):
        verdict = rule(candidate, reference)
        if verdict is not None:
            return verdict
    return None


# The rules in the order they are tried, cheapest first: (name, rule(candidate, reference, question)).
_RULES: tuple[tuple[str, Callable[[str, str, str | None], bool | None]], ...] = (
    ("exact", lambda c, r, q: compare_exact(c, r)),
    ("choice", compare_choice),
    ("number", lambda c, r, q: compare_number(c, r)),
    ("list", compare_lists),
    ("number_vs_words", lambda c, r, q: compare_numeric_against_words(c, r)),
)
RULES = tuple(name for name, _ in _RULES)


def decide(candidate: str, reference: str, question: str | None = None) -> tuple[bool | None, str]:
    """(verdict, rule name) of the first rule that decides; (None, "") when none does."""
    for name, rule in _RULES:
        verdict = rule(candidate, reference, question)
        if verdict is not None:
            return verdict, name
    return None, ""
