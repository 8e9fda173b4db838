"""Assemble one sample row from its :class:`~.plan.RowSpec`.

A row starts clean (problem, figure, question, trace, caption, judge note all
consistent) and then exactly one planned defect is applied, so the pipeline
must drop it for that reason and no other. Variants of a defect (e.g. which
kind of corrupt bytes) rotate across subsets so the demo sample covers them all.
"""

from __future__ import annotations

import random
import re
import zlib
from functools import lru_cache

from . import figures, images, text
from .plan import SAMPLE_SUBSETS, RowSpec
from .problems import LETTERS, Problem, make_problem

COLUMNS = ("source", "id", "original_question", "original_answer", "image", "question", "answer",
           "qwen3vl_235b_instruct_caption", "qwen3vl_235b_thinking_response", "qwen3vl_4b_pass_rate",
           "is_consistent", "consistency_analysis")


def _variant(options, subset: str, spec: RowSpec):
    """Deterministic rotation: subset k of the demo gets option k, fillers vary by position."""
    base = SAMPLE_SUBSETS.index(subset) if subset in SAMPLE_SUBSETS else zlib.crc32(subset.encode())
    return options[(base + spec.index // 64) % len(options)]


@lru_cache(maxsize=8)
def _bomb(width: int, height: int, palette: bool) -> bytes:
    return images.bomb_png(width, height, palette)


def _image(subset: str, spec: RowSpec, p: Problem, rng: random.Random, image_size: int | None) -> dict | None:
    name = f"{subset}_{spec.index:04d}"
    if spec.kind == "image_missing":
        return None
    if spec.kind == "image_decompression_bomb":
        w, h, pal = _variant(images.BOMB_SHAPES, subset, spec)
        return {"bytes": _bomb(w, h, pal), "path": f"{name}.png"}
    repair = spec.repair
    if repair in images.REPAIR_SIZES:
        size = images.REPAIR_SIZES[repair]
    else:
        size = figures.figure_size(p.kind, rng, image_size)
        if repair and repair.startswith("exif") and abs(size[0] - size[1]) < 0.2 * max(size):
            size = (size[0], round(size[0] * 0.7))  # clearly landscape, so a missed rotation is visible
    img = figures.draw_figure(p, size)
    if spec.kind == "image_corrupt":
        data, ext = images.corrupt_bytes(_variant(images.CORRUPT_VARIANTS, subset, spec), img, rng)
    elif repair:
        data, ext = images.repaired_variant(repair, img, rng)
    else:
        data, ext = images.encode_normal(img, rng)
    return {"bytes": data, "path": f"{name}.{ext}"}


def _strip_unit(p: Problem, v: str) -> str:
    unit = p.value[len(p.plain):] if p.value.startswith(p.plain) else ""
    return v[: -len(unit)] if unit and v.endswith(unit) else v


def _wrong_answer(p: Problem, fx: text.Fields, rng: random.Random) -> tuple[str, str]:
    """(value, token) of a plausible wrong final answer."""
    if fx.mc:
        i = rng.choice([k for k in range(4) if LETTERS[k] != p.letter])
        return p.choices[i], LETTERS[i]
    d = p.distractors[0]
    return d, (d if fx.token == p.value else _strip_unit(p, d))


def _exact_trace(p: Problem, rng: random.Random, n: int, token: str, letter: str | None, subset: str) -> str:
    """A clean trace of exactly ``n`` words (boundary row for the 200-word rule)."""
    t = text.build_trace(p, rng, target_words=0, token=token, letter=letter, subset=subset)
    # shrink: reflections, then image notes, then the long write-up
    while text.words(t.render()) > n and len(t.think) > 3:
        t.think.pop(-2 if len(t.think) > 4 else 1)
    if text.words(t.render()) > n:
        t.post = f"{text.cap(p.principle)}. {p.steps[-1]}\n\n"
    while text.words(t.render()) > n and len(t.think) > 2:
        t.think.pop(1)
    missing = n - text.words(t.render())
    if missing < 0:
        raise ValueError(f"cannot fit a trace into {n} words")
    extra = []
    for _ in range(50):
        s = p.whatif(rng)
        if text.words(s) <= missing - sum(text.words(e) for e in extra) and s not in extra:
            extra.append(s)
    pads = missing - sum(text.words(e) for e in extra)
    t.think.insert(-1, " ".join(extra + [rng.choice(text.PADS) for _ in range(pads)]))
    out = t.render()
    assert text.words(out) == n, (text.words(out), n)
    return out


def _trace(subset: str, spec: RowSpec, p: Problem, fx: text.Fields, rng: random.Random,
           trace_words: int | None) -> tuple[str | None, tuple[str, str] | None]:
    """The thinking response for this row, and the wrong (value, token) if it answers wrongly."""
    kind = spec.kind
    letter = p.letter if fx.mc else None
    if kind == "content_missing_response":
        return _variant([None, "", "  \n "], subset, spec), None
    if kind == "content_short_response":
        return text.short_trace(p, rng, token=fx.token, max_words=rng.randint(45, 150)).render(), None
    if kind == "edge:trace_200_words":
        return _exact_trace(p, rng, 200, fx.token, letter, subset), None
    wrong = _wrong_answer(p, fx, rng) if kind == "correctness_inconsistent" else None
    tags = {"structure_answer_unbalanced": _variant(["missing_close", "none", "extra_close"], subset, spec),
            "structure_answer_malformed": _variant(["reversed", "nested"], subset, spec),
            "structure_answer_inside_think": "none", "edge:answer_inside_think_exempt": "none",
            "edge:no_answer_tags": "none", "edge:answer_unbalanced_exempt": "missing_close"}.get(kind, "ok")
    target = round(trace_words * rng.uniform(0.9, 1.1)) if trace_words else rng.randint(250, 600)
    t = text.build_trace(p, rng, target_words=target, token=fx.token, letter=letter, subset=subset,
                         wrong=wrong, tags=tags)
    tok = wrong[1] if wrong else fx.token
    if kind in ("structure_answer_inside_think", "edge:answer_inside_think_exempt", "edge:answer_inside_and_after_think"):
        t.think[-1] = f"{t.think[-1]} Tentatively, <answer>{tok}</answer>."
    if kind in ("repetition_ngram", "edge:paragraph_twice"):
        loop = text.looping_paragraph(p, rng, used=t.extra["used"])
        at = rng.randint(2, len(t.think) - 1)
        t.think[at:at] = [loop] * (3 if kind == "repetition_ngram" else 2)
    if kind == "content_error_marker":
        where = _variant(["prefix", "post", "suffix"], subset, spec)
        if where == "prefix":
            t.pre = "[ERROR] stream interrupted; partial completion recovered from cache.\n"
        elif where == "post":
            t.post += "[ERROR] tool call failed: image_zoom timed out after 30 s.\n\n"
        else:
            t.final += "\n[ERROR] max_tokens reached before the response was finalized."
    if kind == "structure_think_tags":
        how = _variant(["missing_open", "unclosed", "double_close", "no_tags"], subset, spec)
        if how == "double_close":
            t.think[1] += "</think>"
        return t.render(open_tag=how not in ("missing_open", "no_tags"),
                        close_tag=how not in ("unclosed", "no_tags")), wrong
    return t.render(), wrong


def _caption(subset: str, spec: RowSpec, p: Problem, rng: random.Random) -> str | None:
    if spec.kind == "content_missing_caption":
        return _variant([None, "", " \n"], subset, spec)
    if spec.kind == "content_short_caption":
        return text.short_caption(p, rng, rng.randint(30, 85))
    if spec.kind == "edge:caption_100_words":
        return text.fit_caption(text.build_caption(p, rng, target_words=92), 100, rng)
    return text.build_caption(p, rng, target_words=rng.randint(115, 285))


def _question(subset: str, spec: RowSpec, q: str) -> str:
    kind = spec.kind
    if kind == "text_empty_question":
        return _variant(["", "   ", "\u200b\u200b", "\n\t \n", "\ufeff\u200b "], subset, spec)
    if kind == "normalize:crlf_trailing_spaces":
        lines = q.split("\n") if "\n" in q else ["<image>", q[len("<image>"):]]
        return "\r\n".join(line + "  " for line in lines) + " "
    if kind == "normalize:zero_width_bom":
        m = re.search(r"\d", q)
        at = m.start() if m else len("<image>")
        return "\ufeff" + q[:at] + "\u200b\u200b" + q[at:]
    if kind == "normalize:blank_lines":
        if "\n" in q:
            return q.replace("\n", "\n\n\n\n\n", 1)
        m = re.search(r"\. ", q)
        return q[: m.start() + 1] + "\n\n\n\n\n" + q[m.end():] if m else q.replace("<image>", "<image>\n\n\n\n\n", 1)
    return q


def build_row(subset: str, spec: RowSpec, *, seed: int = 0, trace_words: int | None = None,
              image_size: int | None = None) -> dict:
    """The full row dict (hub column order) for ``spec``."""
    rng = random.Random(f"mmfr-sample/{seed}/{subset}/row/{spec.index}")
    p = make_problem(subset, rng)
    fx = text.format_for_subset(subset, p, rng)
    image = _image(subset, spec, p, rng, image_size)
    trace, wrong = _trace(subset, spec, p, fx, rng, trace_words)
    caption = _caption(subset, spec, p, rng)
    ref = f"option {p.letter} ({p.value})" if fx.mc else fx.answer
    if spec.is_consistent is None:
        analysis = _variant([None, f"Analysis: The reference answer is {ref}. The generated answer"], subset, spec)
    elif wrong:
        gen = f"option {wrong[1]} ({wrong[0]})" if fx.mc else wrong[1]
        analysis = text.consistency_analysis(p, rng, ref=ref, gen=gen, equivalent=False)
    else:
        analysis = text.consistency_analysis(p, rng, ref=ref, gen=ref, equivalent=True)
    answer = _variant(["", " ", "\n  ", "\t"], subset, spec) if spec.kind == "text_empty_answer" else fx.answer
    return {
        "source": subset,
        "id": spec.id,
        "original_question": fx.original_question,
        # A row with an answer to extract from its solution is kept: the planned drop has neither.
        "original_answer": None if spec.kind == "text_empty_answer" else fx.original_answer,
        "image": image,
        "question": _question(subset, spec, fx.question),
        "answer": answer,
        "qwen3vl_235b_instruct_caption": caption,
        "qwen3vl_235b_thinking_response": trace,
        "qwen3vl_4b_pass_rate": spec.pass_rate,
        "is_consistent": spec.is_consistent,
        "consistency_analysis": analysis,
    }
