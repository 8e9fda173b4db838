"""The published selection rules: each rule's edge cases, and the vectorized implementation
against a literal row-by-row reading of the rules on real and randomized rows."""

from __future__ import annotations

import random

import polars as pl
import pytest

from mmfr_assets.selection.difficulty import select_difficulty
from mmfr_assets.rules.quality import QualityRules, quality_reason, select_quality
from mmfr_assets.rules.repetition import repeated_ngram_mask
from mmfr_assets.rules.words import PY_WHITESPACE, WORD_PATTERN

EXEMPT = {"FineVision-visualwebinstruct(filtered)", "LLaVA-CoT", "FineVision-ai2d_merged"}
FILLER = " ".join(f"w{i}" for i in range(260))
CAPTION = " ".join(f"c{i}" for i in range(120))


def reference_reason(subset, response, caption, is_consistent):
    """The rules as the issue states them, one row at a time, no cleverness: the one reference
    implementation, `bench/baseline.py` (what the benchmark measures ours against)."""
    from bench.baseline import quality_reason as published_reason

    return published_reason({"subset": subset, "response": response, "caption": caption,
                             "is_consistent": is_consistent})


def frame(rows):
    return pl.DataFrame(
        rows,
        schema={"subset": pl.String, "id": pl.String, "response": pl.String,
                "caption": pl.String, "is_consistent": pl.Boolean},
        orient="row",
    )


def reasons(rows, rules=QualityRules()):
    return quality_reason(frame(rows), rules).to_list()


def row(response, subset="BMMR", caption=CAPTION, ok=True, id="1"):
    return (subset, id, response, caption, ok)


GOOD = f"<think>{FILLER}</think> The answer is <answer>B</answer>."


@pytest.mark.parametrize(
    "response, subset, caption, ok, expected",
    [
        (GOOD, "BMMR", CAPTION, True, None),
        (GOOD.replace("w5 ", "[ERROR] "), "BMMR", CAPTION, True, "content_error_marker"),
        ("[ERROR]", "BMMR", None, None, "content_error_marker"),
        (None, "BMMR", CAPTION, True, "content_missing_response"),
        ("  \n ", "BMMR", CAPTION, True, "content_missing_response"),
        (f"<think>{' '.join(['x'] * 190)}</think><answer>B</answer>", "BMMR", CAPTION, True,
         "content_short_response"),
        (GOOD, "BMMR", None, True, "content_missing_caption"),
        (GOOD, "BMMR", " ".join(["c"] * 99), True, "content_short_caption"),
        (GOOD.replace("<think>", ""), "BMMR", CAPTION, True, "structure_think_tags"),
        (GOOD + "<think>", "BMMR", CAPTION, True, "structure_think_tags"),
        (f"</think>{FILLER}<think><answer>B</answer>", "BMMR", CAPTION, True, "structure_think_tags"),
        (GOOD + "</answer>", "BMMR", CAPTION, True, "structure_answer_unbalanced"),
        (f"<think>{FILLER}</think> B", "BMMR", CAPTION, True, "structure_answer_unbalanced"),
        (f"<think>{FILLER}</think> B", "LLaVA-CoT", CAPTION, True, None),
        (f"<think>{FILLER}</think></answer>B<answer>", "BMMR", CAPTION, True,
         "structure_answer_malformed"),
        (f"<think>{FILLER}</think><answer><answer>B</answer></answer>", "BMMR", CAPTION, True,
         "structure_answer_malformed"),
        (f"<think>{FILLER}<answer>B</answer></think> B", "BMMR", CAPTION, True,
         "structure_answer_inside_think"),
        (f"<think>{FILLER}<answer>B</think></answer>", "BMMR", CAPTION, True,
         "structure_answer_inside_think"),
        (f"<answer>B</answer><think>{FILLER}</think>", "BMMR", CAPTION, True, None),
        (f"<think>{FILLER}<answer>A</answer></think><answer>B</answer>", "BMMR", CAPTION, True, None),
        (GOOD, "BMMR", CAPTION, False, "correctness_inconsistent"),
        (GOOD, "BMMR", CAPTION, None, "correctness_unverified"),
    ],
)
def test_each_quality_rule(response, subset, caption, ok, expected):
    assert reasons([row(response, subset, caption, ok)]) == [expected]
    assert reference_reason(subset, response, caption, ok) == expected


