"""Do two reference answers mean the same thing? For near-duplicate removal (issue 30): two rows
are one problem only when their answers agree, so an answer comparison without a model and
without worker processes, in microseconds: the verifier's rules (`verify_rules`), with each
row's option letter first resolved to its option text (the same problem with its options
shuffled has the same answer text under different letters).
"""

from __future__ import annotations

from mmfr_assets.rules.verify import forms, rules
from mmfr_assets.rules.verify.verifier import Item, verify_rules


def option_text(answer: str, question: str | None) -> str:
    """The text of the option an answer names ("B" -> "5" where the question lists "B. 5");
    the answer itself when it names none or the question lists no options."""
    choices = forms.options(question)
    letter = rules.as_letter(answer, choices) if choices else None
    return choices[letter] if letter in choices else answer


def same_answer(a: str | None, b: str | None, question: str | None = None,
                other_question: str | None = None) -> bool | None:
    """True when the answers mean the same (letters resolved to option text, numbers as
    numbers, lists, intervals, times, closed-vocabulary words: the verifier's rules), False when
    they clearly differ, None when the rules cannot tell (prose a reader must judge,
    expressions only math-verify could compare, a missing answer). A caller that must never
    merge two different problems treats None as "not the same".

    `question` is `a`'s question (its options resolve `a`'s letter; it also says whether a list
    is ordered), `other_question` `b`'s (the same question when not given)."""
    if not a or not b or not a.strip() or not b.strip():
        return None
    other = question if other_question is None else other_question
    shared = question if question == other else None  # list order: only a question both share
    return verify_rules(Item(option_text(a, question), option_text(b, other), shared)).equivalent
