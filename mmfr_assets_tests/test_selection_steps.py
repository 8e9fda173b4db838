"""The selection model steps' pure parts: judge replies (strict meaning, tolerant form),
routing (`needs`), and pass rates from mixed student samples, on hand-made `ChatResult`s."""

from __future__ import annotations

import polars as pl
import pytest

from mmfr_assets.model_step.runner import skipped
from mmfr_assets.llm.types import ChatResult, Choice
from mmfr_assets.model_step.declaration import Parsed, Retry
from mmfr_assets.prompts import load_prompt
from mmfr_assets.selection.configs import AnswerVerdictsConfig, StudentRolloutsConfig
from mmfr_assets.selection.difficulty import select_difficulty
from mmfr_assets.selection.steps import AnswerVerdictsStep, StudentRolloutsStep, StudentVerdictsStep
from mmfr_assets.rules.verify.judge import parse_judgment
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Analysis: both are 5.\nJUDGMENT: EQUIVALENT", True),
        ("Analysis: 4 vs 5.\nJUDGMENT: DIFFERENT", False),
        ("Analysis: no.\nJUDGMENT: NOT EQUIVALENT", False),
        ("Analysis: no.\nJUDGMENT: Not_Equivalent", False),
        ("Analysis: no.\nJUDGMENT: NON-EQUIVALENT", False),
        ("**Analysis:** same\n**JUDGMENT:** EQUIVALENT", True),
        ("```\nAnalysis: same\nJUDGMENT: EQUIVALENT\n```", True),
        ("<think>JUDGMENT: DIFFERENT? no wait</think>\nAnalysis: same\nJUDGMENT: EQUIVALENT", True),
        ("reasoning... JUDGMENT: DIFFERENT maybe</think>Analysis: x\nJUDGMENT: EQUIVALENT.", True),
        # the last JUDGMENT line counts (format restated first)
        ("Format: JUDGMENT: EQUIVALENT or DIFFERENT\nAnalysis: x\nJUDGMENT: DIFFERENT", False),
        ("Analysis: x\nJUDGMENT: DIFFERENT\nJUDGMENT: EQUIVALENT", True),
        ("Analysis: x\nJUDGMENT: PARTIALLY EQUIVALENT", None),
        ("Analysis: x\nJUDGMENT: EQUIVALENT OR DIFFERENT", None),
        ("Analysis: x\nJUDGMENT:", None),
        ("The answers are equivalent.", None),
        ("", None),
        (None, None),
        ("Analysis: x\nJUDGMENT: EQUIVALENT", True),
        ("Analysis: truncated mid-sent", None),
    ],
)
def test_parse_judgment(reply, expected):
    assert parse_judgment(reply).equivalent is expected


def test_parse_judgment_keeps_the_analysis():
    judgment = parse_judgment("Analysis: C is option 5, as given.\nJUDGMENT: EQUIVALENT")
    assert judgment.analysis == "C is option 5, as given."


def _ok(*texts: str) -> ChatResult:
    return ChatResult(ok=True, choices=tuple(Choice(t, finish_reason="stop") for t in texts))


FAILED = ChatResult(ok=False, error="HTTP 500 after 3 retries")


def distilled_batch() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "question": ["Q1", "Q2", "Q3", "Q4\nA. 1\nB. 2", "Q5"],
            "answer": ["4", "\\sqrt{2}", "a cat", "B", None],
            "original_answer": ["4", "x", "x", "B", None],
            "response": [
                "<think>r</think><answer>4</answer>",
                "<think>r</think><answer>\\frac{2}{\\sqrt{2}}</answer>",
                "<think>r</think><answer>a feline</answer>",
                "<think>r</think><answer>2</answer>",
                "<think>r</think><answer>7</answer>",
            ],
            "is_consistent": [False, None, None, None, None],
        }
    )


@pytest.mark.process
def test_answer_verdicts_routes_only_undecided_rows_to_the_judge():
    step = AnswerVerdictsStep(AnswerVerdictsConfig(recompute=False, math_verify_workers=1))
    try:
        prepared = step.prepare(distilled_batch())
        assert prepared["rule_verdict"].to_list() == [True, True, None, True, None]
        # labelled row keeps its label; decided rows and the row without reference stay home
        assert step.needs(prepared).to_list() == [False, False, True, False, False]
        rows = prepared.to_dicts()
        kept = step.without_model(rows[0]).columns
        assert (kept["is_consistent"], kept["method"], kept["rule_verdict"]) == (False, "dataset_label", True)
        assert step.without_model(rows[1]).columns["method"] == "math_verify"
        assert step.without_model(rows[3]).columns["method"] == "choice"
        no_ref = step.without_model(rows[4]).columns
        assert (no_ref["is_consistent"], no_ref["method"], no_ref["analysis"]) == (None, "unverified", "no_reference")
        # no judge configured: unverified, with the reason
        off = skipped(step, rows[2], "endpoint judge_llm disabled").columns
        assert off["is_consistent"] is None and "judge_llm disabled" in off["analysis"]
        text = step.render(rows[2], load_prompt("answer_judge"))
        assert "a cat" in text and "a feline" in text and "Q3" in text
    finally:
        step.close()


