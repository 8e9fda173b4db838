"""Answer verification: extraction, every rule with its edge cases, the math-verify workers
(timeouts kill only the stuck item), and agreement with the real sample's `is_consistent`."""

from __future__ import annotations

import glob
import os

import polars as pl
import pytest

from mmfr_assets.rules.verify import (
    AnswerVerifier,
    Item,
    final_answer,
    reference_answer,
    verify_rules,
)
from mmfr_assets.rules.verify import rules
from mmfr_assets.rules.verify.workers import MathVerifyPool, has_expression, math_verify_pair

REAL_SAMPLE = os.environ.get("MMFR_REAL_SAMPLE", "/work/shared/real_sample")


# --- extraction -----------------------------------------------------------------------------

def test_final_answer_prefers_the_pair_after_think():
    trace = "<think>maybe <answer>1</answer></think>so <answer>2</answer> and <answer>3</answer>"
    assert final_answer(trace) == "3"


def test_final_answer_any_pair_then_boxed():
    assert final_answer("<think>x</think> no tags here") is None
    assert final_answer("<answer>7</answer><think>x</think> nothing") == "7"
    assert final_answer("<think>x</think> so \\boxed{\\frac{1}{2}} ok") == "\\frac{1}{2}"
    assert final_answer("\\boxed{1} then \\boxed{2}") == "2"
    assert final_answer("\\boxed{never closed") is None
    assert final_answer("<think>a</think><answer>\\boxed{5}</answer>") == "5"
    assert final_answer(None) is None and final_answer("") is None


def test_reference_falls_back_through_columns():
    assert reference_answer({"answer": "C", "original_answer": "x"}) == ("C", "answer")
    assert reference_answer({"answer": " ", "original_answer": "Answer: B"}) == ("B", "original_answer")
    assert reference_answer({"answer": None, "answer_reference": "4", "original_answer": "x"}) == (
        "4",
        "answer_reference",
    )
    assert reference_answer({"answer": None, "original_answer": "so \\boxed{9}"}) == ("9", "original_answer")
    assert reference_answer({"answer": None}) == (None, None)


# --- rules ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "candidate, reference, expected, rule",
    [
        ("y=3", "y = 3", True, "exact"),
        ("\\frac{1}{\\pi}", "$$\\dfrac{1}{\\pi }$$", True, "exact"),
        ("π", "$\\pi$", True, "exact"),
        ("Yes.", "yes", True, "exact"),
        ("\\text{Paris}", "Paris", True, "exact"),
        # numbers: tolerance, units, degrees, percentages, thousands, fractions, words
        ("13 cm", "$13$", True, "number"),
        ("5.4", "5.4 acres", True, "number"),
        ("45°", "45^\\circ", True, "exact"),
        ("45", "45^{\\circ}", True, "number"),
        ("35%", "0.35", True, "number"),
        ("35\\%", "35", True, "number"),
        ("1,913.85", "1913.85", True, "number"),
        ("0.33", "\\frac{1}{3}", True, "number"),
        ("0.3", "\\frac{1}{3}", False, "number"),
        ("0.5", "1/2", True, "number"),
        ("x = 5", "5", True, "number"),
        ("five", "5", True, "number"),
        ("2.0000001", "2", True, "number"),
        ("1913.85 million euros", "1913.85", False, "number"),
        ("5 m", "5 cm", False, "number"),  # converted: 5 m is 500 cm
        ("5 m", "500 cm", True, "number"),
        ("12", "2", False, "number"),  # the published substring rule accepts this
        ("-2", "2", False, "number"),  # ... and this
        ("27", "16", False, "number"),
        # multiple choice, both ways
        ("5", "C", True, "choice"),
        ("C", "5", True, "choice"),
        ("(C)", "C", True, "choice"),
        ("C. 5 pieces", "C", True, "choice"),
        ("3", "C", False, "choice"),  # option B's text
        ("A", "C", False, "choice"),
        ("B, C", "C, B", True, "choice"),
        ("B", "B, C", False, "choice"),
        # lists and tuples
        ("2 4", "2, 4", True, "list"),
        ("(8, 12)", "(8, 13)", False, "list"),
        ("(3, 2)", "(2, 3)", False, "list"),
        ("x=1; x=2", "x = 2, x = 1", True, "list"),
        # a numeric reference against plain words
        ("Product availability", "35.4", False, "number_vs_words"),
    ],
)
def test_rules(candidate, reference, expected, rule):
    question = "How many?\nA. 2 pieces\nB. 3\nC. 5 pieces\nD. 10"
    verdict = verify_rules(Item(candidate, reference, question))
    assert (verdict.equivalent, verdict.method) == (expected, rule)


