"""Cheap, exact-minded rules deciding whether two short answers say the same thing.

Each rule returns True (equivalent), False (different) or None (cannot tell); `decide` tries
them cheapest first and the first decision wins. A rule says "different" only where it
understands both sides completely (two numbers, two option letters, two clock times, two
intervals with their brackets, two words of one closed vocabulary, two lists of decided items):
everything else is left to `math-verify` and then the judge. The published rule
(strip punctuation, then substring) is deliberately not here: it accepts "2" for "12", "-2"
for "2" and "$" for anything.

Written by hand rather than with a library: math-verify (used after these rules) parses
LaTeX into sympy, which costs milliseconds per answer; these rules cost microseconds and
decide most rows of real data (letters, integers, decimals with units). Reading one answer
(delimiters, normal form, numbers and units) is in `reading`; special forms (times,
intervals, unit scales, option lists) in `forms`; words in `words`; single items compared in
`scalars` (with `approximation` and `closed_form` for decimals against exact values); lists in
`lists`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping

from mmfr_assets.rules.verify import forms, words
from mmfr_assets.rules.verify.lists import (  # noqa: F401  (re-exported: rules.list_kind & co.)
    BARE,
    SET,
    TUPLE,
    compare_lists,
    item_equal,
    list_kind,
    order_unknown,
    parts_differ,
    split_items,
)
from mmfr_assets.rules.verify.reading import (  # noqa: F401  (re-exported: rules.parse_number & co.)
    LATEX_DROP,
    LATEX_WRAPPERS,
    THOUSANDS,
    WORD_NUMBERS,
    Quantity,
    comma_pair,
    compare_numbers,
    normalize,
    numbers_equal,
    parse_number,
    strip_delimiters,
)
from mmfr_assets.rules.verify.scalars import compare_exact, compare_number, scalar_equal  # noqa: F401

# --- multiple choice ------------------------------------------------------------------------

_LETTER = re.compile(
    r"^(?:option|choice|answer)?\s*[:：]?\s*\(?([A-J])\)?(?:\s*[\.．:：\)）]\s*(.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_LETTER_SET = re.compile(r"^\(?[A-J]\)?(?:\s*(?:,|，|、|;|and|和|\s)\s*\(?[A-J]\)?)+$")

#: Option letter -> option text of a question (`forms.options`: one a line or inline).
options = forms.options


def as_letter(text: str, choices: Mapping[str, str]) -> str | None:
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


def both_times(candidate: str, reference: str) -> bool:
    """Both answers are clock times (the time rule's, even where it cannot tell: math-verify
    reads "7:15" as a ratio)."""
    return all(forms.read_time(LATEX_WRAPPERS.sub(r"\1", strip_delimiters(t))) is not None for t in (candidate, reference))


# --- intervals ------------------------------------------------------------------------------

def _intervals(text: str) -> list[forms.Interval] | None:
    return forms.read_intervals(LATEX_DROP.sub("", strip_delimiters(text)))


def _endpoint_equal(a: str, b: str) -> bool | None:
    ia, ib = forms.infinity(a), forms.infinity(b)
    if ia or ib:
        return ia == ib
    return scalar_equal(a, b)


def compare_intervals(candidate: str, reference: str, question: str | None) -> bool | None:
    """Intervals and unions of intervals, piece by piece: the same endpoints with the same
    brackets are equivalent; an open end against a closed one ("(0, 1)" against "[0, 1]") or
    another endpoint is different. Two round "(a, b)" are left to the tuple rule; unions of
    another number of pieces are undecided."""
    xs, ys = _intervals(candidate), _intervals(reference)
    if not xs or not ys:
        return None
    if not (forms.is_interval_notation(xs) or forms.is_interval_notation(ys)):
        return None  # "(0, 1)" against "(0, 1)": a point as much as an interval
    if len(xs) != len(ys):
        return None
    verdicts = []
    for x, y in zip(xs, ys):
        if (x.opening, x.closing) != (y.opening, y.closing):
            return False
        verdicts += [_endpoint_equal(x.low, y.low), _endpoint_equal(x.high, y.high)]
    if any(v is False for v in verdicts):
        return False
    return True if all(v is True for v in verdicts) else None


# --- times, words, equations ----------------------------------------------------------------

def compare_times(candidate: str, reference: str, question: str | None) -> bool | None:
    """Two clock times ("20:34" against "20:34:00", "8:30 PM" against "20:30")."""
    x, y = (forms.read_time(LATEX_WRAPPERS.sub(r"\1", strip_delimiters(t))) for t in (candidate, reference))
    if x is None or y is None:
        return None
    return forms.times_equal(x, y)


def compare_words(candidate: str, reference: str, question: str | None) -> bool | None:
    """Two one-word answers of one closed vocabulary ("yes"/"no", colours, directions,
    shapes, "producer"/"consumer"): the same word (or a synonym, "grey"/"gray") or a
    different one; two phrases with the same words ("The Moon." against "moon") the same.
    Other phrases are a reader's call."""
    x = forms.closed_word(LATEX_WRAPPERS.sub(r"\1", strip_delimiters(candidate)))
    y = forms.closed_word(LATEX_WRAPPERS.sub(r"\1", strip_delimiters(reference)))
    if x is not None and y is not None and x[0] == y[0]:
        return x[1] == y[1]
    if all(_PHRASE.match(t) and is_prose(t) for t in (candidate, reference)):
        if words.phrase_key(candidate) == words.phrase_key(reference):
            return True
    return None


