"""Where the answers are: the final answer a trace commits to, and the reference it is checked
against.

A trace's final answer is the last `<answer>…</answer>` pair after `</think>`; failing that,
the last pair anywhere; failing that, the last `\\boxed{…}` (braces balanced, since answers are
LaTeX). References come from the first non-blank of several columns (the dataset's `answer`,
the answer cleaning extracted, the original answer), and a reference that is a worked solution
("… Answer: C", "\\boxed{9}") is reduced to what it concludes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_ANSWER_PAIR = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = "</think>"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "Answer: C", "[Answer] 5", "The answer is 12." at the end of a worked reference solution.
_ANSWER_LINE = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:final\s+)?answer(?:\*\*)?\s*[:：\]]\s*(?:\*\*)?(.+?)\s*$",
    re.IGNORECASE | re.DOTALL,
)
#: Reference columns, in order of trust: the row's answer (cleaning fills `answer` with the
#: answer it extracted from a solution where the dataset had none: `answer_origin`), cleaning's
#: `answer_reference` (answer, else the solution) where a table carries it, the answer as
#: first published. Columns a table lacks are skipped.
REFERENCE_COLUMNS = ("answer", "answer_reference", "original_answer")


def _closing(text: str, start: int) -> int | None:
    """Index of the brace closing the group opened just before `start`, None if never closed."""
    depth, i = 1, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{…}` in `text`, braces balanced; None if there is none
    or it is never closed."""
    for match in reversed(list(_BOXED.finditer(text))):
        end = _closing(text, match.end())
        if end is not None:
            return text[match.end() : end]
    return None


# What may stand between several boxes of one answer: connectives, commas, math delimiters,
# a name ("x = "), a part label ("(a)"), "\\text{ and }", "\\quad".
_BETWEEN_BOXES = re.compile(
    r"^(?:\s|\$|\\[(),;]|\\q?quad|[,;.&]|\\text\s*\{\s*(?:and|or|,)?\s*\}|\band\b|\bor\b)*$"
)
_BOX_PREFIX = re.compile(
    r"(?P<label>\(\s*(?:[a-h]|[1-9]|i{1,3}|iv|I{1,3}|IV)\s*\)\s*)?(?P<name>[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?$"
)


def joined_boxes(text: str) -> str | None:
    """Several `\\boxed{}` that together make one answer, as one list: "\\boxed{3} and
    \\boxed{-1}" -> "3, -1", "x = \\boxed{2} or x = \\boxed{3}" -> "x = 2, x = 3", "(a)
    \\boxed{5} (b) \\boxed{7}" -> "(a) 5, (b) 7". None when anything else stands between or
    around them (a sentence: which box is the answer is then a reader's call)."""
    parts, last = [], 0
    for match in _BOXED.finditer(text):
        if match.start() < last:
            continue  # a box inside a box
        end = _closing(text, match.end())
        if end is None:
            return None
        before = text[last : match.start()]
        prefix = _BOX_PREFIX.search(before)
        if not _BETWEEN_BOXES.match(before[: prefix.start()]):
            return None
        parts.append(f"{prefix['label'] or ''}{prefix['name'] or ''}{text[match.end() : end].strip()}")
        last = end + 1
    if len(parts) < 2 or not _BETWEEN_BOXES.match(text[last:]):
        return None
    return ", ".join(parts)


def final_answer(trace: str | None) -> str | None:
    """The answer a reasoning trace ends on (None when it commits to none).

    The `<answer>` pair after `</think>` wins (the think block may quote tags while
    reasoning); else the last pair anywhere; else the last `\\boxed{}`. A `\\boxed{}` inside
    the chosen pair is unwrapped.
    """
    if not trace:
        return None
    cut = trace.rfind(_THINK_CLOSE)
    pairs = _ANSWER_PAIR.findall(trace[cut + len(_THINK_CLOSE) :]) if cut >= 0 else []
    if not pairs:
        pairs = _ANSWER_PAIR.findall(trace)
    if pairs:
        answer = pairs[-1]
        boxed = last_boxed(answer)
        return (boxed if boxed is not None else answer).strip()
    boxed = last_boxed(trace[cut:] if cut >= 0 else trace)
    if boxed is None and cut >= 0:
        boxed = last_boxed(trace)
    return boxed.strip() if boxed is not None else None


def conclusion(text: str) -> str:
    """What a reference text concludes: the content of its answer pair or last `\\boxed{}`,
    or what follows a final "Answer:" line; the whole (stripped) text otherwise."""
    found = final_answer(text)
    if found:
        return found
    match = _ANSWER_LINE.search(text)
    if match and match.group(1).strip() and "\n" not in match.group(1).strip():
        return match.group(1).strip()
    return text.strip()


# "The answer is 5.", "Therefore, the final answer is 12", "**Final Answer:** 42": the last
# such phrase; what follows it must be short to be the answer itself.
_SENTENCE_ANSWER = re.compile(
    r"^.*\b(?:the\s+)?(?:final\s+)?answer(?:\*\*)?\s*(?:is\b\s*:?|:)\s*(?:\*\*)?\s*(?P<answer>.+?)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SHORT_ANSWER = 60
# The sign-off of the Minerva prompt format ("Final Answer: The final answer is $12$. I hope it
# is correct."), as lm-eval's minerva_math task strips it.
_HOPE = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)


def box_count(text: str) -> int:
    """How many `\\boxed{}` (or `\\fbox{}`) a text holds."""
    return len(_BOXED.findall(text))


def answer_of(text: str) -> str:
    """What an answer that is a sentence commits to: the `\\boxed{}` in it, else what
    follows its last "the answer is" / "Answer:" when that is short; the text itself
    otherwise ("5" stays "5"). Final answers sometimes hold a whole sentence
    (`<answer>The answer is $\\boxed{5}$</answer>`)."""
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        # one box: its content; several ("x = \\boxed{2} or \\boxed{3}") are one list when
        # only connectives stand between them, else several answers
        return boxed.strip() if box_count(text) == 1 else (joined_boxes(text) or text)
    match = _SENTENCE_ANSWER.match(_HOPE.sub("", text))
    if match and len(match["answer"]) <= _SHORT_ANSWER and "\n" not in match["answer"]:
        return match["answer"].strip()
    return text


def reference_answer(
    row: Mapping[str, Any], columns: Sequence[str] = REFERENCE_COLUMNS
) -> tuple[str | None, str | None]:
    """(reference answer, the column it came from): the first of `columns` present in `row`
    and not blank, reduced to its conclusion; (None, None) when every one is blank."""
    for column in columns:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return conclusion(value), column
    return None, None