def test_answer_verdicts_recompute_verifies_labelled_rows():
    step = AnswerVerdictsStep(AnswerVerdictsConfig(recompute=True, use_math_verify=False))
    prepared = step.prepare(distilled_batch())
    assert step.needs(prepared).to_list() == [False, True, True, False, False]
    first = step.without_model(prepared.row(0, named=True)).columns
    assert (first["is_consistent"], first["method"], first["dataset_label"]) == (True, "exact", False)


def test_answer_verdicts_parse_judge_replies():
    step = AnswerVerdictsStep(AnswerVerdictsConfig(use_math_verify=False))
    row = step.prepare(distilled_batch()).row(2, named=True)
    good = step.parse(row, [_ok("Analysis: same animal.\nJUDGMENT: EQUIVALENT")], 1)
    assert isinstance(good, Parsed) and good.columns["is_consistent"] is True
    assert good.columns["method"] == "judge" and good.columns["analysis"] == "same animal."
    negated = step.parse(row, [_ok("Analysis: no.\nJUDGMENT: NOT EQUIVALENT")], 1)
    assert negated.columns["is_consistent"] is False
    malformed = step.parse(row, [_ok("I think they match.")], 1)
    assert isinstance(malformed, Retry)
    assert malformed.fallback.columns["is_consistent"] is None and malformed.fallback.failure
    failed = step.parse(row, [FAILED], 1)
    assert failed.columns["method"] == "unverified" and "HTTP 500" in failed.failure


def rollout_row(**extra):
    step = StudentRolloutsStep(StudentRolloutsConfig(num_samples=4, use_math_verify=False, **extra))
    batch = pl.DataFrame(
        {"question": ["Q\nA. 3\nB. 5"], "answer": ["B"], "original_answer": ["B"], "pass_rate": [None]},
        schema={"question": pl.String, "answer": pl.String, "original_answer": pl.String, "pass_rate": pl.Float64},
    )
    prepared = step.prepare(batch)
    return step, prepared, prepared.row(0, named=True)


def test_student_pass_rate_from_mixed_samples():
    step, prepared, row = rollout_row()
    assert step.samples == 4 and step.needs(prepared).to_list() == [True]
    replies = [
        _ok("<think>x</think><answer>B</answer>"),
        _ok("<think>x</think><answer>5</answer>"),  # option B's text: correct
        _ok("<think>x</think><answer>A</answer>"),
        _ok("<think>a long thought cut off"),  # no final answer: counts as incorrect
    ]
    parsed = step.parse(row, replies, 1)
    c = parsed.columns
    assert (c["pass_rate"], c["correct"], c["incorrect"], c["failed"], c["pass_rate_origin"]) == (
        0.5, 2, 2, 0, "rollouts"
    )
    # an empty answer tag commits to nothing either: incorrect, not left undecided for a judge
    replies[3] = _ok("<think>x</think><answer> </answer>")
    parsed = step.parse(row, replies, 1)
    assert parsed.columns["sample_methods"][3] == "no_final_answer"
    replies = [replies[0], replies[3], replies[3], replies[3]]
    parsed = step.parse(row, replies, 1)
    c = parsed.columns
    assert (c["pass_rate"], c["correct"], c["incorrect"], c["failed"], c["pass_rate_origin"]) == (
        0.25, 1, 3, 0, "rollouts"
    )
    assert parsed.failure is None


def test_student_failed_and_undecided_samples_bound_the_pass_rate():
    step, _, row = rollout_row()
    parsed = step.parse(row, [FAILED, _ok("<answer>B</answer>"), _ok("<answer>a dog</answer>"), FAILED], 1)
    c = parsed.columns
    # every sample is in the denominator: 1 of 4 known correct, 3 unknown
    assert (c["pass_rate"], c["pass_rate_low"], c["pass_rate_high"]) == (None, 0.25, 1.0)
    assert (c["correct"], c["undecided"], c["failed"], c["pass_rate_origin"]) == (1, 1, 2, "bounds")
    assert c["sample_verdicts"] == [None, True, None, None]
    assert "2 failed" in c["detail"] and "1 undecided" in c["detail"]


