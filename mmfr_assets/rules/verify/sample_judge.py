"""Reading the judge's reply about several numbered answers (`prompts/sample_judge.*`).

Strict about meaning, as `parse_judgment`: each `JUDGMENT <n>:` line must carry exactly
EQUIVALENT or DIFFERENT (NOT EQUIVALENT is different); a number asked about with no readable
line, or with two lines that disagree, stays undecided. Tolerant of form: thinking, code
fences, bold markers, `Answer 2` or `#2` instead of `2`, full-width colons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmfr_assets.llm.replies import is_blank, visible_text

_LINE = re.compile(
    r"^[\s>*_#`-]*judg(?:e)?ment[\s*_`]*(?:(?:answer|candidate|no\.?)\s*)?#?\s*(\d+)[\s*_`)]*[:：]"
    r"[\s*_`]*(.*?)[\s*_`.!]*$",
    re.IGNORECASE | re.MULTILINE,
)
_NEGATED = re.compile(r"^(?:not|non|in)[\s_-]*equivalent$")


@dataclass(frozen=True)
class SampleJudgments:
    """`verdicts`: answer number (from 1) -> True/False for every number read;
    `unread`: the numbers asked about with no readable judgment, and why."""

    verdicts: dict[int, bool]
    unread: dict[int, str]


def _value(raw: str) -> bool | None:
    value = re.sub(r"\s+", " ", re.sub(r"[^a-z_\- ]", "", raw.lower())).strip()
    if value == "equivalent":
        return True
    if value == "different" or _NEGATED.match(value):
        return False
    return None


def parse_sample_judgments(reply: str | None, count: int) -> SampleJudgments:
    """The judgments of answers 1..`count` in `reply`."""
    text = visible_text(reply or "")
    seen: dict[int, set[bool | None]] = {}
    for match in _LINE.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= count:
            seen.setdefault(number, set()).add(_value(match.group(2)))
    verdicts: dict[int, bool] = {}
    unread: dict[int, str] = {}
    for number in range(1, count + 1):
        values = seen.get(number)
        if not values:
            unread[number] = "empty reply" if is_blank(text) else "no JUDGMENT line"
        elif None in values:
            unread[number] = "unreadable judgment"
        elif len(values) > 1:
            unread[number] = "contradicting judgments"
        else:
            verdicts[number] = next(iter(values))
    return SampleJudgments(verdicts, unread)
