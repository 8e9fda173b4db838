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
intervals, closed vocabularies, unit scales, option lists) in `forms`.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping

from mmfr_assets.rules.verify import approximation, closed_form, forms, words
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


# --- lists ----------------------------------------------------------------------------------

_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_DATE = re.compile(
    r"^(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,\s*\d{4}"
    r"|\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*,?\s*\d{4})$",
    re.IGNORECASE,
)


#: How a list is to be compared: in order (a tuple, a point), as a set, or unknown (bare).
TUPLE, SET, BARE = "tuple", "set", "bare"
_PLUS_MINUS = re.compile(r"^(?P<a>[^,;±]*?)\s*(?:\\pm|±)\s*(?P<b>[^,;±]+)$")
# A vector written as a one-column (or one-row) matrix, or in angle brackets: a tuple.
_MATRIX = re.compile(r"^\(?\s*\\begin\{([pbB]?matrix)\}(?P<body>.*?)\\end\{\1\}\s*\)?$", re.DOTALL)
_ANGLE = re.compile(r"^\\langle(?P<body>.*)\\rangle$", re.DOTALL)
# Part labels: "(a) 5 (b) 7", "(1) 5; (2) 7", "(I) 2 (II) 3".
_LABEL = re.compile(r"(?:^|(?<=[\s;,.]))\(\s*(?P<label>[a-h]|[1-9]|i{1,3}|iv|v|I{1,3}|IV|V)\s*\)\s*")
_LABEL_RUNS = ("abcdefgh", "123456789", ("i", "ii", "iii", "iv", "v"), ("I", "II", "III", "IV", "V"))
# "x = 2", "AB = 5", "\\theta = 30°", "mean = 5": a named part.
_NAMED = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z0-9']*(?:_\{?\w+\}?)?|\\[a-zA-Z]+)\s*=\s*(?P<value>[^=]+?)\s*$")


def _wrapped(text: str) -> bool:
    """The first bracket closes at the last character ("(1, 2)", not "{1,3}\\cup{2,4}")."""
    if len(text) < 2 or text[0] not in _BRACKETS or text[-1] != _BRACKETS[text[0]]:
        return False
    depth = 0
    for k, c in enumerate(text):
        depth += c in "({["
        depth -= c in ")}]"
        if depth == 0 and k < len(text) - 1:
            return False
    return depth == 0


def _as_vector(text: str) -> str:
    """"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}" and "\\langle 1, 2 \\rangle" as "(1, 2)";
    a matrix of several rows and columns, or anything else, as it is."""
    angle = _ANGLE.match(text)
    if angle:
        return f"({angle['body'].strip()})"
    matrix = _MATRIX.match(text)
    if not matrix or text.count("\\begin") != 1:
        return text
    rows = [r.strip() for r in re.split(r"\\\\", matrix["body"]) if r.strip()]
    if len(rows) == 1:
        cells = [c.strip() for c in rows[0].split("&")]
    elif all("&" not in r for r in rows):
        cells = rows
    else:
        return text
    return f"({', '.join(cells)})" if len(cells) >= 2 and all(cells) else text


def _labelled(text: str) -> list[str] | None:
    """The parts of "(a) 5 (b) 7" in order, when the labels run from the first of a sequence."""
    marks = list(_LABEL.finditer(text))
    if len(marks) < 2 or marks[0].start() != 0:
        return None
    labels = [m["label"] for m in marks]
    if not any(list(run[: len(labels)]) == labels for run in _LABEL_RUNS):
        return None
    parts = [text[m.end() : (marks[k + 1].start() if k + 1 < len(marks) else len(text))] for k, m in enumerate(marks)]
    parts = [p.strip().strip(",;").strip() for p in parts]
    return parts if all(parts) else None


def _item_like(text: str) -> bool:
    """One answer of a list joined by "and": a number (with a unit), a named value, a constant."""
    named = _NAMED.match(text)
    value = named["value"] if named else text
    return parse_number(value) is not None or closed_form.value(value) is not None


def _top_level_split(text: str) -> list[str] | None:
    """Items split at commas outside brackets, when every item is itself bracketed
    ("(2, 3), (3, 2)"); None otherwise."""
    items, depth, start = [], 0, 0
    for k, c in enumerate(text):
        depth += c in "({["
        depth -= c in ")}]"
        if depth < 0:
            return None
        if c in ",;" and depth == 0:
            items.append(text[start:k].strip())
            start = k + 1
    items.append(text[start:].strip())
    items = [i for i in items if i]
    return items if len(items) >= 2 and all(_wrapped(i) for i in items) else None


