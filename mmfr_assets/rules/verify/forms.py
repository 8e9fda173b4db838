"""Readers of answer forms the number and list rules do not cover: clock times, intervals,
words from closed vocabularies, units of measure, and the option list of a question.

Each reader returns a small value (or None when the text is not of that form); the rules in
`rules.py` compare two such values. Written by hand, as the rules are: these are exact-format
readers that cost microseconds, and the libraries that know these notations (sympy through
math-verify, pint for units) either misread them (math-verify reads "20:34" as a ratio and
"i" as a symbol, and strips units) or would add a dependency for a dozen conversions.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mmfr_assets.rules.verify import words

# --- clock times ----------------------------------------------------------------------------

_TIME = re.compile(
    r"^(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\s*"
    r"(?P<ampm>[ap]\.?\s?m\.?|in\s+the\s+(?:morning|afternoon|evening))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ClockTime:
    """A time of day as written: hours, minutes, seconds, and "am"/"pm" when given."""

    hours: int
    minutes: int
    seconds: int
    half: str | None
    padded: bool = False  # "07:15": a 24-hour clock's way to write the hour

    def seconds_of_day(self) -> int:
        hours = self.hours
        if self.half is not None:
            hours = hours % 12 + (12 if self.half == "pm" else 0)
        return hours * 3600 + self.minutes * 60 + self.seconds


def read_time(text: str) -> ClockTime | None:
    """"20:34", "20:34:00", "8:30 PM", "6:00 a.m." (two-digit minutes: "3:4" is a ratio)."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    h, m, s = int(match["h"]), int(match["m"]), int(match["s"] or 0)
    half = None
    if match["ampm"]:
        said = match["ampm"].lower()
        half = "am" if said.startswith("a") or said.endswith("morning") else "pm"
        if not 1 <= h <= 12:
            return None
    if h > 24 or m > 59 or s > 59:
        return None
    return ClockTime(h, m, s, half, len(match["h"]) == 2)


def times_equal(x: ClockTime, y: ClockTime) -> bool | None:
    """The same time of day; a side without am/pm is read as the 24-hour clock. Where that side
    could be a 12-hour time without am/pm (hour 1-12 not written "07"), the same time against
    "7:15 AM", or twelve hours apart ("2:30" against "14:30", "7:15" against "7:15 PM", "12:00"
    against "12:00 AM"), is undecided: it may mean either."""
    twelve_hour = any(t.half is None and 1 <= t.hours <= 12 for t in (x, y))
    if x.seconds_of_day() == y.seconds_of_day():
        one_said = (x.half is None) != (y.half is None)
        bare = x if x.half is None else y
        # "7:15" against "7:15 AM": the bare side may be the evening on a 12-hour clock
        return None if one_said and 1 <= bare.hours <= 12 and not bare.padded else True
    if twelve_hour and abs(x.seconds_of_day() - y.seconds_of_day()) == 12 * 3600:
        return None
    return False


# --- intervals ------------------------------------------------------------------------------

_UNION = re.compile(r"\\cup|∪|\s+U\s+")
_INTERVAL = re.compile(r"^\s*([(\[])\s*([^,()\[\]]+?)\s*,\s*([^,()\[\]]+?)\s*([)\]])\s*$")
_INFINITY = re.compile(r"^([+-]?)\s*(?:\\infty|∞|inf|infinity|oo)$", re.IGNORECASE)


@dataclass(frozen=True)
class Interval:
    """One interval as written: brackets and the two endpoint texts."""

    opening: str
    low: str
    high: str
    closing: str

    @property
    def round(self) -> bool:
        return self.opening == "(" and self.closing == ")"


def read_intervals(text: str) -> list[Interval] | None:
    """An interval or a union of intervals ("[0, 1)", "(-\\infty, 0) \\cup (1, \\infty)"), the
    text already stripped of delimiters and `\\left`/`\\right`; None for anything else."""
    parts = _UNION.split(text)
    found = []
    for part in parts:
        match = _INTERVAL.match(part)
        if not match:
            return None
        found.append(Interval(*match.groups()))
    return found


def is_interval_notation(intervals: list[Interval] | None) -> bool:
    """Certainly an interval, not a point or a tuple: a union, a square bracket, or an
    infinite endpoint ("(0, 1)" alone could be either, and stays a tuple)."""
    if not intervals:
        return False
    if len(intervals) > 1:
        return True
    one = intervals[0]
    return not one.round or bool(infinity(one.low) or infinity(one.high))


def half_open(interval: Interval) -> bool:
    return (interval.opening == "(") != (interval.closing == ")")


def infinite(interval: Interval) -> bool:
    return bool(infinity(interval.low) or infinity(interval.high))


