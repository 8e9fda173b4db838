"""The RL set's pure parts: the reference forms a rule can check, the row rule
`rl_decision` (each reason, the band's ends inclusive or not, bounds straddling a threshold),
and the two steps' parse on hand-made replies (the policy's samples with and without the
image, the judge settling both groups)."""

from __future__ import annotations

import polars as pl
import pytest

from mmfr_assets.llm.types import ChatResult, Choice
from mmfr_assets.model_step.runner import skipped
from mmfr_assets.prompts import load_prompt
from mmfr_assets.rl.checkable import reference_form
from mmfr_assets.rl.configs import RlRolloutsConfig, RlSelectedConfig
from mmfr_assets.rl.rules import FILTERS, rl_decision, select_rl
from mmfr_assets.rl.steps import RlRolloutsStep, RlVerdictsStep


def _ok(*texts: str) -> ChatResult:
    return ChatResult(ok=True, choices=tuple(Choice(t, finish_reason="stop") for t in texts))


FAILED = ChatResult(ok=False, error="HTTP 500 after 3 retries")


@pytest.mark.parametrize("reference, question, form", [
    ("C", "Which one?\nA. 1\nB. 2\nC. 3", "choice"),
    ("B, D", None, "choice"),
    ("42 cm", None, "number"),
    ("-3.5", None, "number"),
    ("\\frac{\\sqrt{3}}{2}", None, "expression"),
    ("x^2 + 2x + 1", None, "expression"),
    ("(0, 1]", None, "interval"),
    ("\\{1, 2\\}", None, "set"),
    ("yes", None, "word"),
    ("20:30", None, "time"),
    ("The boy is sad because he lost his ball", None, "prose"),
    ("x" + "+x" * 60, None, "long"),
    ("", None, "none"),
    (None, None, "none"),
])
def test_reference_forms(reference, question, form):
    assert reference_form(reference, question) == form


def row(**values):
    base = {"checkable": True, "reference_form": "number", "in_sft_set": False,
            "pass_rate_low": 0.5, "pass_rate_high": 0.5, "blind_samples": 4,
            "blind_pass_rate_low": 0.0, "blind_pass_rate_high": 0.0}
    return {**base, **values}


DEFAULT = RlSelectedConfig()


@pytest.mark.parametrize("values, reason", [
    ({}, None),
    ({"checkable": False, "reference_form": "prose"}, "rl_not_checkable"),
    ({"in_sft_set": True}, "rl_in_sft_set"),
    ({"pass_rate_low": 1.0, "pass_rate_high": 1.0}, "rl_too_easy"),
    ({"pass_rate_low": 0.0, "pass_rate_high": 0.0}, "rl_too_hard"),
    ({"pass_rate_low": 0.125, "pass_rate_high": 0.875}, None),  # the whole range inside the band
    ({"pass_rate_low": 0.0, "pass_rate_high": 0.25}, "rl_undecided"),  # 0 or not: unknown
    ({"pass_rate_low": 0.75, "pass_rate_high": 1.0}, "rl_undecided"),
    ({"pass_rate_low": None, "pass_rate_high": None}, "rl_undecided"),  # no rollouts
    ({"blind_pass_rate_low": 0.5, "blind_pass_rate_high": 0.5}, "rl_blind_solvable"),
    ({"blind_pass_rate_low": 0.25, "blind_pass_rate_high": 0.25}, None),  # at the bound: kept
    ({"blind_pass_rate_low": 0.0, "blind_pass_rate_high": 0.5}, "rl_undecided"),
    ({"blind_pass_rate_low": None, "blind_pass_rate_high": None}, "rl_undecided"),  # blind asked, failed
    ({"blind_samples": 0, "blind_pass_rate_low": None, "blind_pass_rate_high": None}, None),  # blind off
    # the order of the rules: a decided drop wins over an undecided one, checkability first
    ({"checkable": False, "pass_rate_low": 1.0, "pass_rate_high": 1.0}, "rl_not_checkable"),
    ({"pass_rate_low": 1.0, "pass_rate_high": 1.0, "blind_pass_rate_low": 1.0}, "rl_too_easy"),
    ({"pass_rate_low": 0.0, "pass_rate_high": 0.5, "blind_pass_rate_low": 0.75,
      "blind_pass_rate_high": 0.75}, "rl_blind_solvable"),
])
def test_rl_decision(values, reason):
    decision = rl_decision(row(**values), DEFAULT)
    assert decision.reason == reason
    assert (decision.detail is None) == (reason is None)