def split_items(text: str) -> tuple[list[str], str] | None:
    """(items, kind) for a list: "2, 4", "2 4", "x=1; x=2", "8 and 15", "(2, 3), (3, 2)" (kind
    BARE), "(8, 13)", "[1, 2]", "\\langle 1, 2 \\rangle", a column vector, "(a) 5 (b) 7"
    (TUPLE: points, vectors, labelled parts), "\\{1, 2\\}" (SET), "1 \\pm \\sqrt{2}" (two
    roots, BARE). None for a single item, a half-open or infinite interval or a union (one
    answer), or when commas could be inside LaTeX groups."""
    text = strip_delimiters(text)
    if _DATE.match(text):  # "September 24, 1968" is one answer
        return None
    text = LATEX_WRAPPERS.sub(r"\1", _as_vector(text))
    quads = re.split(r"\\q?quad(?![a-zA-Z])", text)
    if len(quads) > 1 and all("=" in q for q in quads if q.strip()):
        text = "; ".join(q.strip() for q in quads if q.strip())  # "x = 2 \\quad y = 3"
    text = LATEX_DROP.sub("", text).replace("\\{", "{").replace("\\}", "}").strip()
    labelled = _labelled(text)
    if labelled:
        return labelled, TUPLE
    intervals = forms.read_intervals(text)
    if intervals and (len(intervals) > 1 or any(forms.half_open(i) or forms.infinite(i) for i in intervals)):
        return None  # "[0, 1)", "(2, \\infty)": one answer ("[1, 2]" may be a vector: a tuple)
    kind = BARE
    if _wrapped(text):
        kind = SET if text[0] == "{" else TUPLE
        text = text[1:-1]
    nested = _top_level_split(text)
    if nested:
        return nested, kind
    depth = 0
    for c in text:  # a comma inside braces/parentheses is not a separator
        depth += c in "({["
        depth -= c in ")}]"
        if depth < 0:
            return None
        if c in ",;，" and depth > 0:
            return None
    if re.search(r"[,;，]", text):
        if THOUSANDS.fullmatch(text.strip()):
            return None
        items = [t.strip() for t in re.split(r"[,;，]|\band\b", text) if t.strip()]
    elif re.fullmatch(r"\s*-?\d+(?:\.\d+)?(?:\s+-?\d+(?:\.\d+)?)+\s*", text):
        items = text.split()
    elif re.search(r"\s(?:and|&)\s", text) and all(_item_like(t) for t in re.split(r"\s+(?:and|&)\s+", text)):
        items = [t.strip() for t in re.split(r"\s+(?:and|&)\s+", text)]  # "x = 2 and y = 3"
    elif kind == BARE and (pm := _PLUS_MINUS.match(text)):
        a, b = pm["a"].strip(), pm["b"].strip()
        items, kind = ([f"{a}+{b}", f"{a}-{b}"] if a else [b, f"-{b}"]), SET  # both roots
    elif kind == SET and text.strip():
        items = [text.strip()]  # "\\{0\\}": a set of one
    else:
        return None
    return (items, kind) if len(items) >= 2 or kind == SET else None


_ORDERED_QUESTION = re.compile(
    r"ordered\s+(?:pair|triple|tuple|quadruple|list|sequence)|\bin\s+(?:that|this|the\s+same|the\s+given)\s+order"
    r"|\bin\s+(?:increasing|decreasing|ascending|descending)\s+order|from\s+(?:least|smallest|greatest|largest)\s+to"
    r"|(?<![A-Za-z\\])\(\s*[a-zA-Z]\s*(?:,\s*[a-zA-Z]\s*)+\)|\brespectively\b",
    re.IGNORECASE,
)
_SET_QUESTION = re.compile(
    r"\ball\b[^.?!]*\b(?:solutions?|roots?|values?|zeros|zeroes|numbers|integers|possible|pairs|triples"
    r"|divisors|factors|multiples|primes|points|elements)\b"
    r"|separated\s+by\s+commas|\bset\s+of\b",
    re.IGNORECASE,
)
# Several quantities the question names, each its own part: "Find $a$ and $b$", "Find AB and
# BC", "Find the mean and the median", "(a) ... (b) ...". Looked for around each "and" (one
# pattern over the whole question backtracks at every letter: 0.4 ms a question).
_NAME = r"\$?\s*(?:[A-Za-z]|[A-Z]{2})\s*\$?"
_AND = re.compile(r",?\s+and\s+")
_LEFT_NAMES = re.compile(rf"(?<![\w\\$]){_NAME}(?:\s*,\s*{_NAME})*$")
_RIGHT_NAME = re.compile(rf"{_NAME}(?![\w])")
_LEFT_NOUN = re.compile(r"\b(?i:find|compute|determine|calculate|give)\s+the\s+(?!sum\b|product\b)\w+(?:\s+\$[^$]*\$)?$")
_RIGHT_NOUN = re.compile(r"(?:the\s+)?[\w$]")
_LABELLED_QUESTION = re.compile(r"\(\s*(?:a|1|i|I)\s*\)[^()]*\(\s*(?:b|2|ii|II)\s*\)")


