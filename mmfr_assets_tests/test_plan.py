"""`mmfr plan` (issue 28): the arithmetic, the counting by the steps' own declarations, the
command's JSON, planned vs actual and what each kept row cost. The planned-vs-actual goal on a
from-scratch run is checked in `test_selection_from_scratch.py` (the run is shared)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import polars as pl
import pytest

from mmfr_assets import cli
from mmfr_assets.distillation.teachers import CotTeacher, CotTeacherConfig
from mmfr_assets.llm.resource import ROLES, endpoint_class_for_role
from mmfr_assets.planning.actual import RECIPES, compare, recipe_costs, upstream_steps
from mmfr_assets.planning.counting import Rows, count_step
from mmfr_assets.planning.figures import (
    PAPER_CAPTION_TOKENS, PAPER_TRACE_TOKENS, Economics, Measured, StepCount, basis_word, overall, rates,
    role_totals,
)
from mmfr_assets.planning.spend import markdown_html, spend_lines
from mmfr_assets.settings import endpoint_environment

# --- the arithmetic -------------------------------------------------------------------------------


def test_token_rates_are_measured_where_the_lake_has_them_else_the_papers():
    assumed = rates("cot_teacher", 1, Measured(), assumed_prompt=500, prompt_how="x")
    assert assumed.completion_per_sample == PAPER_TRACE_TOKENS == 2833
    assert assumed.completion_basis.startswith("assumed: paper")
    assert rates("caption_teacher", 1, Measured(), assumed_prompt=1, prompt_how="x").completion_per_sample == 609
    assert PAPER_CAPTION_TOKENS == 609
    # 12 asks, 2 of them answered by the cache when the table was written (no tokens recorded)
    measured = rates("student_llm", 4, Measured(rows=10, asks=12, prompt_tokens=1000, completion_tokens=40_000,
                                                paid_asks=10), assumed_prompt=1, prompt_how="x")
    assert (measured.prompt_per_ask, measured.completion_per_sample, measured.asks_per_row) == (100, 1000, 1.2)
    assert measured.prompt_basis.startswith("measured")
    cached_only = Measured(rows=10, asks=10)  # a re-run answered from the cache: nothing to average
    assert rates("student_llm", 4, cached_only, assumed_prompt=1, prompt_how="x").prompt_basis.startswith("assumed")


def test_economics_gives_gpu_hours_wall_time_and_money_only_where_stated():
    assert Economics().cost(1e6, 1e6) == {}
    stated = Economics(output_tokens_per_s=1000, gpus_per_replica=8, replicas=2, price_per_gpu_hour=2.0)
    cost = stated.cost(0, 3_600_000)  # one replica-hour of decoding
    assert cost == {"wall_time_h": 0.5, "gpu_hours": 8.0, "cost": 16.0}
    hosted = Economics(price_per_million_tokens=0.5).cost(1_000_000, 3_000_000)
    assert hosted == {"cost": 2.0}


def _count(role, rows, upper=None, basis="counted", samples=1, attempts=1, step=None):
    return StepCount(subset="S", step=step or role, role=role, rows=rows,
                     rows_upper=upper if upper is not None else rows, answered=0, basis=basis, how="", samples=samples, max_attempts=attempts)


def test_role_totals_count_requests_samples_and_the_upper_bound():
    r = rates("student_llm", 4, Measured(rows=1, asks=1, prompt_tokens=100, completion_tokens=400, paid_asks=1),
              assumed_prompt=1, prompt_how="x")
    counts = [_count("student_llm", 10, upper=20, basis="estimated", samples=4, attempts=2)]
    with_n = role_totals(counts, {"student_llm": r}, {"student_llm": True}, {})["student_llm"].as_dict()
    assert (with_n["requests"], with_n["requests_upper_bound"], with_n["samples"]) == (10, 40, 40)
    assert (with_n["prompt_tokens"], with_n["completion_tokens"]) == (1000, 4000)
    assert with_n["rows_basis"] == "estimated" and "gpu_hours" not in with_n
    without_n = role_totals(counts, {"student_llm": r}, {"student_llm": False}, {})["student_llm"].as_dict()
    assert (without_n["requests"], without_n["requests_upper_bound"]) == (40, 160)
    both = role_totals([*counts, _count("judge_llm", 5, basis="upper bound")],
                       {"student_llm": r, "judge_llm": r}, {}, {"judge_llm": Economics(price_per_million_tokens=1.0)})
    assert overall(both)["requests"] == 15 and overall(both)["cost_roles"] == ["judge_llm"]
    assert basis_word(["counted", "upper bound"]) == "upper bound"


# --- counting by the steps' own declarations ------------------------------------------------------


class FakeRows(Rows):
    """Tables as plain frames: {(table, subset): frame}."""

    def __init__(self, tables: dict[tuple[str, str], pl.DataFrame]) -> None:
        super().__init__(lake=None)
        self.tables = tables

    def count(self, table: str, subset: str) -> int:
        frame = self.tables.get((table, subset))
        return 0 if frame is None else frame.height

    def materialized(self, table: str, subset: str) -> bool:
        return (table, subset) in self.tables

    def columns(self, table: str) -> list[str]:
        return next((f.columns for (t, _), f in self.tables.items() if t == table), [])

    def batches(self, table: str, subset: str, columns: Sequence[str]) -> Iterator[pl.DataFrame]:
        yield self.tables[(table, subset)].select(columns)


def _cleaned(subset: str, traces: list[str | None]) -> pl.DataFrame:
    n = len(traces)
    return pl.DataFrame({"subset": [subset] * n, "id": [str(k) for k in range(n)], "question": ["q?"] * n,
                         "answer": ["1"] * n, "original_answer": [None] * n,
                         "qwen3vl_235b_thinking_response": traces},
                        schema_overrides={"original_answer": pl.String, "qwen3vl_235b_thinking_response": pl.String})


def test_a_teacher_counted_before_dedup_is_an_upper_bound_or_scaled_by_the_measured_survival():
    step = CotTeacher(CotTeacherConfig())
    a = _cleaned("A", [None] * 5 + ["<think>t</think>"] * 5)  # 5 rows without a trace
    alone = count_step(step, "A", FakeRows({("cleaned", "A"): a}), ["A"])
    assert (alone.count.rows, alone.count.rows_upper, alone.count.basis) == (5, 5, "upper bound")
    b = _cleaned("B", [None] * 10)
    measured = FakeRows({("cleaned", "A"): a, ("cleaned", "B"): b, ("deduplicated", "B"): b.head(8)})
    scaled = count_step(step, "A", measured, ["A", "B"])
    assert scaled.count.rows == pytest.approx(4.0) and scaled.count.rows_upper == 5
    assert scaled.count.basis == "estimated" and "0.800" in scaled.count.how
    # on its own upstream the count is the declaration's, exactly
    exact = count_step(step, "B", measured, ["A", "B"])
    assert (exact.count.rows, exact.count.basis) == (8, "counted")
    regenerate = count_step(CotTeacher(CotTeacherConfig(regenerate=True)), "B", measured, ["B"])
    assert regenerate.count.rows == 8  # the config decides, through the step's own needs()
    # a stage that dropped every row of a subset is materialized: nothing reaches the teacher
    emptied = FakeRows({("cleaned", "A"): a, ("deduplicated", "A"): a.head(0)})
    none = count_step(step, "A", emptied, ["A"])
    assert (none.count.rows, none.count.rows_upper, none.count.basis) == (0, 0, "counted")


# --- planned vs actual, and what a kept row cost ----------------------------------------------------


def test_the_quality_set_is_not_charged_the_student():
    assert "student_rollouts" not in upstream_steps("quality_filtered")
    assert {"question_reviews", "teacher_responses", "answer_verdicts"} <= set(upstream_steps("quality_filtered"))
    assert {"student_rollouts", "student_verdicts"} <= set(upstream_steps("difficulty_filtered"))


def test_cost_per_kept_row_per_recipe():
    spent = {"teacher_responses": Measured(rows=100, asks=120, prompt_tokens=1000, completion_tokens=300_000),
             "student_rollouts": Measured(rows=80, asks=80, prompt_tokens=800, completion_tokens=80_000)}
    kept = {"quality_filtered": 80, "difficulty_filtered_586k": 30, "difficulty_filtered": 8}
    costs = {c.recipe: c.as_dict() for c in recipe_costs(
        spent, kept, {"cot_teacher": Economics(price_per_million_tokens=1.0)})}
    assert [r for r, _ in RECIPES] == ["quality", "586K", "123K", "RL"]
    assert costs["quality"]["asks"] == 120 and "student_llm" not in costs["quality"]["roles"]
    assert costs["123K"]["asks"] == 200 and costs["123K"]["asks_per_kept_row"] == 25
    assert costs["quality"]["roles"]["cot_teacher"]["cost"] == pytest.approx(0.301)
    assert costs["123K"]["cost_per_kept_row"] == pytest.approx(0.301 / 8, abs=1e-4)
    lines = spend_lines(recipe_costs(spent, kept, {}))
    assert any(line.startswith("| 123K (`difficulty_filtered`) | 8 | 200 |") for line in lines)
    assert "requests and tokens only" in lines[-1]
    assert "<table>" in markdown_html("\n".join(lines))


def test_actual_above_the_upper_bound_is_flagged():
    planned = {"judge_llm": {"requests": 10, "requests_upper_bound": 12, "rows": 10, "prompt_tokens": 1,
                             "completion_tokens": 1, "rows_basis": "upper bound"}}
    [row] = compare(planned, {"judge_llm": Measured(rows=13, asks=13)})
    assert row["within_upper_bound"] is False and row["requests_ratio"] == 1.3


# --- endpoint settings and the command ---------------------------------------------------------------


def test_speed_and_price_come_from_the_environment_and_are_checked():
    env = {"MMFR_COT_TEACHER_OUTPUT_TOKENS_PER_S": "2500", "MMFR_COT_TEACHER_GPUS_PER_REPLICA": "8",
           "MMFR_COT_TEACHER_PRICE_PER_GPU_HOUR": "2.5"}
    assert endpoint_environment("cot_teacher", env).economics == {
        "output_tokens_per_s": 2500.0, "gpus_per_replica": 8.0, "price_per_gpu_hour": 2.5}
    endpoint = endpoint_class_for_role("cot_teacher", env)()
    assert (endpoint.output_tokens_per_s, endpoint.gpus_per_replica) == (2500.0, 8.0)
    with pytest.raises(ValueError, match="MMFR_JUDGE_LLM_PRICE_PER_MILLION_TOKENS"):
        endpoint_environment("judge_llm", {"MMFR_JUDGE_LLM_PRICE_PER_MILLION_TOKENS": "cheap"})


def test_mmfr_plan_json_on_the_sample(sample_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMFR_SOURCE", str(sample_source))
    monkeypatch.setenv("MMFR_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_API_KEY", "sk-secret-key-1234")
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_BASE_URL", "http://127.0.0.1:9/v1,http://127.0.0.1:10/v1")
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_OUTPUT_TOKENS_PER_S", "1000")
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_GPUS_PER_REPLICA", "4")
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_PRICE_PER_GPU_HOUR", "3")
    assert cli.main(["plan", "--json"]) == 0
    out = capsys.readouterr().out
    assert "sk-secret-key-1234" not in out
    plan = json.loads(out)
    assert set(plan["roles"]) == set(ROLES)
    for figures in plan["roles"].values():
        assert {"requests", "prompt_tokens", "completion_tokens", "requests_upper_bound"} <= set(figures)
        assert figures["requests"] <= figures["requests_upper_bound"]
    # the caption teacher is asked for exactly the rows whose published caption is blank
    source = pl.concat([pl.read_parquet(f).select("qwen3vl_235b_instruct_caption")
                        for f in sorted(sample_source.glob("*/*.parquet"))])
    blank = source.filter(pl.col("qwen3vl_235b_instruct_caption").fill_null("").str.strip_chars() == "").height
    caption = plan["roles"]["caption_teacher"]
    assert caption["rows_upper_bound"] == blank
    assert caption["completion_tokens"] == round(caption["rows"] * 609)  # nothing measured: the paper's
    # stated speed and price: two replicas (two URLs), 4 GPUs each
    hours = caption["completion_tokens"] / 1000 / 3600
    assert caption["wall_time_h"] == pytest.approx(hours / 2, abs=1e-3)
    assert caption["cost"] == pytest.approx(hours * 4 * 3, abs=1e-3)
    assert plan["roles"]["cot_teacher"]["endpoint_economics"] == "not stated"
    assert caption["endpoint_configured"] and not plan["roles"]["cot_teacher"]["endpoint_configured"]
    assert cli.main(["plan", "--subsets", "BMMR"]) == 0
    text = capsys.readouterr().out
    assert "| BMMR |" in text and "tokens and requests only" in text and "caption_teacher" in text
    assert "No endpoint configured for " in text and "caption_teacher," not in text.split("No endpoint")[1]
    assert cli.main(["plan", "--subsets", "NoSuchSubset"]) == 2
    # the run config's resources and ops, as `mmfr run --config` takes them
    config = tmp_path / "run.yaml"
    config.write_text("resources:\n  cot_teacher:\n    config: {price_per_million_tokens: 2.0}\n"
                      "ops:\n  teacher_responses:\n    config: {regenerate: true}\n")
    assert cli.main(["plan", "--json", "--config", str(config)]) == 0
    cot = json.loads(capsys.readouterr().out)["roles"]["cot_teacher"]
    assert cot["rows_upper_bound"] == source.height  # regenerate: every row is asked
    assert cot["cost"] == pytest.approx((cot["prompt_tokens"] + cot["completion_tokens"]) / 1e6 * 2.0, rel=1e-3)


def test_a_step_asking_a_row_two_ways_is_planned_and_compared_in_requests():
    """The RL rollouts ask each row twice (8 samples with the image, 4 blind): the plan counts
    both asks' requests and samples, and planned vs actual turns the attempts the tables record
    into requests the same way (found in review: 100 requests planned where 200 or 1,200 go)."""
    from mmfr_assets.planning.figures import StepCount
    from mmfr_assets.rl.steps import RlRolloutsStep

    step = RlRolloutsStep.__new__(RlRolloutsStep)
    step.samples, step.blind_samples = 8, 4
    assert step.ask_samples() == (8, 4)
    count = StepCount("S", "rl_rollouts", "policy_llm", rows=100, rows_upper=100, answered=0, basis="counted",
                      how="x", samples=sum(step.ask_samples()), max_attempts=1, ask_samples=step.ask_samples())
    r = rates("policy_llm", 12, Measured(), assumed_prompt=1, prompt_how="x")
    with_n = role_totals([count], {"rl_rollouts": r}, {"policy_llm": True}, {})["policy_llm"].as_dict()
    without_n = role_totals([count], {"rl_rollouts": r}, {"policy_llm": False}, {})["policy_llm"].as_dict()
    assert (with_n["requests"], with_n["asks"], with_n["samples"]) == (200, 100, 1200)
    assert without_n["requests"] == 1200 and without_n["requests_per_ask"] == 12
    [row] = compare({"policy_llm": without_n}, {"policy_llm": Measured(rows=100, asks=100)})
    assert (row["actual_requests"], row["actual_asks"], row["within_upper_bound"]) == (1200, 100, True)


def test_the_plan_asset_shows_mmfr_plans_figures_in_the_ui(sample_source, tmp_path):
    """`plan`, materialized alone with the run config a backfill will use: the same JSON as
    `mmfr plan` (the steps' ops config planned with), the table per subset as Markdown; no
    model asked; an unknown subset fails the run with the one line naming the subsets."""
    import dagster as dg

    from mmfr_assets.cli.plan import make_plan
    from mmfr_assets.definitions import build_definitions

    defs = build_definitions(str(sample_source), str(tmp_path / "lake"), {})
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("plan")).partitions_def is None  # per-subset runs leave it out
    assert not graph.get(dg.AssetKey("plan")).parent_keys and not graph.get(dg.AssetKey("plan")).child_keys
    steps = {"teacher_responses": {"config": {"regenerate": True}}}
    result = job.execute_in_process(asset_selection=[dg.AssetKey("plan")], run_config={
        "ops": {"plan": {"config": {"subsets": "BMMR,WeMath2-Pro"}}, **steps}})
    metadata = result.asset_materializations_for_node("plan")[0].metadata
    expected = make_plan(defs, ["BMMR", "WeMath2-Pro"], {"ops": steps}).as_json()
    assert metadata["plan_json"].value == json.loads(json.dumps(expected))
    source = sum(pl.read_parquet(f).height for s in ("BMMR", "WeMath2-Pro")
                 for f in (sample_source / s).glob("*.parquet"))
    assert expected["roles"]["cot_teacher"]["rows_upper_bound"] == source  # regenerate was read
    table = metadata["plan"].value
    assert "| BMMR |" in table and "| WeMath2-Pro |" in table and "| total |" in table
    assert metadata["subsets"].value == "BMMR, WeMath2-Pro"
    assert metadata["requests"].value.startswith(f"{expected['overall']['requests']:,} (upper bound ")
    wrong = job.execute_in_process(asset_selection=[dg.AssetKey("plan")], raise_on_error=False,
                                   run_config={"ops": {"plan": {"config": {"subsets": "NoSuchSubset"}}}})
    assert not wrong.success
    [failure] = wrong.get_step_failure_events()
    assert "unknown subset(s) NoSuchSubset" in failure.step_failure_data.error.cause.message
