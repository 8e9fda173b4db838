"""Reading model replies, for every model step: tolerant of form, so parsers can be strict about
meaning. The one home of what a reply *says* (the wire format is `wire.py`'s):

- thinking: `<think>…</think>` blocks, or a preamble ending in a lone `</think>` whose opening
  tag the server swallowed (`visible_text`, `strip_thinking`), and a reasoning model served
  without a reasoning parser, whose content holds the thinking inline (`split_thinking`: the
  client keeps it apart, as vLLM's `reasoning_content`, so a trace reads the same either way);
- blank: a reply of nothing but whitespace says nothing (`is_blank`), and a failure message
  quotes the reply as one short line (`snippet`);
- wrapping: code fences (`unfence`), tags (`tag_contents`), JSON in prose (`json_objects`).

A JSON object written by a model holds LaTeX with single backslashes: `json.loads` then turns
`\\frac` into a form feed and `\\times` into a tab, and fails on `\\sqrt`. `latex_safe_json` reads
such JSON as the model meant it. Hand-written rather than a JSON-repair library: those treat
`\\f`, `\\t`, `\\n`, `\\b`, `\\r` as the JSON escapes they are in the grammar, which is exactly the
corruption to avoid; what is needed is a decision per backslash (LaTeX command or JSON escape),
made here.
"""

from __future__ import annotations

import json
import re
from typing import Any

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
THINK_CLOSE = "</think>"
FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)

#: LaTeX commands whose names start with a letter that is also a JSON escape (b f n r t u):
#: after a single backslash in a model's JSON string these mean LaTeX, not a control char.
LATEX_ON_JSON_ESCAPES = frozenset(
    """
    bar barwedge because beta beth bf big Big bigcap bigcirc bigcup bigg Bigg biggl biggr bigl
    bigodot bigoplus bigotimes bigr bigsqcup bigstar bigtriangledown bigtriangleup biguplus
    bigvee bigwedge binom blacksquare blacktriangle bm bmod bold boldsymbol bot bowtie box
    boxed boxdot boxminus boxplus boxtimes brace bracevert brack breve bullet bumpeq
    fallingdotseq fbox flat forall frac frak frown fcolorbox footnotesize
    nabla natural ncong ne nearrow neg negthinspace neq newline nexists ngeq ngtr ni nleftarrow
    nleq nless nmid nolimits nonumber normalsize not notin nparallel nprec nrightarrow nsim
    nsubseteq nsucc nsupseteq ntriangleleft ntriangleright nu nvdash nwarrow
    rangle rbrace rbrack rceil rfloor rho right rightarrow rightharpoonup rightleftharpoons
    rightrightarrows rm rq rVert rvert
    tan tanh tau tbinom text textbf textit textrm textsf texttt textstyle textnormal tfrac
    th therefore theta thetasym thickapprox thicksim thinspace tilde times tiny to top
    triangle triangledown triangleleft trianglelefteq triangleq triangleright trianglerighteq
    tt twoheadleftarrow twoheadrightarrow
    ulcorner underbrace underline underset unlhd unrhd uparrow Uparrow updownarrow upharpoonleft
    uplus upsilon upuparrows urcorner
    """.split()
)
HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def visible_text(reply: str | None) -> str:
    """The reply without its thinking, as it was otherwise (whitespace kept): `<think>`
    blocks removed, and everything up to the last `</think>` whose opening tag the server
    swallowed."""
    text = THINK_BLOCK.sub("", reply or "")
    closing = text.lower().rfind(THINK_CLOSE)
    return text[closing + len(THINK_CLOSE):] if closing >= 0 else text


def strip_thinking(text: str | None) -> str:
    """`visible_text`, stripped: what a parser reads."""
    return visible_text(text).strip()


def split_thinking(content: str) -> tuple[str, str]:
    """`(reasoning, content)` of a reply whose content holds its thinking inline, up to the
    first `</think>` (a reasoning model served without a reasoning parser); `("", content)`
    when there is none."""
    if THINK_CLOSE not in content:
        return "", content
    head, _, tail = content.partition(THINK_CLOSE)
    return head.replace("<think>", "", 1).strip(), tail.strip()


def is_blank(text: str | None) -> bool:
    """A reply (or part of one) that says nothing: absent, empty or only whitespace."""
    return not text or not text.strip()


def snippet(text: str | None, limit: int = 160) -> str:
    """The reply on one line, at most `limit` characters, for a failure message;
    `(empty content)` for a blank one."""
    return " ".join((text or "").split())[:limit] or "(empty content)"


def unfence(text: str) -> str:
    """The inside of the last code fence, or the text itself when there is none."""
    fences = FENCE.findall(text)
    return fences[-1].strip() if fences else text


def latex_safe_json(text: str) -> str:
    """`text` with every backslash that starts a LaTeX command doubled, so `json.loads` keeps
    it; JSON escapes (`\\"`, `\\\\`, `\\/`, `\\n` before a non-command, `\\uXXXX`) are kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt in ('"', "\\", "/"):
            out.append(text[i:i + 2])
            i += 2
            continue
        word = re.match(r"[A-Za-z]+", text[i + 1:])
        name = word.group(0) if word else ""
        if nxt == "u" and HEX4.fullmatch(text[i + 2:i + 6]) and name not in LATEX_ON_JSON_ESCAPES:
            out.append(text[i:i + 6])  # \\uXXXX unicode escape
            i += 6
            continue
        if nxt in "bfnrt" and name not in LATEX_ON_JSON_ESCAPES:
            out.append(text[i:i + 2])  # a real JSON escape such as \\n before "Answer"
            i += 2
            continue
        # A LaTeX command (\\frac, \\times, \\sqrt) or any other backslash: a literal backslash.
        out.append("\\\\")
        i += 1
    return "".join(out)


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object found in `text` (prose, fences and LaTeX tolerated), in order.

    Tried from each `{`; an object found is skipped over, so nested objects are not repeated.
    """
    found: list[dict[str, Any]] = []
    safe = latex_safe_json(text)
    decoder = json.JSONDecoder(strict=False)
    i = safe.find("{")
    while i >= 0:
        try:
            value, end = decoder.raw_decode(safe, i)
        except json.JSONDecodeError:
            i = safe.find("{", i + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        i = safe.find("{", end)
    return found


def tag_contents(text: str, tag: str) -> list[str]:
    """The contents of every `<tag>…</tag>` pair in `text`, in order."""
    return re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S | re.I)
