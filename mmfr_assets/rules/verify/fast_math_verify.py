"""Two measured speed-ups of `math-verify`, installed in the worker processes only.

Profiled on the real-derived rows that reach math-verify (bench/verify.py), warm worker:
~80 ms per pair, of which

- parsing: latex2sympy's ANTLR parser runs in full-LL prediction mode, and the pure-Python
  runtime's `adaptivePredict` is most of a parse (107 ms for a two-item list of radicals and
  inverse cosines). ANTLR's documented two-stage strategy parses in SLL mode first, which
  "either returns the same parse tree LL would, or reports a syntax error", and reparses in LL
  only on an error: 21 ms for the same list, same trees.
- `verify`: for two closed-form numbers (no free symbols) that its numeric check already found
  unequal, math-verify still calls `sympy.simplify(a - b)` (trigsimp & co.): 120–170 ms for
  `cos(3/4)**-2` against `acos(3/4)`. A constant difference that evaluates clearly away from
  zero is not zero, so `simplify` is skipped there; anything else (free symbols, a difference
  near zero, evaluation failing) still goes to math-verify's `simplify`.

Both patch module attributes of pinned libraries (`math-verify>=0.8,<1`); each checks that
what it replaces exists and otherwise leaves the library as it is (slower, still correct).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# |a - b| must exceed this share of max(1, |a|, |b|) to call two constants different: far
# above evalf's error at 30 digits, far below any difference a rounded answer would make.
_RELATIVE_GAP = 1e-6


def clearly_different_constants(a: Any, b: Any) -> bool:
    """True when `a` and `b` are sympy expressions without free symbols whose difference
    evaluates to a finite number clearly away from zero; False whenever that cannot be said
    (symbols, sets, matrices, a difference near zero, evaluation failing)."""
    import sympy

    try:
        if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
            return False
        if a.free_symbols or b.free_symbols:
            return False
        values = [x.evalf(30) for x in (a - b, a, b)]
        if not all(v.is_Number and v.is_finite for v in values):
            return False
        gap, *sides = (abs(v) for v in values)
        return bool(gap > _RELATIVE_GAP * max(1, *sides))
    except Exception:  # sympy raises nearly anything on odd input
        return False


def skip_simplify_for_constants(symbolic_eq: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """`symbolic_eq` (math-verify's `sympy_symbolic_eq`, which simplifies a - b), answering
    False at once for two clearly different constants."""

    @functools.wraps(symbolic_eq)
    def wrapped(a: Any, b: Any) -> bool:
        if clearly_different_constants(a, b):
            return False
        return symbolic_eq(a, b)

    wrapped.__mmfr_fast__ = True  # type: ignore[attr-defined]
    return wrapped


def sll_first(parse: Callable[[Any, str], Any], set_sll: Callable[[Any, bool], None]) -> Callable[[Any, str], Any]:
    """`parse(converter, text)` tried with SLL prediction first (`set_sll(converter, True)`),
    again with full LL if that raises: ANTLR's two-stage parsing, the same trees as LL alone."""

    @functools.wraps(parse)
    def wrapped(converter: Any, text: str) -> Any:
        set_sll(converter, True)
        try:
            return parse(converter, text)
        except Exception:
            set_sll(converter, False)
            return parse(converter, text)
        finally:
            set_sll(converter, False)

    wrapped.__mmfr_fast__ = True  # type: ignore[attr-defined]
    return wrapped


def install() -> list[str]:
    """Apply both speed-ups in this process (idempotent); the names of those applied."""
    applied = []
    try:
        from antlr4.atn.PredictionMode import PredictionMode
        from latex2sympy2_extended import latex2sympy2 as l2s
    except ImportError:
        l2s = None
    converter = getattr(l2s, "_Latex2Sympy", None)
    if converter is not None and hasattr(converter, "create_parser") and hasattr(converter, "parse"):
        if not getattr(converter.parse, "__mmfr_fast__", False):
            create = converter.create_parser

            def create_parser(self: Any, text: str) -> Any:
                parser = create(self, text)
                if getattr(self, "_mmfr_sll", False):
                    parser._interp.predictionMode = PredictionMode.SLL
                return parser

            converter.create_parser = create_parser
            converter.parse = sll_first(converter.parse, lambda c, on: setattr(c, "_mmfr_sll", on))
        applied.append("sll_parse")
    try:
        from math_verify import grader
    except ImportError:
        grader = None
    if grader is not None and callable(getattr(grader, "sympy_symbolic_eq", None)):
        if not getattr(grader.sympy_symbolic_eq, "__mmfr_fast__", False):
            grader.sympy_symbolic_eq = skip_simplify_for_constants(grader.sympy_symbolic_eq)
        applied.append("constant_shortcut")
    return applied
