"""A new dataset (the real rows with their labels and pass rates removed) selected through
both recipes with computed verdicts and pass rates: judge and student served by the fake
server with scripted replies, exact counts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets.selection.verify import final_answer, reference_answer
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401

SUBSETS = ("FineVision-raven", "LLaVA-CoT")
FAILING_ROW = 2
LABELS = ("qwen3vl_4b_pass_rate", "is_consistent", "consistency_analysis")
FAST = {"max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 20.0}
STUDENT = [
    # four samples per question (one request with n=4): A, A, C, and one cut off before answering
    "<think>option A fits</think><answer>A</answer>",
    "<think>A again</think>\\boxed{A}",
    "<think>maybe C</think><answer>C</answer>",
    "<think>the pattern in the third row is",
]


def new_dataset(real: Path, out: Path) -> Path:
    """The real sample's subsets without the published labels: what a new dataset looks like."""
    lines = ["---", "configs:"]
    for subset in SUBSETS:
        frame = pl.read_parquet(next((real / subset).glob("train-*.parquet")))
        frame = frame.with_columns(pl.lit(None, frame.schema[c]).alias(c) for c in LABELS)
        if subset == "FineVision-raven":  # the student's requests for this row fail
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == FAILING_ROW)
                .then(pl.col("question") + " STUDENT-FAILS")
                .otherwise(pl.col("question"))
                .alias("question")
            )
        (out / subset).mkdir(parents=True)
        frame.write_parquet(out / subset / "train-00000-of-00001.parquet")
        lines += [f'- config_name: "{subset}"', "  data_files:", "  - split: train",
                  f'    path: "{subset}/train-*.parquet"']
    (out / "README.md").write_text("\n".join([*lines, "---", "", "labels removed"]) + "\n")
    return out


def materialize(defs: dg.Definitions, subset: str, run_config: dict):
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key=subset, instance=dg.DagsterInstance.ephemeral(),
                                    run_config=run_config, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return {m.asset_key.path[-1]: m.metadata for e in result.get_asset_materialization_events()
            for m in [e.event_specific_data.materialization]}


def table(lake: Path, name: str, subset: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / name)).filter(pl.col("subset") == subset)


@pytest.fixture()
def selected(real_sample, tmp_path, monkeypatch, fake_llm):  # noqa: F811
    source = new_dataset(real_sample, tmp_path / "source")
    for role in ("JUDGE_LLM", "STUDENT_LLM"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", fake_llm.url)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", "fake-model")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    fake_llm.configure(rules=[
        # the judge: the LLaVA row whose trace commits to no answer ("Ferrero")
        {"fault": "reply", "marker": "Ferrero",
         "content": "Analysis: the candidate names no company.\nJUDGMENT: NOT EQUIVALENT"},
        # the student: every sample of one raven question fails at the server
        {"fault": "500", "marker": "STUDENT-FAILS", "message": "injected student failure"},
        {"fault": "reply", "marker": "Solve the problem step-by-step", "contents": STUDENT},
    ])
    lake = tmp_path / "lake"
    defs = build_definitions(str(source), str(lake), {})
    config = {
        "resources": {r: {"config": FAST} for r in ("judge_llm", "student_llm")},
        # one raven row of ten fails on purpose: the blocking check would stop the recipes
        "ops": {"student_rollouts": {"config": {"max_failure_rate": 0.5}}},
    }
    metadata = {s: materialize(defs, s, config) for s in SUBSETS}
    return lake, metadata, fake_llm


def ids(frame: pl.DataFrame) -> list[str]:
    return sorted(frame["id"].to_list(), key=int)


def test_new_dataset_selected_through_both_recipes(selected):
    lake, metadata, server = selected
    raven, llava = SUBSETS
    # answer verdicts: every raven row decided by a rule (letters), the one LLaVA row whose
    # trace commits to no answer judged "NOT EQUIVALENT" by the judge
    verdicts = table(lake, "answer_verdicts", raven)
    assert verdicts["method"].value_counts().sort("method").rows() == [("choice", 6), ("exact", 4)]
    assert ids(verdicts.filter(pl.col("is_consistent"))) == ["2", "6", "7", "8"]
    verdicts = table(lake, "answer_verdicts", llava)
    judged = verdicts.filter(pl.col("method") == "judge")
    assert judged.select("id", "is_consistent", "analysis").rows() == [
        ("3", False, "the candidate names no company.")
    ]
    assert int(metadata[llava]["answer_verdicts"]["rows_sent"].value) == 1
    assert "label_agreement" not in metadata[llava]["answer_verdicts"]  # no labels: no agreement
    # quality keeps the verified rows
    assert ids(table(lake, "quality_filtered", raven)) == ["2", "6", "7", "8"]
    assert ids(table(lake, "quality_filtered", llava)) == ["2", "4", "5", "7", "8"]
    # student: A, A, C, cut off -> reference A: 2 of 4; other letters: 0 of 4; the failing row
    # has no pass rate, with its reason
    rollouts = table(lake, "student_rollouts", raven).sort(pl.col("id").cast(pl.Int32))
    assert rollouts.select("id", "pass_rate", "pass_rate_origin", "correct", "incorrect", "failed").rows() == [
        ("2", None, "failed", 0, 0, 4),
        ("6", 0.5, "rollouts", 2, 2, 0),
        ("7", 0.0, "rollouts", 0, 4, 0),
        ("8", 0.0, "rollouts", 0, 4, 0),
    ]
    assert "injected student failure" in rollouts["detail"][0]
    assert rollouts["sample_answers"][1].to_list() == ["A", "A", "C", ""]
    # both recipes side by side, each with its own table and rejections
    assert ids(table(lake, "difficulty_filtered", raven)) == ["7", "8"]
    assert ids(table(lake, "difficulty_filtered_586k", raven)) == ["6", "7", "8"]
    assert ids(table(lake, "difficulty_filtered", llava)) == ["2", "4", "5", "7", "8"]
    assert ids(table(lake, "difficulty_filtered_586k", llava)) == ["2", "4", "5", "7", "8"]
    rejected = pl.read_delta(str(lake / "rejections")).filter(
        pl.col("subset") == raven, pl.col("stage").str.starts_with("difficulty")
    ).sort("stage", "id")
    assert rejected.select("stage", "id", "reason").rows() == [
        ("difficulty_filtered", "2", "difficulty_pass_rate_missing"),
        ("difficulty_filtered", "6", "difficulty_too_easy"),
        ("difficulty_filtered_586k", "2", "difficulty_pass_rate_missing"),
    ]
    assert "injected student failure" in rejected["detail"][0]
    # one request per question (n=4), the failing one tried twice, the judge once
    assert server.stats()["requests"] == 11


def test_a_rerun_pays_only_for_what_failed(selected):
    lake, _, server = selected
    source = lake.parent / "source"
    before = server.stats()["requests"]
    defs = build_definitions(str(source), str(lake), {})
    config = {
        "resources": {r: {"config": FAST} for r in ("judge_llm", "student_llm")},
        "ops": {"student_rollouts": {"config": {"max_failure_rate": 0.5}}},
    }
    for subset in SUBSETS:
        materialize(defs, subset, config)
    # only the failing row is asked again (failures are never cached)
    assert server.stats()["requests"] - before == 2