def verdicts_row(answers, verdicts, methods, *, failed=0, reference="red"):
    return {"question": "What colour is the ball?", "reference": reference, "samples": len(answers),
            "pass_rate_origin": "bounds", "sample_answers": answers, "sample_verdicts": verdicts,
            "sample_methods": methods, "failed": failed, "rollout_detail": "x"}


def test_student_verdicts_judge_settles_the_undecided_samples():
    step = StudentVerdictsStep()
    row = verdicts_row(["red", "blue", "blue", "7"], [True, None, None, False], ["exact", "prose", "prose", "math_verify"])
    assert step._to_judge(row) == ["blue", "7"]  # repeated answers asked once; weak "different" too
    text = step.render(row, load_prompt("sample_judge"))
    assert "1. blue\n2. 7" in text and "What colour" in text and "red" in text
    parsed = step.parse(row, [_ok("JUDGMENT 1: DIFFERENT\nJUDGMENT 2: NOT EQUIVALENT")], 1)
    c = parsed.columns
    assert (c["pass_rate"], c["pass_rate_origin"], c["judged"], c["undecided"]) == (0.25, "judged", 3, 0)
    # the judge's equivalence counts too
    c = step.parse(row, [_ok("JUDGMENT 1: EQUIVALENT\nJUDGMENT 2: DIFFERENT")], 1).columns
    assert c["pass_rate"] == 0.75


def test_student_verdicts_without_a_judge_keep_the_bounds():
    step = StudentVerdictsStep()
    row = verdicts_row(["blue"] * 4, [None] * 4, ["prose"] * 4)
    c = skipped(step, row, "no judge_llm endpoint configured").columns
    assert (c["pass_rate"], c["pass_rate_low"], c["pass_rate_high"], c["pass_rate_origin"]) == (None, 0.0, 1.0, "bounds")
    assert "no judge_llm endpoint" in c["detail"]
    half = step.parse(row, [_ok("JUDGMENT 3: DIFFERENT")], 1)  # asks about 1 answer: "3" is not one
    assert isinstance(half, Retry) and half.fallback.failure
    failed = step.parse(row, [FAILED], 1)
    assert failed.columns["pass_rate_origin"] == "bounds" and "HTTP 500" in failed.failure


def test_recipes_keep_only_what_the_whole_range_passes():
    batch = pl.DataFrame({
        "id": ["exact0", "exact1", "half", "low0", "all_unknown"],
        "pass_rate": [0.0, 1.0, 0.5, None, None],
        "pass_rate_low": [0.0, 1.0, 0.5, 0.0, 0.0],
        "pass_rate_high": [0.0, 1.0, 0.5, 0.5, 1.0],
    })
    strict = select_difficulty(batch, 0.0, inclusive=True)  # the 123K recipe
    assert strict.kept["id"].to_list() == ["exact0"]
    assert dict(zip(strict.dropped["id"], strict.dropped["reason"])) == {
        "exact1": "difficulty_too_easy", "half": "difficulty_too_easy",
        "low0": "difficulty_undecided", "all_unknown": "difficulty_undecided"}
    wide = select_difficulty(batch, 1.0, inclusive=False)  # the 586K recipe
    assert wide.kept["id"].to_list() == ["exact0", "half", "low0"]
    assert dict(zip(wide.dropped["id"], wide.dropped["reason"])) == {
        "exact1": "difficulty_too_easy", "all_unknown": "difficulty_undecided"}
    assert "between 0.0 and 1.0" in wide.dropped.filter(pl.col("id") == "all_unknown")["detail"][0]


def test_student_all_failed_has_no_pass_rate():
    step, _, row = rollout_row()
    parsed = step.parse(row, [FAILED] * 4, 1)
    assert parsed.columns["pass_rate"] is None and parsed.columns["pass_rate_origin"] == "failed"
    assert "HTTP 500" in parsed.failure


def test_student_keeps_dataset_pass_rate_unless_recompute():
    step = StudentRolloutsStep(StudentRolloutsConfig(use_math_verify=False))
    batch = pl.DataFrame({"question": ["q", "q"], "answer": ["1", None], "original_answer": ["1", None],
                          "pass_rate": [0.25, None]})
    prepared = step.prepare(batch)
    assert step.needs(prepared).to_list() == [False, False]
    assert step.without_model(prepared.row(0, named=True)).columns["pass_rate"] == 0.25
    assert step.without_model(prepared.row(1, named=True)).columns["pass_rate_origin"] == "no_reference"
    again = StudentRolloutsStep(StudentRolloutsConfig(recompute=True, use_math_verify=False))
    assert again.needs(again.prepare(batch)).to_list() == [True, False]
    missing = skipped(again, again.prepare(batch).row(0, named=True), "endpoint student_llm disabled")
    assert missing.columns["pass_rate"] is None and missing.columns["pass_rate_origin"] == "missing"