def _names_parts(question: str) -> bool:
    for match in _AND.finditer(question):
        left = question[max(0, match.start() - 60) : match.start()]
        right = question[match.end() : match.end() + 20]
        if _RIGHT_NAME.match(right) and _LEFT_NAMES.search(left):
            return True
        if _RIGHT_NOUN.match(right) and _LEFT_NOUN.search(left):
            return True
    return bool(_LABELLED_QUESTION.search(question))


@functools.lru_cache(maxsize=4096)  # a question is asked once per sample of a row
def list_kind(question: str | None) -> str:
    """What the question asks a bare list to be: TUPLE ("the ordered triple (a, b, c)",
    "in increasing order", "respectively", "find $a$ and $b$", "(a) … (b) …"), SET ("all
    solutions", "separated by commas"), or BARE when it says neither. An order named wins over
    a set named, a set named over quantities named."""
    if not question:
        return BARE
    if _ORDERED_QUESTION.search(question):
        return TUPLE
    if _SET_QUESTION.search(question):
        return SET
    if _names_parts(question):
        return TUPLE
    return BARE


def item_equal(x: str, y: str, question: str | None = None) -> bool | None:
    """One item of a list against another: a scalar, or itself a bracketed list."""
    verdict = scalar_equal(x, y, question)
    if verdict is None and x[:1] in _BRACKETS and y[:1] in _BRACKETS:
        return compare_lists(x, y, None)
    return verdict


def _all(verdicts: list[bool | None]) -> bool | None:
    if all(v is True for v in verdicts):
        return True
    return False if any(v is False for v in verdicts) else None


def _in_order(xs: list[str], ys: list[str], question: str | None) -> bool | None:
    if len(xs) != len(ys):
        return False  # tuples of different lengths
    return _all([item_equal(x, y, question) for x, y in zip(xs, ys)])


def _as_multiset(xs: list[str], ys: list[str], question: str | None) -> bool | None:
    """A bare list nothing says the order of: the same items in the same order are
    equivalent, other items different; the same items in another order are undecided
    ("7, 3, -1" against "3, 7, -1": a triple or the roots, only the question can say)."""
    if _in_order(xs, ys, question) is True:
        return True
    remaining = list(ys)
    for x in xs:
        match = next((k for k, y in enumerate(remaining) if item_equal(x, y, question) is True), None)
        if match is None:
            decided = all(item_equal(x, y, question) is not None for y in remaining)
            return False if decided else None
        remaining.pop(match)
    return None


def _as_set(xs: list[str], ys: list[str], question: str | None) -> bool | None:
    """Every item of each side equals some item of the other; different as soon as one item
    is decided different from every item of the other side."""
    for a, b in ((xs, ys), (ys, xs)):
        for x in a:
            verdicts = [item_equal(x, y, question) for y in b]
            if any(v is True for v in verdicts):
                continue
            return False if all(v is False for v in verdicts) else None
    return True


def _names(items: list[str]) -> list[tuple[str, str]] | None:
    """(name, value) of every item when each is named once ("x = 2, y = 3"); None when an
    item has no name or a name repeats ("x = 1, x = 2": the roots of one unknown)."""
    named = [_NAMED.match(i) for i in items]
    if not all(named):
        return None
    pairs = [(m["name"].strip(), m["value"].strip()) for m in named]
    return pairs if len({n for n, _ in pairs}) == len(pairs) else None


_LETTER_TUPLE = re.compile(r"(?<![A-Za-z\\])\(\s*[a-zA-Z]\s*(?:,\s*[a-zA-Z]\s*)+\)")


def _one_name(items: list[str]) -> bool:
    """Every item names the same unknown ("x = 1", "x = 2")."""
    named = [_NAMED.match(i) for i in items]
    return all(named) and len({m["name"].strip() for m in named}) == 1


