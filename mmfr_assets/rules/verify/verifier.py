"""`AnswerVerifier`: rules first, math-verify in workers for what they leave, per row or per
batch. Importable without Dagster (distillation validates generated traces with it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mmfr_assets.rules.verify import extract, rules
from mmfr_assets.rules.verify.workers import MATH_VERIFY_TIMEOUT_S, MathVerifyPool


@dataclass(frozen=True)
class Item:
    """One answer to check: the candidate's final answer (None if the trace commits to none),
    the reference, and the question (its option list serves the multiple-choice rule)."""

    candidate: str | None
    reference: str | None
    question: str | None = None


@dataclass(frozen=True)
class Verdict:
    """`equivalent` None means undecided: `method` is then "undecided" and `detail` says why
    (no final answer, no reference, math-verify timeout/error, or no rule applied)."""

    equivalent: bool | None
    method: str
    detail: str = ""

    @property
    def weak(self) -> bool:
        """A "different" that may be the verifier's failure rather than the answer's: math-verify
        says different wherever it fails to parse or to simplify one side. A judge, where one is
        configured, gets the last word on these; rules that understand both sides are strong."""
        return self.equivalent is False and self.method in WEAK_METHODS


UNDECIDED = "undecided"
#: Methods whose "different" is weak (`Verdict.weak`).
WEAK_METHODS = frozenset({"math_verify"})


def answers_of(item: Item) -> Item:
    """The item with each answer reduced to what it commits to (`extract.answer_of`: a
    sentence around a `\\boxed{}` or after "the answer is")."""
    candidate = extract.answer_of(item.candidate) if item.candidate else item.candidate
    reference = extract.answer_of(item.reference) if item.reference else item.reference
    return Item(candidate, reference, item.question)


def verify_rules(item: Item) -> Verdict:
    """The rules alone (no math-verify): a decided verdict, or undecided with the reason."""
    if item.candidate is None or not item.candidate.strip():
        return Verdict(None, UNDECIDED, "no_final_answer")
    if item.reference is None or not item.reference.strip():
        return Verdict(None, UNDECIDED, "no_reference")
    item = answers_of(item)
    if extract.box_count(item.candidate) > 1:
        # "\\boxed{3} \\boxed{4}": several answers; math-verify would match any one of them
        return Verdict(None, UNDECIDED, "parts_differ")
    verdict, rule = rules.decide(item.candidate, item.reference, item.question)
    if verdict is None:
        if rules.both_times(item.candidate, item.reference):
            return Verdict(None, UNDECIDED, "time_ambiguous")  # "7:15" against "7:15 PM"
        if rules.order_unknown(item.candidate, item.reference, item.question):
            return Verdict(None, UNDECIDED, "order_unknown")  # "7, 3" against "3, 7", nothing said
        if rules.units_differ(item.candidate, item.reference):
            # the same or another number in units the rules cannot convert: math-verify
            # drops units ("5 m" = "5 cm" to it), so a reader decides
            return Verdict(None, UNDECIDED, "units_differ")
        if rules.parts_differ(item.candidate, item.reference):
            # several answers against one (or another count): which part was asked is a
            # reader's call, not math-verify's (it would match any one part)
            return Verdict(None, UNDECIDED, "parts_differ")
        if rules.is_prose(item.candidate) or rules.is_prose(item.reference):
            return Verdict(None, UNDECIDED, "prose")  # a reader's call (the judge)
        if rules.is_plain_text_math(item.candidate) or rules.is_plain_text_math(item.reference):
            return Verdict(None, UNDECIDED, "plain_text_math")  # math-verify would misread it
        return Verdict(None, UNDECIDED, "rules_undecided")
    return Verdict(verdict, rule)


def _math_verify_verdict(outcome: tuple[bool | None, str]) -> Verdict:
    """math-verify proves equivalence; its False is taken as "different" only because the
    rules before it already failed to match the two: both sides parsed as mathematics."""
    equivalent, status = outcome
    if status == "ok":
        return Verdict(equivalent, "math_verify")
    return Verdict(None, UNDECIDED, f"math_verify_{status}")


def math_verify_pair(item: Item) -> tuple[str, str]:
    """(reference, candidate) as math-verify gets them: answers reduced, delimiters stripped,
    a function's name set aside ("f(x) = 2x + 3" against "y = 2x + 3" is compared as
    2x + 3 against 2x + 3; math-verify would compare the names too)."""
    item = answers_of(item)
    candidate, reference = rules.equation_sides(item.candidate, item.reference)
    return degrees_as_radians(rules.strip_delimiters(reference)), degrees_as_radians(rules.strip_delimiters(candidate))


_TRIG = re.compile(r"\\(?:arc)?(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)")


def degrees_as_radians(text: str) -> str:
    """Angles in degrees inside a text with trigonometric functions, as radians: math-verify
    drops the degree sign ("\\cos(90^\\circ - x)" would be cos(90 - x), in radians).
    Texts without such functions keep their degrees ("45°" against "45" is the number rule's)."""
    if not _TRIG.search(text):
        return text
    return _DEGREES.sub(lambda m: f"(\\frac{{{m[1]}\\pi}}{{180}})", text)


class AnswerVerifier:
    """Verifies answers with the rules, then math-verify in `workers` processes (each item
    killed after `timeout_s`, then undecided). A context manager: the pool lives inside it.

    `use_math_verify=False` gives the rules alone (nothing is started).
    """

    def __init__(
        self, *, workers: int | None = None, timeout_s: float = MATH_VERIFY_TIMEOUT_S,
        use_math_verify: bool = True,
    ) -> None:
        self.use_math_verify = use_math_verify
        self._pool = MathVerifyPool(workers, timeout_s) if use_math_verify else None

    def __enter__(self) -> AnswerVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    @property
    def timeouts(self) -> int:
        """Items math-verify did not finish in time so far."""
        return self._pool.killed if self._pool is not None else 0

    def verify(self, candidate: str | None, reference: str | None, question: str | None = None) -> Verdict:
        return self.verify_many([Item(candidate, reference, question)])[0]

    def verify_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts in the items' order. Rules run here; the pairs they leave undecided go to
        the math-verify workers together."""
        verdicts = [verify_rules(item) for item in items]
        if self._pool is None:
            return verdicts
        pending = [k for k, v in enumerate(verdicts) if v.detail == "rules_undecided"]
        pairs = [math_verify_pair(items[k]) for k in pending]
        unique = list(dict.fromkeys(pairs))  # e.g. a student's samples repeating one answer
        outcomes = dict(zip(unique, self._pool.run(unique)))
        for k, pair in zip(pending, pairs):
            verdicts[k] = _math_verify_verdict(outcomes[pair])
        return verdicts