def test_the_band_is_config():
    inclusive = RlSelectedConfig(min_pass_rate=0.0, min_inclusive=True, max_pass_rate=1.0, max_inclusive=True)
    assert rl_decision(row(pass_rate_low=0.0, pass_rate_high=0.0), inclusive).reason is None
    assert rl_decision(row(pass_rate_low=1.0, pass_rate_high=1.0), inclusive).reason is None
    narrow = RlSelectedConfig(min_pass_rate=0.25, max_pass_rate=0.75)
    assert rl_decision(row(pass_rate_low=0.25, pass_rate_high=0.25), narrow).reason == "rl_too_hard"
    assert rl_decision(row(pass_rate_low=0.75, pass_rate_high=0.75), narrow).reason == "rl_too_easy"
    detail = rl_decision(row(pass_rate_low=0.75, pass_rate_high=0.75), narrow).detail
    assert "0.25 < pass rate < 0.75" in detail
    off = RlSelectedConfig(max_blind_pass_rate=None)
    assert rl_decision(row(blind_pass_rate_low=1.0, blind_pass_rate_high=1.0), off).reason is None
    with pytest.raises(ValueError, match="not an SFT table"):
        RlSelectedConfig(exclude_sft_asset="rl_selected")
    with pytest.raises(ValueError, match="above max_pass_rate"):
        RlSelectedConfig(min_pass_rate=0.9, max_pass_rate=0.1)


def test_select_rl_splits_a_batch_with_declared_reasons():
    rows = [row(), row(checkable=False), row(pass_rate_low=1.0, pass_rate_high=1.0)]
    batch = pl.DataFrame([{"id": str(k), "question": "q", "reference_detail": None, "pass_rate_detail": None,
                           "blind_detail": None, **r} for k, r in enumerate(rows)])
    verdicts = select_rl(batch, DEFAULT)
    assert verdicts.kept["id"].to_list() == ["0"]
    assert "checkable" not in verdicts.kept.columns and "pass_rate_low" in verdicts.kept.columns
    assert verdicts.dropped["reason"].to_list() == ["rl_not_checkable", "rl_too_easy"]
    declared = {r for f in FILTERS for r in f.reasons}
    assert declared == {"rl_not_checkable", "rl_too_easy", "rl_too_hard", "rl_undecided",
                        "rl_blind_solvable", "rl_in_sft_set"}


def rollouts(**config):
    step = RlRolloutsStep(RlRolloutsConfig(**{"num_samples": 4, "blind_samples": 2, "use_math_verify": False,
                                              **config}))
    batch = pl.DataFrame({"question": ["<image>How long is AB?", "Why is the sky blue?"],
                          "answer": ["5", "Because of Rayleigh scattering of sunlight"],
                          "original_answer": [None, None]},
                         schema={"question": pl.String, "answer": pl.String, "original_answer": pl.String})
    prepared = step.prepare(batch)
    return step, prepared