# Plain words, no digits or mathematics: where a phrase's key may decide "the same".
_PHRASE = re.compile(r"^[^\W\d_]+(?:[\s'’\-][^\W\d_]+)*[.!]?$")


# "y = …", "f(x) = …", "g(t) = …": a name for the function, not part of the answer.
_DEFINITION = re.compile(r"^\s*(?:y|[a-zA-Z]\s*\(\s*[a-zA-Z]\s*\))\s*=\s*(?P<rhs>[^=<>≤≥]+)$")


def definition_body(text: str) -> str | None:
    """The right-hand side of "y = 2x + 3" or "f(x) = 2x + 3"; None for other texts."""
    match = _DEFINITION.match(LATEX_DROP.sub("", strip_delimiters(text)))
    return match["rhs"].strip() if match else None


def equation_sides(candidate: str, reference: str) -> tuple[str, str]:
    """The pair to compare once the function's name is set aside: "f(x) = 2x + 3" against
    "y = 2x + 3" is 2x + 3 against 2x + 3, and so is "y = 2x + 3" against "2x + 3". Texts
    without such a name, or an equation against a definition, are returned as they are."""
    c, r = definition_body(candidate), definition_body(reference)
    if c is not None and r is not None:
        return c, r
    if c is not None and "=" not in reference:
        return c, reference
    if r is not None and "=" not in candidate:
        return candidate, r
    return candidate, reference


def compare_definitions(candidate: str, reference: str, question: str | None) -> bool | None:
    """"f(x) = 2x + 3" against "y = 2x + 3": the right-hand sides, by the exact and number
    rules (math-verify gets them too, `equation_sides`, when these cannot tell)."""
    c, r = equation_sides(candidate, reference)
    if (c, r) == (candidate, reference):
        return None
    return scalar_equal(c, r)


_FUNCTION_WORDS = frozenset(
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp sqrt max min lim "
    "det gcd lcm mod deg frac".split()
)


def is_prose(text: str) -> bool:
    """Words rather than mathematics: a run of 3+ letters that is not a LaTeX command or a
    function name ("a feline", "Product availability"). math-verify would read "cat" as
    c*a*t, so prose never goes to it."""
    text = re.sub(r"_\{[^{}]*\}", " ", strip_delimiters(text))  # subscripts name things
    text = re.sub(r"\\(?:begin|end)\s*\{\w+\*?\}", " ", text)  # matrix environments
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
    text = LATEX_WRAPPERS.sub(" ", text)  # \\text{max} and \\operatorname{lcm} are LaTeX
    if _BARE_FUNCTION.search(text):
        return True
    return any(unicodedata.combining(c) for c in text)  # NFKC already: only marks left apart


# --- the rules, cheapest first ------------------------------------------------------------


def units_differ(candidate: str, reference: str) -> bool:
    """Two numbers in different named units the rules could not convert ("5 N" against
    "5 kg"): math-verify drops units and would call them equal, so they go to a reader."""
    x, y = parse_number(candidate), parse_number(reference)
    if x is None or y is None:
        return False
    if x.percent != y.percent and bool(x.unit or y.unit):
        return True  # "5%" against "5 cm"
    return bool(x.unit and y.unit) and x.unit != y.unit


_HAS_MATH = re.compile(r"[\d\\^_=+*/<>≤≥πθα-ωΑ-Ω√∞]")


def compare_numeric_against_words(candidate: str, reference: str) -> bool | None:
    """A numeric reference against an answer in plain words without any number or math
    ("Product availability", "Insufficient data"): different."""
    if parse_number(reference) is None:
        return None
    text = strip_delimiters(candidate)
    if _HAS_MATH.search(text) or not re.search(r"[^\W\d_]{2,}", text):
        return None
    if text.lower() in WORD_NUMBERS or len(text) < 2:
        return None
    return False


# The rules in the order they are tried, cheapest first: (name, rule(candidate, reference, question)).
_RULES: tuple[tuple[str, Callable[[str, str, str | None], bool | None]], ...] = (
    ("exact", lambda c, r, q: compare_exact(c, r)),
    ("choice", compare_choice),
    ("time", compare_times),
    ("number", compare_number),
    ("interval", compare_intervals),
    ("definition", compare_definitions),
    ("list", compare_lists),
    ("words", compare_words),
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
