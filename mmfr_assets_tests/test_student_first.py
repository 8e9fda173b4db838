"""The student-first order (issue 33) in pure pieces: the pass-rate-can-pass decision (exact,
bounded, missing), the rewired lineage, the rewired step declarations and the target setting.
The set equality on the real sample is checked in test_selection_from_scratch.py."""

from __future__ import annotations

import math

import polars as pl
import pytest

from mmfr_assets import settings
from mmfr_assets.distillation.teachers import CaptionTeacherConfig, CotTeacher, CotTeacherConfig
from mmfr_assets.errors import InputError
from mmfr_assets.lineage import PAPER_LINEAGE, lineage_for
from mmfr_assets.model_step.registry import MODEL_STEPS
from mmfr_assets.student_first.coverage import coverage_text, skipped_counts
from mmfr_assets.student_first.distilled import skipping
from mmfr_assets.student_first.steps import ORIGIN_SKIPPED_EASY, registered_for
from mmfr_assets.student_first.target import TARGETS, can_pass, can_pass_expr, parse_target

T123, T586 = TARGETS["123k"], TARGETS["586k"]
NAN = math.nan

# (target, pass_rate, low, high, can pass?)
CASES = [
    (T123, 0.0, 0.0, 0.0, True),
    (T123, 0.25, 0.25, 0.25, False),
    (T123, None, 0.0, 0.5, True),  # bounded: 0 is in the range, the row may be in the 123K
    (T123, None, 0.25, 0.75, False),  # no value of the range passes <= 0
    (T123, None, None, None, True),  # no pass rate yet (the student failed): distilled
    (T123, NAN, NAN, NAN, True),
    (T586, 1.0, 1.0, 1.0, False),
    (T586, 0.75, 0.75, 0.75, True),
    (T586, None, 0.75, 1.0, True),  # undecided between passing and not: distilled
    (T586, None, 1.0, 1.0, False),
    (T586, None, None, None, True),
]


@pytest.mark.parametrize("target, rate, low, high, expected", CASES)
def test_can_pass(target, rate, low, high, expected):
    assert can_pass(target, rate, low, high) is expected


@pytest.mark.parametrize("target", [T123, T586])
def test_can_pass_expr_is_can_pass(target):
    cases = [c for c in CASES if c[0] is target]
    frame = pl.DataFrame({"pass_rate": [c[1] for c in cases], "pass_rate_low": [c[2] for c in cases],
                          "pass_rate_high": [c[3] for c in cases]}, schema={k: pl.Float64 for k in
                                                                            ("pass_rate", "pass_rate_low", "pass_rate_high")})
    assert frame.select(can_pass_expr(target)).to_series().to_list() == [c[4] for c in cases]


def test_parse_target_and_setting():
    assert parse_target(None) == parse_target("") == "all"
    assert parse_target(" 123K ") == "123k"
    with pytest.raises(InputError, match="--target must be one of all, 123k, 586k"):
        parse_target("1.8m")
    assert settings.target_setting({}) == "all"
    assert settings.target_setting({"MMFR_TARGET": "586k"}) == "586k"
    with pytest.raises(InputError, match="MMFR_TARGET must be one of"):
        settings.target_setting({"MMFR_TARGET": "hard"})


def test_paper_order_is_unchanged():
    assert lineage_for("all") == PAPER_LINEAGE
    assert registered_for("all", MODEL_STEPS) == MODEL_STEPS
    assert skipping("all") is None


@pytest.mark.parametrize("target", ["123k", "586k"])
def test_student_first_lineage(target):
    nodes = lineage_for(target)
    names = [n.name for n in nodes]
    assert sorted(names) == sorted(n.name for n in PAPER_LINEAGE)
    for k, node in enumerate(nodes):  # each after everything it reads
        assert all(dep in names[:k] for dep in node.deps), node
    by = {n.name: n for n in nodes}
    assert by["student_rollouts"].upstream == by["student_verdicts"].upstream == "deduplicated"
    assert "student_verdicts" in by["teacher_responses"].joins and "student_verdicts" in by["distilled"].joins
    assert [r for f in by["distilled"].filters for r in f.reasons] == ["teacher_skipped_easy"]
    # the recipes read the student's verdicts on the quality rows, as in the paper's order
    assert by["difficulty_filtered"].deps == ("quality_filtered", "student_verdicts")


def _teacher(target: str, config):
    step = next(r.step for r in registered_for(target, MODEL_STEPS) if r.step.asset == "teacher_responses")
    assert issubclass(step, CotTeacher) and step.upstream == "deduplicated"
    assert [j.table for j in step.joins] == ["student_verdicts"]
    return step(config)


