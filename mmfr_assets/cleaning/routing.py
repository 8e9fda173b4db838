"""Which questions need the cleaner model: cheap rules first, so most rows cost no request.

The paper sends every question through Qwen3-30B-A3B-Thinking; most published questions need
no change. These rules flag what the review prompt exists to fix (text in another language,
URLs, question numbers, score annotations, stray markup, shallow "just answer" instructions,
tasks without a checkable answer, fragments too short to be a problem), so that with
`review: flagged` only those rows are sent. Vectorized: one Polars expression per rule, run in
Rust over the batch.

A leading `<image>` tag is not noise and is never a reason to route.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

#: Scripts other than Latin (Greek is left out: its letters are mathematical symbols here),
#: and CJK full-width punctuation.
FOREIGN_SCRIPT = (
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Cyrillic}\p{Arabic}\p{Hebrew}"
    r"\p{Devanagari}\p{Thai}\p{Bengali}\p{Tamil}\p{Armenian}\p{Georgian}"
    r"\u3000-\u303f\uff01-\uff0f\uff1a-\uff1f]"
)
#: Common words of Latin-script languages other than English; `RoutingRules.min_foreign_words`
#: of them in a question flag it.
FOREIGN_WORDS = (
    r"(?i)\b(und|der|die|das|ist|nicht|ein|eine|welche|les|est|une|des|dans|pour|quelle|el|los|las|"
    r"una|que|por|para|con|cuál|della|che|sono|qual|não|uma|é|são|dat|het|een|niet)\b"
)
URL = r"(?i)(https?://|www\.)\S+"
#: A question number at the start (after an optional <image> tag): "19.", "3)", "(2)", "Q5:",
#: "Problem 3.", "第3题"; a decimal such as "1.5 m" is not a number.
NUMBERING = (
    r"(?i)^\s*(<image>\s*)*(\d{1,3}\s*[.．、)](?:\s|$|[^\d])|\(\d{1,3}\)|"
    r"(q|question|problem|exercise|example)\s*\d{1,3}\s*[.:)．]|第\s*\d+\s*题)"
)
SCORE = (
    r"(?i)[(\[（【]\s*\d+(\.\d+)?\s*(points?|pts?\.?|marks?|分)\s*[)\]）】]|"
    r"\b\d+\s*(points?|marks?)\s*(each|per|\))|本题\s*\d+\s*分"
)
MARKUP = r"(?i)</?(p|br|div|span|img|table|tr|td|sup|sub|b|i|u|font|strong|em)\b[^>]*>|&(nbsp|lt|gt|amp|quot);"
SHALLOW = (
    r"(?i)(answer (the question )?(directly|briefly|only)|just (give|state|output|answer)|"
    r"(only|directly) (give|output|provide|return|state) (the )?(final )?(answer|option|letter|choice)|"
    r"without (any )?(explanation|reasoning|working)|no (explanation|reasoning) (is )?(needed|required)|"
    r"(using|with) a single (word|phrase|letter|number)|answer with (the|a|an) (option'?s? )?"
    r"(letter|word|number|option)|respond with only|output only)"
)
NON_ANSWER = (
    r"(?i)\b(prove that|show that|write (a|the|an) (program|code|function|script|essay)|"
    r"draw (a|the)|sketch (a|the)|construct (a|the)|implement (a|the))\b"
)

#: Rule name -> a Boolean expression over the text column (built by `route_reasons`).
RULES: dict[str, str] = {
    "foreign_script": FOREIGN_SCRIPT,
    "foreign_words": FOREIGN_WORDS,
    "url": URL,
    "numbering": NUMBERING,
    "score_annotation": SCORE,
    "markup": MARKUP,
    "shallow_instruction": SHALLOW,
    "non_answer_task": NON_ANSWER,
}
_CJK = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"


@dataclass(frozen=True)
class RoutingRules:
    """The routing rules' counts (`question_reviews`' config sets them; these are the defaults)."""

    min_words: int = 4  # fewer words (besides <image> tags) than this: probably an incomplete problem
    min_foreign_words: int = 3  # this many FOREIGN_WORDS in a question: another language


def rule_flags(column: str, rules: RoutingRules = RoutingRules()) -> list[pl.Expr]:
    """One Boolean expression per rule, named `route/<rule>`."""
    text = pl.col(column).fill_null("")
    flags = [
        (text.str.count_matches(pattern) >= rules.min_foreign_words if name == "foreign_words"
         else text.str.contains(pattern))
        .alias(f"route/{name}")
        for name, pattern in RULES.items()
    ]
    # A CJK character counts as a word: those scripts put no spaces between words.
    words = text.str.replace_all(r"<image>", " ").str.count_matches(
        rf"{_CJK}|[^\s\p{{Han}}\p{{Hiragana}}\p{{Katakana}}\p{{Hangul}}]+"
    )
    # Empty text is not "too short": it is dropped as text_empty_question, never sent.
    flags.append(((words > 0) & (words < rules.min_words)).alias("route/too_short"))
    return flags


def route_reasons(batch: pl.DataFrame, column: str = "question", rules: RoutingRules = RoutingRules()) -> pl.Series:
    """Per row, the names of the rules that flag its text (empty list: no review needed)."""
    flags = batch.select(rule_flags(column, rules))
    names = [c.removeprefix("route/") for c in flags.columns]
    reasons = flags.select(
        pl.concat_list(
            [pl.when(pl.col(c)).then(pl.lit(n)).otherwise(pl.lit(None, pl.String))
             for c, n in zip(flags.columns, names)]
        ).list.drop_nulls().alias("route_reasons")
    )
    return reasons.to_series()