def test_repetition_counts_overlapping_ngrams_inside_the_think_block_only():
    para = " ".join(f"p{i}" for i in range(60))
    three = f"<think>{FILLER} {para} {para} {para}</think><answer>B</answer>"
    two = f"<think>{FILLER} {para} {para}</think><answer>B</answer>"
    outside = f"<think>{FILLER}</think>{para} {para} {para}<answer>B</answer>"
    periodic = f"<think>{FILLER} {' '.join(['z'] * 52)}</think><answer>B</answer>"  # 3 overlapping
    barely = f"<think>{FILLER} {' '.join(['z'] * 51)}</think><answer>B</answer>"  # only 2
    got = reasons([row(three), row(two), row(outside), row(periodic), row(barely)])
    assert got == ["repetition_ngram", None, None, "repetition_ngram", None]


def test_thresholds_come_from_the_rules_and_none_switches_a_rule_off():
    short = f"<think>{' '.join(f'v{i}' for i in range(150))}</think><answer>B</answer>"
    assert reasons([row(short)]) == ["content_short_response"]
    assert reasons([row(short)], QualityRules(min_response_words=100)) == [None]
    assert reasons([row(short)], QualityRules(min_response_words=None)) == [None]
    assert reasons([row(GOOD, subset="X")], QualityRules(answer_tag_exempt_subsets=("X",))) == [None]


def test_words_are_exactly_python_str_split():
    text = "a\x1cb\x1dc\u3000d\u00a0e\u2028f\u200bg\tx\n\ny  z\u0085w"
    assert pl.Series([text]).str.extract_all(WORD_PATTERN).to_list()[0] == text.split()
    assert "\x1c" in PY_WHITESPACE and "\u200b" not in PY_WHITESPACE


def _planted_texts(rng: random.Random) -> list[tuple[str | None, bool]]:
    """Texts whose answer (some 50-gram of words occurs >= 3 times?) is known by construction,
    not by counting: every word is unique except what is planted.

    - a chunk of L words written k times, each copy between unique words: its windows occur
      exactly k times, so True iff L >= 50 and k >= 3;
    - three copies of a chunk with one word changed in one copy, at a position every window of
      the chunk covers (L - 50 <= c <= 49): each window occurs twice, so False;
    - a cycle of p words repeated to m words: the window at offset 0 occurs
      floor((m - 50) / p) + 1 times, so True iff m >= 50 + 2p.
    Words are joined by assorted `str.split()` whitespace (tabs, newlines, U+3000, U+001C)."""
    fresh = (f"u{i}" for i in range(10**9))
    spaces = [" ", "  ", "\t", "\n", "\u3000", "\x1c", " \n "]

    def text(words: list[str]) -> str:
        return "".join(w + rng.choice(spaces) for w in words).rstrip()

    def unique(n: int) -> list[str]:
        return [next(fresh) for _ in range(n)]

    out: list[tuple[str | None, bool]] = []
    for _ in range(120):
        length, copies = rng.randint(44, 70), rng.randint(1, 4)
        chunk = [f"c{next(fresh)}" for _ in range(length)]
        words = unique(rng.randint(0, 80))
        for _ in range(copies):
            words += chunk + unique(rng.randint(1, 30))
        out.append((text(words), length >= 50 and copies >= 3))
    for _ in range(40):
        length = rng.randint(50, 99)
        chunk = [f"c{next(fresh)}" for _ in range(length)]
        changed = list(chunk)
        changed[rng.randint(length - 50, 49)] = "changed"
        copies = [chunk, chunk, changed]
        rng.shuffle(copies)
        words = unique(rng.randint(0, 40))
        for copy in copies:
            words += copy + unique(rng.randint(1, 20))
        out.append((text(words), False))
    for _ in range(80):
        period, length = rng.randint(1, 5), rng.randint(40, 70)
        cycle = [f"p{next(fresh)}" for _ in range(period)]
        words = unique(rng.randint(0, 30)) + [cycle[i % period] for i in range(length)] + unique(rng.randint(0, 30))
        out.append((text(words), length >= 50 + 2 * period))
    out += [(None, False), ("", False), (text(unique(400)), False)]
    return out


def test_hashed_repetition_finds_exactly_the_planted_repeats():
    planted = _planted_texts(random.Random(4))
    texts, expected = [t for t, _ in planted], [e for _, e in planted]
    assert sum(expected) > 40 and len(expected) - sum(expected) > 40
    assert repeated_ngram_mask(pl.Series(texts), 50, 3).to_list() == expected