@pytest.mark.parametrize(
    "candidate, reference, why",
    [
        ("$", "12", "rules_undecided"),  # the published rule accepts "$" for anything
        ("5 N", "5 kg", "units_differ"),  # two named units the rules cannot convert: a reader's
        ("5 m", "5 N", "units_differ"),  # ... also of two kinds (math-verify drops units)
        ("2, 4, 6", "2, 4", "parts_differ"),  # lists of different lengths ...
        ("g/3", "(3A - g)/4, (5A + g)/4, g/3", "parts_differ"),  # ... one item against several
        ("\\sqrt{2}", "2^{1/2}", "rules_undecided"),  # two exact forms: math-verify's job
        ("5", "C", "rules_undecided"),  # a letter with no options in the question
        ("a feline", "a cat", "prose"),  # words: the judge's (math-verify reads c*a*t)
    ],
)
def test_rules_leave_undecided(candidate, reference, why):
    verdict = verify_rules(Item(candidate, reference, "no options here"))
    assert verdict.equivalent is None and verdict.detail == why, verdict


@pytest.mark.process
def test_prose_and_parts_never_reach_math_verify():
    with AnswerVerifier(workers=1) as verifier:
        verdicts = verifier.verify_many([Item("a feline", "a cat"), Item("g/3", "x, g/3")])
    assert [v.detail for v in verdicts] == ["prose", "parts_differ"]


@pytest.mark.parametrize(
    "text, plain",
    [
        ("tan(θ₀) ≤ (7/2)μ", True),  # math-verify reads t*a*n*θ*0
        ("arctan(7μ/2)", True),
        ("min(a, b)", True),
        ("F = Mg (x̂ - ẑ)", True),  # combining accents: math-verify reads "x̂ + 1" as 1
        ("\\tan(\\theta_0) \\le \\frac{7}{2}\\mu", False),
        ("2\\sin x", False),
        ("\\operatorname{lcm}(2, 3)", False),
        ("\\sqrt{2}", False),
        ("costheta", False),  # not a function name on its own
        ("é", False),  # a composed letter is not a loose accent
    ],
)
def test_plain_text_math(text, plain):
    assert rules.is_plain_text_math(text) is plain


def test_plain_text_math_goes_to_the_judge_not_math_verify():
    verdict = verify_rules(Item("arctan(7μ/2)", "tan(θ₀) ≤ (7/2)μ"))
    assert (verdict.equivalent, verdict.detail) == (None, "plain_text_math")


def test_missing_sides_are_undecided_with_their_reason():
    assert verify_rules(Item(None, "3")).detail == "no_final_answer"
    assert verify_rules(Item("3", "  ")).detail == "no_reference"


def test_options_need_a_proper_list():
    assert rules.options("A. 1\nB. 2\nC. 3") == {"A": "1", "B": "2", "C": "3"}
    assert rules.options("Choices:\nA: 35°\nB: 45°") == {"A": "35°", "B": "45°"}
    assert rules.options("A. only one") == {}
    assert rules.options("B. 1\nC. 2") == {}  # not starting at A
    assert rules.options(None) == {}


def test_dates_are_not_lists():
    assert rules.split_items("September 24, 1968") is None
    assert verify_rules(Item("Sept 24, 1968", "September 24, 1968")).detail == "prose"
    assert verify_rules(Item("1968", "September 24, 1968")).detail != "parts_differ"


@pytest.mark.process
def test_bench_verify_runs_side_by_side():
    from bench import verify as bench_verify

    frame = bench_verify.derived(130)
    assert frame.height == 130 and frame["id"].n_unique() == 130
    # copy 1 of a row has its integers raised by one, in the trace and the reference alike
    assert frame["answer"][110] == bench_verify._shift(frame["answer"][0], 1)
    lines = bench_verify.run(130, 5, workers=1, log=lambda *_: None)
    assert any(line.startswith("| ours: rules, then math-verify") for line in lines)
    assert any(line.startswith("| math-verify on every row") for line in lines)


def test_thousands_are_not_lists():
    assert rules.split_items("1,000") is None
    assert rules.parse_number("1,000").value == 1000


# --- math-verify workers ----------------------------------------------------------------------

