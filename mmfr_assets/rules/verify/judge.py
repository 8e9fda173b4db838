"""Reading the judge's reply: strict about meaning, tolerant of form.

The prompt (`prompts/answer_judge.*`) asks for two lines, `Analysis: …` and
`JUDGMENT: EQUIVALENT|DIFFERENT`. Models wrap that in thinking, code fences, bold markers, or
restate the format first, so: thinking is removed, the *last* `JUDGMENT:` line counts, and its
value must be exactly one of the two words (after markup): "NOT EQUIVALENT" is different, and
anything else ("UNSURE", "PARTIALLY EQUIVALENT", nothing) is unparsed, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmfr_assets.llm.replies import is_blank, visible_text

_JUDGMENT = re.compile(r"^[\s>*_#`-]*judg(?:e)?ment[\s*_`]*[:：][\s*_`]*(.*?)[\s*_`.!]*$", re.IGNORECASE | re.MULTILINE)
_ANALYSIS = re.compile(r"^[\s>*_#`-]*analysis[\s*_`]*[:：][\s*_`]*(.*)$", re.IGNORECASE | re.MULTILINE)
_NEGATED = re.compile(r"^(?:not|non|in)[\s_-]*equivalent$")


@dataclass(frozen=True)
class Judgment:
    """`equivalent` None: the reply had no readable judgment (`analysis` then holds why)."""

    equivalent: bool | None
    analysis: str


def parse_judgment(reply: str | None) -> Judgment:
    if is_blank(reply):
        return Judgment(None, "empty reply")
    text = visible_text(reply)
    found = list(_JUDGMENT.finditer(text))
    if not found:
        return Judgment(None, "no JUDGMENT line in the reply")
    last = found[-1]
    value = re.sub(r"[^a-z_\- ]", "", last.group(1).lower()).strip()
    value = re.sub(r"\s+", " ", value)
    analyses = [m for m in _ANALYSIS.finditer(text) if m.start() < last.start()]
    analysis = analyses[-1].group(1).strip() if analyses else text[: last.start()].strip()[-500:]
    if value == "equivalent":
        return Judgment(True, analysis)
    if value == "different" or _NEGATED.match(value):
        return Judgment(False, analysis)
    return Judgment(None, f"unreadable judgment {last.group(1).strip()[:80]!r}")