def test_rl_rollouts_asks_with_and_without_the_image():
    step, prepared = rollouts()
    assert step.needs(prepared).to_list() == [True, False]  # prose is not rolled out
    first = prepared.row(0, named=True)
    asks = step.asks(first, load_prompt("rl_rollout"))
    assert [(a.image, a.samples) for a in asks] == [(True, 4), (False, 2)]
    assert "<image>" in asks[0].text and "<image>" not in asks[1].text and "How long is AB?" in asks[1].text
    replies = [_ok("<answer>5</answer>"), _ok("<answer>4</answer>"), _ok("<answer>\\sqrt{25}</answer>"), FAILED,
               _ok("<answer>5</answer>"), _ok("<answer>7</answer>")]
    c = step.parse(first, replies, 1).columns
    assert (c["correct"], c["incorrect"], c["undecided"], c["failed"]) == (1, 1, 1, 1)
    assert (c["pass_rate_low"], c["pass_rate_high"], c["pass_rate_origin"]) == (0.25, 0.75, "bounds")
    assert (c["blind_pass_rate"], c["blind_samples"], c["blind_answers"]) == (0.5, 2, ["5", "7"])
    assert (c["reference"], c["reference_form"], c["checkable"]) == ("5", "number", True)
    # every blind request failed: the row is a failure (counted against max_failure_rate)
    assert step.parse(first, replies[:4] + [FAILED, FAILED], 1).failure
    prose = step.without_model(prepared.row(1, named=True)).columns
    assert (prose["pass_rate_origin"], prose["reference_form"], prose["checkable"]) == ("not_checkable", "prose", False)
    missing = skipped(step, first, "no policy_llm endpoint configured").columns
    assert missing["pass_rate_origin"] == "missing" and "no policy_llm" in missing["detail"]
    off, _ = rollouts(blind_samples=0)
    assert len(off.asks(first, load_prompt("rl_rollout"))) == 1
    assert off.parse(first, replies[:4], 1).columns["blind_pass_rate_origin"] == "off"


def test_rl_verdicts_judge_both_groups_in_one_request():
    step = RlVerdictsStep()
    joined = {"question": "What colour?", "reference": "red", "reference_form": "word", "checkable": True,
              "samples": 2, "pass_rate_origin": "bounds", "sample_answers": ["red", "crimson"],
              "sample_verdicts": [True, None], "sample_methods": ["exact", "rules_undecided"], "failed": 0,
              "blind_samples": 2, "blind_pass_rate_origin": "bounds", "blind_answers": ["crimson", "scarlet"],
              "blind_verdicts": [None, None], "blind_methods": ["rules_undecided"] * 2, "blind_failed": 0,
              "rollout_detail": "x", "rollout_blind_detail": "y"}
    assert step._to_judge(joined) == ["crimson", "scarlet"]
    c = step.parse(joined, [_ok("JUDGMENT 1: EQUIVALENT\nJUDGMENT 2: DIFFERENT")], 1).columns
    assert (c["pass_rate"], c["pass_rate_origin"], c["blind_pass_rate"], c["judged"]) == (1.0, "judged", 0.5, 3)
    assert c["blind_verdicts"] == [True, False]
    alone = skipped(step, joined, "no judge_llm endpoint configured").columns
    assert (alone["pass_rate_low"], alone["pass_rate_high"], alone["blind_pass_rate_high"]) == (0.5, 1.0, 1.0)
    unrolled = {**joined, "pass_rate_origin": "not_checkable", "blind_pass_rate_origin": "not_checkable"}
    assert step._to_judge(unrolled) == []
    assert step.without_model(unrolled).columns["pass_rate_origin"] == "not_checkable"


@pytest.mark.parametrize("response, truth, question, score", [
    ("<think>x</think><answer>B</answer>", "B", None, 1.0),
    ("<think>x</think><answer>512</answer>", "B", "A. 256\nB. 512", 1.0),  # the option's text
    ("<think>x</think><answer>A</answer>", "B", "A. 256\nB. 512", 0.1),  # formatted, wrong
    ("<think>x</think>so it is \\boxed{42}", "42", None, 0.9),  # right, not in the asked format
    ("<think>x <answer>42</answer></think>", "42", None, 0.9),  # the answer pair is inside the thinking
    ("<think>x</think><answer>\\mathcal{Q}</answer>", "42", None, 0.1),  # undecided scores as wrong
    ("", "42", None, 0.0),
])
def test_the_verl_reward(response, truth, question, score):
    from mmfr_assets.rl.reward import compute_score

    result = compute_score("mmfr/S", response, truth, {"question": question})
    assert result["score"] == pytest.approx(score)