def test_vectorized_rules_match_the_reference_on_real_rows(real_sample):
    cleaned = pl.concat(
        [
            pl.read_parquet(path).with_columns(
                subset=pl.lit(path.parent.name), id=pl.col("id").cast(pl.String),
                image_sha256=pl.lit(None, pl.String), image_width=pl.lit(None, pl.Int32),
                image_height=pl.lit(None, pl.Int32),
            )
            for path in sorted(real_sample.glob("*/*.parquet"))
        ],
        how="diagonal_relaxed",
    )
    distilled = cleaned.select(
        "subset", "id", "is_consistent",
        pl.col("qwen3vl_235b_thinking_response").alias("response"),
        pl.col("qwen3vl_235b_instruct_caption").alias("caption"),
    )
    got = quality_reason(distilled, QualityRules()).to_list()
    expected = [
        reference_reason(r["subset"], r["response"], r["caption"], r["is_consistent"])
        for r in distilled.iter_rows(named=True)
    ]
    assert got == expected
    assert got.count(None) > 50  # most published rows pass


def test_randomized_structures_match_the_reference():
    rng = random.Random(7)
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "B", FILLER, "[ERROR]", " "]
    rows = []
    for i in range(400):
        parts = [rng.choice(pieces) for _ in range(rng.randint(0, 8))] + [FILLER]
        rng.shuffle(parts)
        subset = rng.choice(["BMMR", "LLaVA-CoT"])
        rows.append((subset, str(i), "".join(parts), CAPTION, rng.choice([True, False, None])))
    got = reasons(rows)
    assert got == [reference_reason(s, r, c, ok) for s, _, r, c, ok in rows]
    assert len(set(got)) >= 6


def test_select_quality_keeps_columns_and_records_drops():
    verdicts = select_quality(frame([row(GOOD, id="a"), row(None, id="b")]), QualityRules())
    assert verdicts.kept.columns == ["subset", "id", "response", "caption", "is_consistent"]
    assert verdicts.dropped.rows() == [("b", "content", "content_missing_response", "no response")]


def test_every_quality_drop_says_what_failed():
    """The detail of a drop names what the rule measured: the word count against its threshold,
    the tag counts, the repeated n-gram and its count, the verdict and who decided it."""
    looped = " ".join(f"w{i}" for i in range(50))
    rows = [
        row("<think>" + " ".join(["x"] * 30) + "</think><answer>1</answer>", id="short"),
        row(GOOD.replace("</think>", ""), id="think"),
        row(GOOD.replace("</answer>", ""), id="unbalanced"),
        row(f"<think>{' '.join([looped] * 3)} {' '.join(['y'] * 60)}</think><answer>1</answer>", id="loop"),
        row(GOOD, id="wrong", ok=False),
        row(GOOD, id="unknown", ok=None),
    ]
    batch = frame(rows).with_columns(
        _verdict_method=pl.Series(["dataset_label"] * 4 + ["math_verify", "unverified"]),
        _verdict_analysis=pl.Series([None] * 5 + ["no judge configured"]),
        _verdict_final_answer=pl.Series(["1"] * 6),
        _verdict_reference=pl.Series(["2"] * 6),
    )
    verdicts = select_quality(batch, QualityRules())
    assert verdicts.kept.height == 0
    detail = dict(verdicts.dropped.select("id", "detail").iter_rows())
    assert detail["short"] == "response has 30 words < 200 (min_response_words)"
    assert detail["think"] == "<think> occurs 1 times and </think> 0 times (exactly one of each needed)"
    assert detail["unbalanced"] == "<answer> occurs 1 times and </answer> 0 times (equal counts needed)"
    assert detail["loop"].startswith("a 50-word sequence occurs 3 times in the think block (limit 2): «w0 w1")
    assert detail["wrong"] == "inconsistent (decided by math_verify): final answer «1» vs reference «2»"
    assert detail["unknown"] == "no verdict (unverified: no judge configured): final answer «1» vs reference «2»"
    assert not any(c.startswith("_verdict") for c in verdicts.kept.columns)


@pytest.mark.parametrize(
    "max_pass_rate, kept, too_easy", [(0.0, ["0"], ["1", "3"]), (0.75, ["0", "1"], ["3"])]
)
def test_difficulty_thresholds(max_pass_rate, kept, too_easy):
    batch = pl.DataFrame({"id": ["0", "1", "2", "3", "4"],
                          "pass_rate": [0.0, 0.75, None, 1.0, float("nan")]})
    verdicts = select_difficulty(batch, max_pass_rate)
    assert verdicts.kept["id"].to_list() == kept
    by_reason = verdicts.dropped.group_by("reason").agg("id").sort("reason").rows()
    assert dict(by_reason) == {
        "difficulty_pass_rate_missing": ["2", "4"],
        "difficulty_too_easy": too_easy,
    }