def test_teacher_asks_only_rows_that_can_pass():
    teacher = _teacher("123k", CotTeacherConfig(regenerate=True))
    batch = pl.DataFrame({
        "subset": ["s"] * 4, "id": ["easy", "hard", "bounded", "unknown"], "question": ["q"] * 4,
        "qwen3vl_235b_thinking_response": [None] * 4, "answer": ["1"] * 4, "original_answer": [None] * 4,
        "pass_rate": [1.0, 0.0, None, None], "pass_rate_low": [1.0, 0.0, 0.0, None],
        "pass_rate_high": [1.0, 0.0, 0.5, None],
    })
    prepared = teacher.prepare(batch)
    assert teacher.needs(prepared).to_list() == [False, True, True, True]
    easy = teacher.without_model(prepared.row(0, named=True)).columns
    assert easy["response_origin"] == ORIGIN_SKIPPED_EASY and easy["response"] is None
    assert easy["response_error"].startswith("teacher_skipped_easy: pass rate 1.0 fails the 123K recipe (pass rate <= 0)")
    teacher.close()


def test_skipped_teacher_keeps_a_free_dataset_annotation():
    step = next(r.step for r in registered_for("586k", MODEL_STEPS) if r.step.asset == "teacher_captions")
    teacher = step(CaptionTeacherConfig())
    batch = pl.DataFrame({"subset": ["s"], "id": ["a"], "qwen3vl_235b_instruct_caption": ["a published caption"],
                          "pass_rate": [1.0], "pass_rate_low": [1.0], "pass_rate_high": [1.0]})
    prepared = teacher.prepare(batch)
    assert teacher.needs(prepared).to_list() == [False]
    assert teacher.without_model(prepared.row(0, named=True)).columns["caption_origin"] == "dataset"


def test_distilled_drops_what_cannot_pass_with_why():
    order = skipping("586k")
    batch = pl.DataFrame({"id": ["a", "b", "c"], "pass_rate": [1.0, None, 0.5],
                          "pass_rate_low": [1.0, 0.5, 0.5], "pass_rate_high": [1.0, 1.0, 0.5]})
    kept, dropped = order.split(batch)
    assert kept["id"].to_list() == ["b", "c"]
    assert dropped.select("id", "filter", "reason").rows() == [("a", "student_first", "teacher_skipped_easy")]
    assert "pass rate 1.0 fails the 586K recipe (pass rate < 1)" in dropped["detail"][0]


def test_coverage_says_plainly():
    funnel = [{"stage": "distilled", "filter": "", "reason": "(kept)", "rows": 30},
              {"stage": "distilled", "filter": "student_first", "reason": "teacher_skipped_easy", "rows": 70}]
    assert skipped_counts(funnel) == (70, 30)
    assert coverage_text(70, 30).startswith("covers only the 30 distilled rows: 70 deduplicated rows were not distilled")


def test_export_card_says_what_it_covers():
    from mmfr_assets.exports.card import _coverage_lines

    funnel = [{"subset": "s", "stage": "distilled", "filter": "", "reason": "(kept)", "rows": 3},
              {"subset": "s", "stage": "distilled", "filter": "student_first", "reason": "teacher_skipped_easy", "rows": 7}]
    assert "covers only the 3 distilled rows: 7 deduplicated rows" in _coverage_lines("quality_filtered", funnel)[0]
    built_for = {t: {"distilled": {"s": {"order": f"student-first, target {t.upper()} (rule)", "target": t}}}
                 for t in ("123k", "586k")}
    assert "the ones the paper's order keeps" in _coverage_lines("difficulty_filtered", funnel, built_for["123k"])[0]
    assert "the ones the paper's order keeps" in _coverage_lines("difficulty_filtered", funnel, built_for["586k"])[0]
    assert "the ones the paper's order keeps" in _coverage_lines("difficulty_filtered_586k", funnel, built_for["586k"])[0]
    # a 123K-target lake holds only the 586K recipe's rows with pass rate 0: never claimed equal
    partial = _coverage_lines("difficulty_filtered_586k", funnel, built_for["123k"])[0]
    assert "a subset of the paper's 586K set, not the set itself" in partial
    assert "covers only the 3 distilled rows" in _coverage_lines("difficulty_filtered", funnel)[0]  # order unknown
    assert _coverage_lines("quality_filtered", funnel[:1]) == []  # the paper's order: nothing added


def test_a_target_covers_a_recipe_only_when_it_keeps_every_pass_rate_the_recipe_keeps():
    from mmfr_assets.student_first.target import TARGETS, covers

    t123, t586 = TARGETS["123k"], TARGETS["586k"]
    assert covers(t123, t123) and covers(t586, t586) and covers(t586, t123)
    assert not covers(t123, t586)


