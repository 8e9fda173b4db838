"""The math-verify speed-ups of the workers: the constant shortcut says "different" only for
constants clearly apart, SLL-first parsing falls back to LL, and installed they leave
math-verify's answers as they were (checked in a child process, not to patch this one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sympy

from mmfr_assets.rules.verify.fast_math_verify import (
    clearly_different_constants,
    skip_simplify_for_constants,
    sll_first,
)

x = sympy.Symbol("x")


@pytest.mark.parametrize(
    "a, b, different",
    [
        (sympy.cos(sympy.Rational(3, 4)) ** -2, sympy.acos(sympy.Rational(3, 4)), True),
        (sympy.Integer(2), sympy.Integer(3), True),
        (sympy.sqrt(2), 2 / sympy.sqrt(2), False),  # equal
        (sympy.sin(1) ** 2 + sympy.cos(1) ** 2, sympy.Integer(1), False),  # equal, unsimplified
        (sympy.Rational(1, 3), sympy.Float("0.3333333333"), False),  # within the gap
        (x, sympy.Integer(1), False),  # a free symbol: for simplify to say
        (sympy.Interval(0, 1), sympy.Integer(1), False),  # not an expression
        (sympy.zoo, sympy.Integer(1), False),  # not finite
        (sympy.I, sympy.Integer(1), False),  # not a real number: left to simplify
    ],
)
def test_clearly_different_constants(a, b, different):
    assert clearly_different_constants(a, b) is different


def test_the_shortcut_calls_through_unless_constants_differ():
    calls = []

    def symbolic_eq(a, b):
        calls.append((a, b))
        return True

    fast = skip_simplify_for_constants(symbolic_eq)
    assert fast(sympy.Integer(2), sympy.Integer(3)) is False and calls == []
    assert fast(x + 1, 1 + x) is True and calls == [(x + 1, 1 + x)]


class _Converter:
    sll = False


def test_sll_first_falls_back_to_ll_and_resets():
    modes = []

    def parse(converter, text):
        modes.append(converter.sll)
        if converter.sll and text == "hard":
            raise ValueError("SLL syntax error")
        return text.upper()

    def set_sll(converter, on):
        converter.sll = on

    fast = sll_first(parse, set_sll)
    converter = _Converter()
    assert fast(converter, "easy") == "EASY" and modes == [True]
    assert fast(converter, "hard") == "HARD" and modes == [True, True, False]
    assert converter.sll is False

    def fails(converter, text):
        raise ValueError("no parse")

    with pytest.raises(ValueError):
        sll_first(fails, set_sll)(converter, "bad")
    assert converter.sll is False


_SAME_ANSWERS = r"""
import json, logging, sys
logging.getLogger("math_verify").setLevel(logging.ERROR)
from math_verify import parse, verify, parser
from mmfr_assets.rules.verify import fast_math_verify
pairs = json.loads(sys.stdin.read())
def run():
    out = []
    for gold, answer in pairs:
        g, a = parse(gold, parsing_timeout=None), parse(answer, parsing_timeout=None)
        out.append([[str(e) for e in g], [str(e) for e in a], verify(g, a, timeout_seconds=None)])
    return out
before = run()
for cached in vars(parser).values():  # parse results are cached per string: parse afresh
    if hasattr(cached, "cache_clear"):
        cached.cache_clear()
applied = fast_math_verify.install()
again = fast_math_verify.install()  # idempotent
print(json.dumps([before, run(), applied, again]))
"""

PAIRS = [
    ("$\\sqrt{2gR(1 - \\cos(\\theta))}, \\cos^{-1}\\left(\\frac{2}{3}\\right)$",
     "$\\sqrt{2gR(1 - \\cos\\theta)}, \\arccos\\left(\\frac{2}{3}\\right)$"),
    ("$\\sqrt{3gR(2 - \\cos(\\theta))}, \\cos^{-2}\\left(\\frac{3}{4}\\right)$",
     "$\\sqrt{3gR(2 - \\cos\\theta)}, \\arccos\\left(\\frac{3}{4}\\right)$"),
    ("$(x+1)^2$", "$x^2+2x+1$"),
    ("$\\frac{1}{3}$", "$0.333333$"),
    ("$\\sin^2 1 + \\cos^2 1$", "$1$"),
    ("$e^{i\\pi}$", "$-1$"),
    ("$(1, 2] \\cup [3, \\infty)$", "$x \\le 2$"),
    ("$\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$", "$(1, 2)$"),
    ("$\\frac{1}{2$", "$0.5$"),  # a syntax error: SLL fails, LL fails the same way
]


@pytest.mark.process
def test_installed_speed_ups_keep_math_verify_answers():
    done = subprocess.run(
        [sys.executable, "-c", _SAME_ANSWERS], input=json.dumps(PAIRS), capture_output=True, text=True,
        timeout=300, check=True,
    )
    before, after, applied, again = json.loads(done.stdout.strip().splitlines()[-1])
    assert applied == ["sll_parse", "constant_shortcut"] and again == applied
    assert after == before
    assert [v for *_, v in before][:5] == [True, False, True, True, True]