def _compare_named(xs: list[str], ys: list[str], question: str | None) -> bool | None | str:
    """Lists whose parts are named: name by name when both sides name them ("y=3, x=2"
    against "x=2, y=3"); against an unnamed list in the order written and in the names'
    order, decided only where both orders agree. "skip" when neither side names its parts."""
    nx, ny = _names(xs), _names(ys)
    if nx is None and ny is None:
        return "skip"
    if nx is not None and ny is not None:
        x, y = dict(nx), dict(ny)
        if set(x) != set(y):
            return None  # other names: a reader's call
        return _all([item_equal(x[n], y[n], question) for n in x])
    named, plain = (nx, ys) if nx is not None else (ny, xs)
    if any(_NAMED.match(i) for i in plain):
        return None  # "x = 2, y = 3" against "x = 2, x = 3": a point against two roots
    orders = {tuple(v for _, v in named), tuple(v for _, v in sorted(named))}
    asked = _LETTER_TUPLE.search(question or "")
    if asked and sorted(re.findall(r"[a-zA-Z]", asked[0])) == sorted(n for n, _ in named):
        values = dict(named)  # "the ordered pair (y, x)": the question's order alone
        orders = {tuple(values[n] for n in re.findall(r"[a-zA-Z]", asked[0]))}
    verdicts = {_in_order(list(order), plain, question) for order in orders}
    return verdicts.pop() if len(verdicts) == 1 else None  # the orders disagree: a reader's call


def compare_lists(candidate: str, reference: str, question: str | None) -> bool | None:
    """Two lists item by item. Named parts by name; tuples (bracketed, labelled, or bare where
    the question asks for an order or names the parts) in order; sets (braces, or bare where
    the question asks for all solutions) as sets; bare lists the question says nothing about
    in order, a reordering undecided. A set against a tuple, or lists of other lengths with
    nothing said: undecided."""
    a, b = split_items(candidate), split_items(reference)
    if a is None or b is None:
        return None  # one item against several: only a reader can tell which part was asked
    (xs, x_kind), (ys, y_kind) = a, b
    kinds = {x_kind, y_kind}
    if kinds == {TUPLE, SET}:
        return None
    named = _compare_named(xs, ys, question)
    if named != "skip":
        return named
    if _one_name(xs + ys):
        kind = SET  # "x = 1; x = 2" against "x = 2, x = 1": the values of one unknown
    elif TUPLE not in kinds and all(_wrapped(i) for i in xs + ys):
        # a list of points: the question's "(x, y)" names the points' order, not the list's
        kind = SET if SET in kinds or re.search(r"\ball\b", question or "", re.IGNORECASE) else BARE
    else:
        kind = TUPLE if TUPLE in kinds else SET if SET in kinds else list_kind(question)
    if len(xs) != len(ys) and kinds == {BARE} and kind != SET:
        return None  # parts merged or split ("P_1 = P_2 = T, r" against "T, T, r"): a reader's call
    if kind == TUPLE:
        return _in_order(xs, ys, question)
    if kind == SET:
        return _as_set(xs, ys, question)
    return _as_multiset(xs, ys, question)


def order_unknown(candidate: str, reference: str, question: str | None) -> bool:
    """Two bare lists with the same items in another order where nothing says whether order
    matters: a judge's call (math-verify compares lists as sets and would accept them)."""
    a, b = split_items(candidate), split_items(reference)
    if a is None or b is None or a[1] != BARE or b[1] != BARE or len(a[0]) != len(b[0]):
        return False
    if list_kind(question) != BARE and not all(_wrapped(i) for i in a[0] + b[0]):
        return False
    return _as_multiset(a[0], b[0], question) is None and _as_set(a[0], b[0], question) is True


def both_times(candidate: str, reference: str) -> bool:
    """Both answers are clock times (the time rule's, even where it cannot tell: math-verify
    reads "7:15" as a ratio)."""
    return all(forms.read_time(LATEX_WRAPPERS.sub(r"\1", strip_delimiters(t))) is not None for t in (candidate, reference))


_INEQUALITY = re.compile(r"[<>≤≥]|\\(?:le|ge|leq|geq|lt|gt)(?![a-zA-Z])")
_SET_OPERATION = re.compile(r"\\(?:cup|cap|setminus)(?![a-zA-Z])|[∪∩]")


def parts_differ(candidate: str, reference: str) -> bool:
    """One side lists more items than the other ("g/3" against "(3A-g)/4, (5A+g)/4, g/3").
    Not said of set operations ("\\{1,3\\} \\cup \\{2,4\\}"): those are math-verify's."""
    if any(_SET_OPERATION.search(t) for t in (candidate, reference)):
        return False
    a, b = split_items(candidate), split_items(reference)
    for one, other, text in ((a, b, reference), (b, a, candidate)):
        if one and one[1] == TUPLE and len(one[0]) == 2 and other is None and _INEQUALITY.search(text):
            return False  # "(-3, 3)" against "-3 < x < 3": an open interval, math-verify's
    return (a is None) != (b is None) or (a is not None and b is not None and len(a[0]) != len(b[0]))


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


def scalar_equal(candidate: str, reference: str, question: str | None = None) -> bool | None:
    """Exact, then numbers: the rules used for single items (inside lists and options)."""
    for rule in (compare_exact, compare_number):
        verdict = rule(candidate, reference, question) if rule is compare_number else rule(candidate, reference)
        if verdict is not None:
            return verdict
    return None


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
