"""Which row of the sample carries which fault: the ground truth for tests.

The plan is decided before any content is drawn, from its own random stream,
so tests (and benchmarks) can ask "what should happen to row id N?" without
generating images. Every fault row is otherwise clean, so the pipeline must
drop it for exactly the planned reason; rows planned with reason ``None``
survive every stage with the default thresholds (pass rate <= 0.0).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

SAMPLE_SUBSETS: tuple[str, ...] = ("BMMR", "FineVision-geo170k(qa)", "LLaVA-CoT", "WeMath2-Pro")

# Subsets whose references are free-form, so the <answer> tag checks are skipped.
ANSWER_TAG_EXEMPT_SUBSETS = frozenset({"FineVision-visualwebinstruct(filtered)", "LLaVA-CoT", "FineVision-ai2d_merged"})

# Drop reasons per pipeline stage, in the order the filters apply them.
STAGE_REASONS: dict[str, tuple[str, ...]] = {
    "cleaned": ("image_missing", "image_corrupt", "image_decompression_bomb",
                "text_empty_question", "text_empty_answer"),
    "quality_filtered": ("content_error_marker", "content_missing_response", "content_short_response",
                         "content_missing_caption", "content_short_caption",
                         "structure_think_tags", "structure_answer_unbalanced", "structure_answer_malformed",
                         "structure_answer_inside_think",
                         "repetition_ngram",
                         "correctness_inconsistent", "correctness_unverified"),
    "difficulty_filtered": ("difficulty_too_easy", "difficulty_pass_rate_missing"),
}
REASONS: tuple[str, ...] = tuple(r for rs in STAGE_REASONS.values() for r in rs)
REASON_STAGE: dict[str, str] = {r: s for s, rs in STAGE_REASONS.items() for r in rs}
ANSWER_TAG_REASONS = ("structure_answer_unbalanced", "structure_answer_malformed", "structure_answer_inside_think")

# Images the cleaning stage must repair (resize / convert to RGB / apply EXIF), not drop.
REPAIRS: tuple[str, ...] = ("resize_jpeg", "resize_png", "mode_p", "mode_p_transparency", "mode_rgba",
                            "mode_la", "mode_l", "mode_cmyk", "exif_rotate_6", "exif_rotate_8")
# Questions the cleaning stage must normalise (CRLF, zero-width chars, BOM, blank-line runs, trailing spaces).
NORMALIZATIONS: tuple[str, ...] = ("crlf_trailing_spaces", "zero_width_bom", "blank_lines")
# Clean rows that sit right on a rule's boundary (must survive).
EDGES: tuple[str, ...] = ("trace_200_words", "caption_100_words", "paragraph_twice", "answer_inside_and_after_think")
# Extra survivors for subsets exempt from the answer-tag checks.
EXEMPT_EDGES: tuple[str, ...] = ("no_answer_tags", "answer_unbalanced_exempt", "answer_inside_think_exempt")

PASS_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
_NATURAL_PASS_WEIGHTS = (0.35, 0.1, 0.1, 0.15, 0.3)
DEFAULT_FAULT_RATE = 0.05


@dataclass(frozen=True)
class RowSpec:
    """What one row is meant to exercise.

    ``kind`` is a drop reason, ``repair:<name>``, ``normalize:<name>``,
    ``edge:<name>``, ``clean`` (plan control row) or ``natural`` (filler row in
    scaled samples). ``reason`` is the expected drop reason (None = survives).
    """

    index: int
    id: int
    kind: str
    reason: str | None
    pass_rate: float | None
    is_consistent: bool | None

    @property
    def repair(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("repair:") else None

    @property
    def normalization(self) -> str | None:
        return self.kind.split(":", 1)[1] if self.kind.startswith("normalize:") else None


def subset_reasons(subset: str) -> tuple[str, ...]:
    """Drop reasons a row of ``subset`` can get (answer-tag checks are subset-dependent)."""
    if subset in ANSWER_TAG_EXEMPT_SUBSETS:
        return tuple(r for r in REASONS if r not in ANSWER_TAG_REASONS)
    return REASONS


def default_kinds(subset: str) -> list[str]:
    """The row kinds of the bundled demo sample for one subset, unshuffled."""
    kinds = [r for r in subset_reasons(subset) if r != "difficulty_too_easy"]
    kinds += ["difficulty_too_easy"] * 2
    kinds += [f"repair:{r}" for r in REPAIRS]
    kinds += [f"normalize:{n}" for n in NORMALIZATIONS]
    kinds += [f"edge:{e}" for e in EDGES]
    if subset in ANSWER_TAG_EXEMPT_SUBSETS:
        kinds += [f"edge:{e}" for e in EXEMPT_EDGES]
    kinds += ["clean"] * 3
    return kinds


def _rng(seed: int, subset: str, purpose: str) -> random.Random:
    # str seeds are hashed with SHA-512 by random.seed: stable across runs and PYTHONHASHSEED.
    return random.Random(f"mmfr-sample/{seed}/{subset}/{purpose}")


def _id_permutation(n: int, rng: random.Random) -> tuple[int, int, int]:
    """Parameters of i -> base + (a*i + c) % n, a scrambled but unique id per row in O(1) memory."""
    base = rng.randrange(0, 90_000)
    a = rng.randrange(1, max(2, n))
    while math.gcd(a, n) != 1:
        a += 1
    return base, a, rng.randrange(n)


def plan_rows(subset: str, *, rows_per_subset: int | None = None, seed: int = 0,
              fault_rate: float | None = None) -> Iterator[RowSpec]:
    """Yield the RowSpec of every row of ``subset``, in file order (streaming).

    With ``rows_per_subset=None`` this is exactly the demo plan
    (:func:`default_kinds`, shuffled). Larger counts append ``natural`` rows
    (pass rate drawn from a realistic mix) of which a ``fault_rate`` share carry
    a random fault or repair; smaller counts keep a prefix of the shuffled plan.
    """
    rng = _rng(seed, subset, "plan")
    kinds = default_kinds(subset)
    rng.shuffle(kinds)
    n = len(kinds) if rows_per_subset is None else int(rows_per_subset)
    if n < 0:
        raise ValueError("rows_per_subset must be >= 0")
    base, a, c = _id_permutation(max(n, 1), rng)
    rate = DEFAULT_FAULT_RATE if fault_rate is None else float(fault_rate)
    fault_pool = [r for r in subset_reasons(subset) if r != "difficulty_too_easy"] + [f"repair:{r}" for r in REPAIRS]
    too_easy = [p for p in PASS_RATES if p > 0]
    for i in range(n):
        if i < len(kinds):
            kind = kinds[i]
        else:
            kind = rng.choice(fault_pool) if rng.random() < rate else "natural"
        pass_rate: float | None = 0.0
        if kind == "difficulty_too_easy":
            pass_rate = rng.choice(too_easy)
        elif kind == "natural":
            pass_rate = rng.choices(PASS_RATES, _NATURAL_PASS_WEIGHTS)[0]
        elif kind == "difficulty_pass_rate_missing":
            pass_rate = None
        consistent = {"correctness_inconsistent": False, "correctness_unverified": None}.get(kind, True)
        if kind in REASON_STAGE:
            reason = kind
        elif kind == "natural" and pass_rate:
            reason = "difficulty_too_easy"
        else:
            reason = None
        yield RowSpec(i, base + (a * i + c) % n, kind, reason, pass_rate, consistent)


def expected_reasons(subset: str, **plan_kwargs) -> dict[int, str | None]:
    """Row id -> the reason the pipeline must give for dropping it (None = survives)."""
    return {s.id: s.reason for s in plan_rows(subset, **plan_kwargs)}


def expected_repairs(subset: str, **plan_kwargs) -> dict[int, str]:
    """Row id -> the image repair the cleaning stage must perform (rows that survive)."""
    return {s.id: s.repair for s in plan_rows(subset, **plan_kwargs) if s.repair}


def expected_counts(subset: str, **plan_kwargs) -> Counter:
    """Reason -> number of rows (key None counts the survivors)."""
    return Counter(s.reason for s in plan_rows(subset, **plan_kwargs))