def test_plan_side_by_side():
    from mmfr_assets.planning.figures import Economics, Rates, StepCount, role_totals
    from mmfr_assets.planning.orders import comparison, comparison_lines, published_shares, reordered
    from mmfr_assets.planning.plan import Plan

    def count(step, role, rows, basis="estimated", samples=1):
        return StepCount("s", step, role, rows, rows, 0, basis, "", samples, 1)

    counts = (count("teacher_responses", "cot_teacher", 2300), count("answer_verdicts", "judge_llm", 100),
              count("student_rollouts", "student_llm", 1800, samples=4),
              count("question_reviews", "cleaner_llm", 3000))
    rates = {c.step: Rates(100, 1000, 1.0, "assumed", "assumed", "assumed") for c in counts}
    economics = {"cot_teacher": Economics(output_tokens_per_s=1000, gpus_per_replica=8),
                 "student_llm": Economics(output_tokens_per_s=1000, gpus_per_replica=1)}
    roles = role_totals(counts, rates, {}, economics)
    plan = Plan(("s",), counts, rates, roles, {r: economics.get(r, Economics()) for r in roles}, {}, {})
    shares = published_shares(TARGETS["123k"])
    by = {c.step: c.rows for c in reordered(counts, shares)}
    assert by["teacher_responses"] == pytest.approx(2300 * 0.07) and by["question_reviews"] == 3000
    assert by["student_rollouts"] == pytest.approx(2300)  # every deduplicated row: 1800 / (1.8 / 2.3)
    c = comparison(plan, TARGETS["123k"], shares)
    assert c["roles"]["cot_teacher"]["requests_student_first"] == 161
    assert c["roles"]["student_llm"]["gpu_hours_student_first"] > c["roles"]["student_llm"]["gpu_hours_paper"]
    assert c["overall"]["gpu_hours_student_first"] < c["overall"]["gpu_hours_paper"]
    assert 0 < c["overall"]["teacher_token_share_student_first"] < c["overall"]["teacher_token_share_paper"]
    assert any(line.startswith("| cot_teacher | 2,300 | 161 |") for line in comparison_lines(plan, TARGETS["123k"], shares))
    # an upper-bound count of the student is already every row: left as it is
    upper = count("student_rollouts", "student_llm", 2300, basis="upper bound")
    assert reordered([upper], shares)[0].rows == 2300


def test_a_second_student_first_order_is_refused(monkeypatch):
    """The process's lineage (report, viewer) follows MMFR_TARGET as it loaded: another hard
    subset as --target is refused with one line rather than half-applied."""
    import mmfr_assets.lineage as lineage
    from mmfr_assets.definitions import order_of

    monkeypatch.delenv("MMFR_TARGET", raising=False)
    assert order_of("123k") == "123k" and order_of(None) == "all"
    monkeypatch.setattr(lineage, "LOADED_TARGET", "123k")
    monkeypatch.setenv("MMFR_TARGET", "123k")
    assert order_of(None) == order_of("123k") == "123k"
    with pytest.raises(InputError, match="--target 586k differs from MMFR_TARGET=123k"):
        order_of("586k")


def test_the_skip_rule_follows_the_recipe_bound_the_run_configures():
    """A run that loosens the 123K recipe to `pass_rate_at_most: 0.5` must not skip the rows
    with pass rate 0.25 that the recipe keeps: the teachers and `distilled` read the bound."""
    from mmfr_assets.model_step.registry import MODEL_STEPS
    from mmfr_assets.student_first.distilled import skipping
    from mmfr_assets.student_first.steps import registered_for
    from mmfr_assets.student_first.target import TARGETS, can_pass, configured

    run_config = {"ops": {"difficulty_filtered": {"config": {"pass_rate_at_most": 0.5}}}}
    loose = configured(TARGETS["123k"], run_config)
    assert (loose.max_pass_rate, loose.inclusive) == (0.5, True) and loose.rule == "pass rate <= 0.5"
    assert can_pass(loose, 0.25) and not can_pass(TARGETS["123k"], 0.25)
    assert configured(TARGETS["586k"], run_config) == TARGETS["586k"]  # another recipe's config
    assert configured(TARGETS["123k"], {}) == TARGETS["123k"]
    below = configured(TARGETS["586k"], {"ops": {"difficulty_filtered_586k": {"config": {"pass_rate_below": 0.8}}}})
    assert (below.max_pass_rate, below.inclusive) == (0.8, False)
    assert skipping("123k").for_run(run_config).target == loose
    [teacher] = [r.step for r in registered_for("123k", MODEL_STEPS) if r.step.asset == "teacher_responses"]
    from mmfr_assets.rules.config import QUALITY_THRESHOLDS, QualityThresholds

    shared = {QUALITY_THRESHOLDS: QualityThresholds(min_response_words=300)}
    built = teacher.for_run(teacher.config_class(), run_config, shared)
    assert built.target == loose and built.rules.min_response_words == 300  # the run's thresholds too


def test_each_target_s_bound_is_its_recipe_s_default():
    """The targets' bounds are written in target.py (the lineage imports it before the configs
    can load); they must be the recipes' defaults, which `selection/configs.py` holds."""
    from mmfr_assets.selection.configs import RECIPE_CONFIGS
    from mmfr_assets.student_first.target import TARGETS

    for target in TARGETS.values():
        default = RECIPE_CONFIGS[target.recipe]()
        assert (target.max_pass_rate, target.inclusive) == (default.max_pass_rate, default.inclusive)
