"""The :class:`Problem` record shared by every problem family, and small helpers.

A Problem carries everything the prose builders (``text.py``) and the figure
drawer (``figures.py``) need, so that the question, the picture, the caption
and the reasoning trace of a synthetic row all talk about the *same* numbers.
The maths is real (answers are correct): downstream stages and humans reading
the demo sample should see plausible data, not lorem ipsum.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

LETTERS = "ABCD"


@dataclass
class Problem:
    """One visual question with its solution, figure spec and prose material."""

    kind: str
    figure: dict  # drawing parameters for images.draw_figure
    image_type: str  # caption header, e.g. "Geometric Diagram"
    scene: str  # one-sentence caption summary
    statement: str  # English question, without "<image>" and choices
    statement_zh: str  # Chinese version (BMMR originals)
    goal: str  # "the measure of ∠C"
    givens: list[str]
    value: str  # correct answer with unit, "70°"
    plain: str  # correct answer without unit, "70"
    distractors: list[str]  # three wrong values, same format as ``value``
    principle: str
    principle_zh: str
    calc: str  # language-neutral formula line
    steps: list[str]  # derivation sentences for the trace
    checks: list[str]  # verification sentences
    components: list[tuple[str, str, str]]  # caption bullets: name, label, description
    relations: list[str]
    inferred: list[str]
    pitfalls: list[tuple[str, str]]  # (mistake description, wrong value it produces)
    whatif: Callable[[random.Random], str]  # fresh counterfactual sentence
    context: list[str] = field(default_factory=list)  # word-problem framings (WeMath)
    choices: list[str] | None = None  # filled by with_choices
    letter: str | None = None

    def with_choices(self, rng: random.Random, consecutive: bool = False) -> "Problem":
        """Attach four shuffled options (correct value + distractors)."""
        if consecutive and self.plain.isdigit():
            n = int(self.plain)
            start = max(1, n - rng.randint(0, 3))
            unit = self.value[len(self.plain):]
            opts = [f"{k}{unit}" for k in range(start, start + 4)]
        else:
            opts = [self.value, *self.distractors[:3]]
            rng.shuffle(opts)
        self.choices = opts
        self.letter = LETTERS[opts.index(self.value)]
        return self


def fmt(x: float | Fraction) -> str:
    """Format a number the way a textbook would (no trailing .0)."""
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def distinct(value: str, candidates: list[str], rng: random.Random, extra: Callable[[], str]) -> list[str]:
    out: list[str] = []
    for c in candidates:
        if c != value and c not in out and not c.startswith("-") and not c.startswith("0"):
            out.append(c)
    while len(out) < 3:
        c = extra()
        if c != value and c not in out:
            out.append(c)
    rng.shuffle(out)
    return out[:3]


def pick_labels(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice([("A", "B", "C"), ("A", "B", "C"), ("P", "Q", "R"), ("D", "E", "F"), ("M", "N", "K")])
