"""Is a reference answer one a rule can check at training time? The RL reward is computed by
rules (verl's `reward_model.style: rule`; OpenMMReasoner's 0.9 x accuracy + 0.1 x format), so
an RL prompt needs a reference of a form rules compare: a choice, a number, a short expression
or set; not prose ("the boy is sad because ..."), which only a judge could score.

The form is read with the verifier's own readers (`rules/verify`: option letters, numbers with
units, clock times, intervals, lists and sets, closed vocabularies, prose), so "checkable" means
what our verifier, and the reward function shipped with the verl export, can decide.
"""

from __future__ import annotations

from mmfr_assets.rules.verify import forms, reading, rules

#: Every form `reference_form` names, checkable ones first.
CHECKABLE_FORMS = ("choice", "number", "time", "interval", "set", "word", "expression")
NOT_CHECKABLE_FORMS = ("prose", "long", "none")
#: Longest short expression (characters, delimiters stripped) counted as rule-checkable.
MAX_EXPRESSION_CHARS = 80


def reference_form(reference: str | None, question: str | None = None, *,
                   max_expression_chars: int = MAX_EXPRESSION_CHARS) -> str:
    """The form of a reference answer: `choice` (an option letter, or several), `number` (with
    an optional unit), `time`, `interval`, `set` (a list, tuple or set of short items), `word`
    (yes/no, a colour, a direction, ...), `expression` (short mathematics); not checkable:
    `prose` (words), `long` (an expression longer than `max_expression_chars`), `none` (blank)."""
    text = reading.strip_delimiters(reference or "") if reference else ""
    if not text.strip():
        return "none"
    if rules.as_letter(text, forms.options(question)) or rules.letter_set(text):
        return "choice"
    if reading.parse_number(text) is not None:
        return "number"
    if forms.read_time(text) is not None:
        return "time"
    if forms.read_intervals(text):
        return "interval"
    if forms.closed_word(text) is not None:
        return "word"
    if rules.is_prose(text):
        return "prose"
    if len(text) > max_expression_chars:
        return "long"
    if rules.split_items(text) is not None:
        return "set"
    return "expression"


def is_checkable(form: str, allowed: tuple[str, ...] | list[str] = CHECKABLE_FORMS) -> bool:
    return form in allowed