@pytest.mark.process
def test_math_verify_decides_what_rules_leave():
    with AnswerVerifier(workers=1, timeout_s=30) as verifier:
        verdicts = verifier.verify_many(
            [
                Item("\\sqrt{2}", "\\frac{2}{\\sqrt{2}}"),
                Item("x^2+2x+1", "(x+1)^2"),
                Item("\\sqrt{3}", "\\frac{2}{\\sqrt{2}}"),
                Item("3", "3"),  # decided by a rule, never sent
            ]
        )
    assert [(v.equivalent, v.method) for v in verdicts] == [
        (True, "math_verify"),
        (True, "math_verify"),
        (False, "math_verify"),
        (True, "exact"),
    ]


def test_a_side_read_only_as_text_is_unparsed():
    # "∩" is no LaTeX: math-verify keeps the text, and would call any two such texts different
    assert math_verify_pair("A", "(A ∩ C) ∪ B") == (None, "unparsed")
    assert has_expression(["x"]) is False and has_expression([]) is False
    assert has_expression([object(), "x"]) is True


def hangs_on_hang(reference: str, candidate: str):
    """math-verify, except that the reference "hang" never returns (as sympy can on
    adversarial input); module-level so that spawned workers can import it."""
    if reference == "hang":
        import time

        time.sleep(3600)
    return math_verify_pair(reference, candidate)


@pytest.mark.process
def test_a_stuck_item_is_killed_and_the_rest_go_on():
    with MathVerifyPool(workers=2, timeout_s=3, check="mmfr_assets_tests.test_verify:hangs_on_hang") as pool:
        outcomes = pool.run([("1/2", "0.5"), ("hang", "x"), ("\\sqrt{4}", "2"), ("3", "4")])
        assert pool.killed == 1
        assert len(pool._workers) == 2  # the stuck one replaced, not dropped
        again = pool.run([("2", "\\sqrt{4}")])
    assert outcomes[0] == (True, "ok")
    assert outcomes[1] == (None, "timeout")
    assert outcomes[2] == (True, "ok")
    assert outcomes[3] == (False, "ok")
    assert again == [(True, "ok")]


# --- agreement on the real sample -----------------------------------------------------------

def real_rows() -> pl.DataFrame:
    files = sorted(glob.glob(f"{REAL_SAMPLE}/*/train-*.parquet"))
    if not files:
        pytest.skip(f"no real sample at {REAL_SAMPLE}")
    columns = ["question", "answer", "original_answer", "qwen3vl_235b_thinking_response", "is_consistent"]
    return pl.concat([pl.read_parquet(f, columns=columns) for f in files])


def agreement(verdicts, labels) -> tuple[float, float]:
    decided = [(v.equivalent, label) for v, label in zip(verdicts, labels) if v.equivalent is not None]
    return len(decided) / len(labels), sum(a == b for a, b in decided) / len(decided)


def items_of(frame: pl.DataFrame) -> list[Item]:
    return [
        Item(final_answer(r["qwen3vl_235b_thinking_response"]), reference_answer(r)[0], r["question"])
        for r in frame.iter_rows(named=True)
    ]


@pytest.mark.process
def test_rules_agree_with_published_labels():
    frame = real_rows()
    labels = frame["is_consistent"].to_list()
    items = items_of(frame)
    decided, agree = agreement([verify_rules(i) for i in items], labels)
    assert decided >= 0.85 and agree >= 0.95, (decided, agree)
    with AnswerVerifier(workers=2, timeout_s=10) as verifier:
        decided, agree = agreement(verifier.verify_many(items), labels)
    assert decided >= 0.85 and agree >= 0.95, (decided, agree)


def test_agreement_metadata_only_with_labels():
    from mmfr_assets.rules.verify.agreement import Agreement

    agreement = Agreement()
    agreement.add(pl.Series([True, True, False, None, False]), pl.Series([True, None, True, False, False]))
    assert (agreement.labelled, agreement.decided, agreement.agreeing) == (4, 3, 2)
    meta = agreement.metadata()
    assert meta["label_agreement"] == 2 / 3 and meta["label_rules_decided_share"] == 3 / 4
    assert "| True | 1 | 0 | 1 |" in meta["label_confusion"].value
    assert "| False | 1 | 1 | 0 |" in meta["label_confusion"].value
    empty = Agreement()
    empty.add(pl.Series([None], dtype=pl.Boolean), pl.Series([True]))
    assert empty.metadata() == {}