# -- through the runner, against servers -----------------------------------------------------

def judge_batch() -> pl.DataFrame:
    """Rows only the judge can decide (prose against prose), plus one a rule decides."""
    return pl.DataFrame(
        {
            "subset": ["S"] * 4,
            "id": ["0", "1", "2", "3"],
            "question": ["Which animal? MARK-EQ", "Which city? MARK-NOTEQ", "What colour? MARK-BAD", "How many?"],
            "answer": ["a cat", "Paris", "dark red", "4"],
            "original_answer": [None] * 4,
            "response": [
                "<think>r</think><answer>a domestic cat</answer>",
                "<think>r</think><answer>Lyon</answer>",
                "<think>r</think><answer>crimson</answer>",
                "<think>r</think><answer>4</answer>",
            ],
            "is_consistent": [None] * 4,
        },
        schema_overrides={"original_answer": pl.String, "is_consistent": pl.Boolean},
    )


def run_judge(base_url: str, tmp_path, **settings) -> tuple[pl.DataFrame, object]:
    from mmfr_assets.llm.client import EndpointSettings, LLMSession
    from mmfr_assets.llm.types import ChatRequest
    from mmfr_assets.model_step.runner import StepStats, run_model_step

    step = AnswerVerdictsStep(AnswerVerdictsConfig(use_math_verify=False))
    prompt = load_prompt("answer_judge")
    stats = StepStats()
    config = {"base_url": base_url, "model": "fake-model", "max_retries": 1, "backoff_base_s": 0.01,
              "backoff_max_s": 0.05, "timeout_s": 300.0, **settings}
    with LLMSession(EndpointSettings(**config), cache=tmp_path / "cache.sqlite") as session:
        frames = list(run_model_step(
            step, [judge_batch()], session=session, prompt=prompt, stats=stats,
            build_request=lambda text, image: ChatRequest.from_text(text, system=prompt.system),
        ))
    return pl.concat(frames), stats


def test_judge_replies_from_the_fake_server(fake_llm, tmp_path):  # noqa: F811
    fake_llm.configure(rules=[
        {"fault": "reply", "marker": "MARK-EQ",
         "content": "<think>both are cats</think>\n```\nAnalysis: a domestic cat is a cat.\nJUDGMENT: EQUIVALENT\n```"},
        {"fault": "reply", "marker": "MARK-NOTEQ", "content": "Analysis: other city.\nJUDGMENT: NOT EQUIVALENT"},
        # malformed: no JUDGMENT line, asked again (max_attempts 2), then unverified
        {"fault": "reply", "marker": "MARK-BAD", "content": "Crimson is a kind of red, I think."},
    ])
    out, stats = run_judge(fake_llm.url, tmp_path)
    assert out.select("id", "is_consistent", "method").rows() == [
        ("0", True, "judge"), ("1", False, "judge"), ("2", None, "unverified"), ("3", True, "exact"),
    ]
    assert out["analysis"][0] == "a domestic cat is a cat."
    assert "judge reply unparsed" in out["analysis"][2]
    assert out["attempts"].to_list() == [1, 1, 2, 0]
    assert (stats.sent, stats.failed, stats.retried_rows) == (3, 1, 1)


def test_judge_reply_cut_at_max_tokens_is_a_failure_not_a_verdict(fake_llm, tmp_path):  # noqa: F811
    fake_llm.configure(rules=[{"fault": "reply", "content": "Analysis: they are the sa",
                               "finish_reason": "length"}])
    out, stats = run_judge(fake_llm.url, tmp_path)
    assert out["method"].to_list() == ["unverified"] * 3 + ["exact"]
    assert stats.failed == 3


def test_judge_end_to_end_against_llama_cpp(llamacpp_server, tmp_path):
    """The judge role on a real server (SmolLM2-135M on CPU): requests go out and come back
    through the runner; whatever the tiny model writes is either a strict verdict or an
    unverified row with the reason, never a guess."""
    from mmfr_assets_tests.llamacpp import MODEL_ALIAS

    out, stats = run_judge(llamacpp_server, tmp_path, model=MODEL_ALIAS, max_tokens=48,
                           retry_on_length=False, max_concurrency=2)
    assert stats.sent == 3 and out.height == 4
    assert out["method"][3] == "exact"
    for row in out.head(3).iter_rows(named=True):
        assert row["attempts"] >= 1 and row["prompt_version"] == load_prompt("answer_judge").version
        if row["method"] == "judge":
            assert row["is_consistent"] in (True, False)
        else:
            assert row["method"] == "unverified" and row["is_consistent"] is None
            assert row["analysis"].startswith(("judge reply unparsed", "judge request failed"))