def infinity(endpoint: str) -> str | None:
    """"+inf" or "-inf" for an infinite endpoint, None for a finite one."""
    match = _INFINITY.match(endpoint.strip())
    if not match:
        return None
    return "-inf" if match.group(1) == "-" else "+inf"


# --- words from closed vocabularies: `words` (re-exported here) ---------------------------

closed_word = words.closed_word


# --- units ----------------------------------------------------------------------------------

_BASE_UNITS: dict[str, tuple[str, float]] = {}
for _names, _dimension, _factor in (
    ("mm millimeter millimeters millimetre millimetres", "length", 1e-3),
    ("cm centimeter centimeters centimetre centimetres", "length", 1e-2),
    ("m meter meters metre metres", "length", 1.0),
    ("km kilometer kilometers kilometre kilometres", "length", 1e3),
    ("mg milligram milligrams", "mass", 1e-6),
    ("g gram grams", "mass", 1e-3),
    ("kg kilogram kilograms", "mass", 1.0),
    ("ms millisecond milliseconds", "time", 1e-3),
    ("s sec secs second seconds", "time", 1.0),
    ("min mins minute minutes", "time", 60.0),
    ("h hr hrs hour hours", "time", 3600.0),
    ("ml milliliter milliliters millilitre millilitres", "volume", 1e-3),
    ("l liter liters litre litres", "volume", 1.0),
):
    for _name in _names.split():
        _BASE_UNITS[_name] = (_dimension, _factor)

_POWER = re.compile(r"^(?P<base>[a-zµμ]+)\s*(?:\^\s*\{?\s*(?P<p>[23])\s*\}?|(?P<sup>[²³]))?$")


def unit_scale(unit: str) -> tuple[str, float] | None:
    """(dimension, factor to the base unit) of a unit such as "cm", "km", "min", "cm^2",
    "m³" (lower-case, as `rules.parse_number` gives it); None for a unit not in the table."""
    match = _POWER.match(unit.strip().lower())
    if not match or match["base"] not in _BASE_UNITS:
        return None
    dimension, factor = _BASE_UNITS[match["base"]]
    power = int(match["p"] or {"²": 2, "³": 3}.get(match["sup"] or "", 1))
    return (f"{dimension}^{power}" if power > 1 else dimension), factor**power


# --- option lists ---------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])\s*[.:)、]\s*(.+?)\s*$", re.MULTILINE)
# An option marker inside a line: "(A)" anywhere after a space or punctuation, or "A." / "A:"
# / "A)" / "A、" there ("A.256; B.512", "(A) 256 (B) 512", "A: 256").
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s;,。:]))(?:\(([A-J])\)|([A-J])\s*[.:)、])", re.MULTILINE)
_OPTION_TAIL = " \t;,.。"


def _consecutive(letters: list[str]) -> bool:
    return letters == [chr(ord("A") + i) for i in range(len(letters))]


@functools.lru_cache(maxsize=4096)  # a question is checked once per sample and per rule
def options(question: str | None) -> Mapping[str, str]:
    """Option letter -> option text (read-only: the mapping is cached). One option a line ("A. 80J", "C: 55°", "(B) x"), else
    options inline ("A.256; B.512; C.944", "(A) 256 (B) 512"); full-width punctuation
    ("A．256", "（A）256", "A：256") is read as its ASCII form. Empty when the question lists
    fewer than two options, not from A on, or repeats a letter on its lines."""
    if not question:
        return {}
    text = unicodedata.normalize("NFKC", question)
    found: dict[str, str] = {}
    for letter, option in _OPTION_LINE.findall(text):
        if letter in found:
            found = {}
            break
        found[letter] = option
    if len(found) >= 2 and _consecutive(sorted(found)):
        return MappingProxyType(found)
    return MappingProxyType(_inline_options(text))


def _inline_options(text: str) -> dict[str, str]:
    """The longest run of markers A, B, C, … in order (the last such run on a tie), each
    option's text running to the next marker; the last one to the end of its line."""
    marks = [(m.group(1) or m.group(2), m.start(), m.end()) for m in _OPTION_MARK.finditer(text)]
    best: list[tuple[str, int, int]] = []
    for k, (letter, _, _) in enumerate(marks):
        if letter != "A":
            continue
        chain = [marks[k]]
        for mark in marks[k + 1 :]:
            if mark[0] == chr(ord(chain[-1][0]) + 1):
                chain.append(mark)
        if len(chain) >= 2 and len(chain) >= len(best):
            best = chain
    found = {}
    for i, (letter, _, end) in enumerate(best):
        stop = best[i + 1][1] if i + 1 < len(best) else text.find("\n", end)
        option = text[end : stop if stop >= 0 else len(text)].strip().strip(_OPTION_TAIL).strip()
        if not option:
            return {}
        found[letter] = option
    return found
