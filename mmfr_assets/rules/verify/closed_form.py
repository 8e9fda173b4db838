"""The value of a constant written in closed form ("20\\pi", "\\sqrt5", "\\frac{\\sqrt3}{2}",
"e^2", "\\cos 60^\\circ"), so that a decimal can be checked against it as an approximation.

A small recursive-descent reader of LaTeX arithmetic (numbers, pi, e, + - * / ^, \\frac,
\\sqrt, \\sqrt[n], the trigonometric and logarithmic functions, implicit products, degrees):
microseconds, against milliseconds for math-verify's sympy parse, and only a float is needed.
Any other symbol (a variable) makes the text no constant: `value` returns None.
"""

from __future__ import annotations

import math
import re

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?|\.\d+)|(?P<cmd>\\[a-zA-Z]+)|(?P<deg>°)|(?P<op>[-+*/^(){}\[\]])|(?P<word>[a-zA-Z]+))"
)
_FUNCTIONS = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "cot": lambda x: 1 / math.tan(x), "sec": lambda x: 1 / math.cos(x), "csc": lambda x: 1 / math.sin(x),
    "ln": math.log, "exp": math.exp,  # not "log": base 10 or e depends on the field
}
# A trigonometric function of a bare number: radians to a reader of sympy, often degrees to the
# writer ("\\sin 30"): no value either way.
_TRIG = re.compile(r"(?:sin|cos|tan|cot|sec|csc)")
_ANGLE_UNIT = re.compile(r"\\pi|π|°|\\circ|\\degree")
_DROP = re.compile(r"\\(?:left|right|displaystyle|,|;|!|quad)(?![a-zA-Z])|\\[,;! ]")


class _NotConstant(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    text = _DROP.sub(" ", text)
    text = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\degree", "°", text)
    text = text.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/").replace("π", "\\pi")
    text = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", text)
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise _NotConstant
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Reader:
    def __init__(self, tokens: list[tuple[str, str]], pi: float) -> None:
        self.tokens, self.k, self.pi = tokens, 0, pi

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise _NotConstant
        self.k += 1
        return token

    def expr(self) -> float:
        value = self.term()
        while (t := self.peek()) and t[1] in "+-" and t[0] == "op":
            self.take()
            value = value + self.term() if t[1] == "+" else value - self.term()
        return value

    def term(self) -> float:
        value = self.unary()
        while (t := self.peek()) is not None:
            if t[0] == "op" and t[1] in "*/":
                self.take()
                right = self.unary()
                value = value * right if t[1] == "*" else value / right
            elif self.starts_atom(t):
                value *= self.power()  # an implicit product: "20\\pi", "2\\sqrt{3}"
            else:
                break
        return value

    def signed(self, inner) -> float:
        """`inner()` after any leading signs."""
        t = self.peek()
        if t and t[0] == "op" and t[1] in "+-":
            self.take()
            value = self.signed(inner)
            return -value if t[1] == "-" else value
        return inner()

    def unary(self) -> float:
        return self.signed(self.power)

    def power(self) -> float:
        base = self.atom()
        t = self.peek()
        if t and t[1] == "^":
            self.take()
            return base ** self.exponent()
        if t and t[0] == "deg":
            self.take()
            return math.radians(base)
        return base

    def exponent(self) -> float:
        return self.signed(self.exponent_atom)

    def exponent_atom(self) -> float:
        t = self.peek()
        if t and t[0] == "num" and len(t[1]) > 1 and "." not in t[1]:
            self.take()  # "e^23" is e^2 * 3 in LaTeX: one digit is the exponent
            self.tokens.insert(self.k, ("num", t[1][1:]))
            return float(t[1][0])
        return self.atom()

    @staticmethod
    def starts_atom(t: tuple[str, str]) -> bool:
        return t[0] in ("num", "cmd", "word") or (t[0] == "op" and t[1] in "({")

    def group(self) -> float:
        """A braced argument, or one token: one digit of a run ("\\frac13" is 1/3)."""
        t = self.peek()
        if t and t[0] == "num" and len(t[1]) > 1 and "." not in t[1]:
            self.take()
            self.tokens.insert(self.k, ("num", t[1][1:]))
            return float(t[1][0])
        if t and t[1] == "{":
            self.take()
            value = self.expr()
            self.take("}")
            return value
        return self.atom()

    def atom(self) -> float:
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if kind == "op" and text in "({[":
            value = self.expr()
            self.take({"(": ")", "{": "}", "[": "]"}[text])
            return value
        name = text.lstrip("\\")
        if name == "pi":
            return self.pi
        if name == "e" or (kind == "cmd" and name == "mathrm"):
            return math.e if name == "e" else self.group()
        if name == "frac":
            return self.group() / self.group()
        if name == "sqrt":
            t = self.peek()
            if t and t[1] == "[":
                self.take()
                n = self.expr()
                self.take("]")
                return self.group() ** (1 / n)
            return math.sqrt(self.group())
        if name in _FUNCTIONS:
            t = self.peek()
            power = None
            if t and t[1] == "^":  # "\\sin^2 x"
                self.take()
                power = self.exponent()
            argument = self.unary() if not (self.peek() and self.peek()[1] in "({") else self.power()
            value = _FUNCTIONS[name](argument)
            return value**power if power is not None else value
        raise _NotConstant  # a variable or an unknown command


def value(text: str, pi: float = math.pi) -> float | None:
    """The value of a constant closed-form expression, None for anything else (a variable,
    a list, an equation, a text it cannot read, a non-finite or complex result). `pi` is the
    value to use for pi (3.14 where the question says so)."""
    if _TRIG.search(text) and not _ANGLE_UNIT.search(text):
        return None
    try:
        tokens = _tokens(text)
        if not tokens:
            return None
        reader = _Reader(tokens, pi)
        result = reader.expr()
        if reader.peek() is not None:
            return None
    except (_NotConstant, ArithmeticError, ValueError, TypeError, RecursionError):
        return None
    if isinstance(result, complex) or not math.isfinite(result):
        return None
    return float(result)
