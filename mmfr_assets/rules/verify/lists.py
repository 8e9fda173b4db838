"""Answers that are lists: splitting one ("2, 4", "(8, 13)", "\\{1, 2\\}", "x = 2 and y = 3",
"(a) 5 (b) 7", a column vector), what the question says about its order (`list_kind`), and
comparing two item by item, as tuples, sets, named parts or, where nothing says whether order
matters, in order only (a reordering is left to a reader: `order_unknown`).

Written by hand, as the other rules are (see `rules`): math-verify compares lists as sets, so
"(3, 7, -1)" would pass for "(7, 3, -1)" there.
"""

from __future__ import annotations

import functools
import re

from mmfr_assets.rules.verify import closed_form, forms
from mmfr_assets.rules.verify.reading import LATEX_DROP, LATEX_WRAPPERS, THOUSANDS, parse_number, strip_delimiters
from mmfr_assets.rules.verify.scalars import scalar_equal

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
_ANGLE = re.compile(r"^(?:\\left\s*)?\\langle(?P<body>.*?)(?:\\right\s*)?\\rangle$", re.DOTALL)
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
