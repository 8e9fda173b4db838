"""The cleaner and answer roles against a real OpenAI-compatible server: llama.cpp serving
SmolLM2-135M-Instruct (the `llamacpp_server` session fixture, `mmfr_assets_tests/llamacpp.py`).

A 135M model's verdicts are weak and mostly unparseable; what is tested is that through the
assets as users run them, on real published rows, every row ends parsed or recorded with its
reason, the run does not crash, and `cleaned` accounts for every row.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from mmfr_assets.cleaning.answers import ORIGINS
from mmfr_assets.cleaning.review import FAILED, STATUSES
from mmfr_assets.definitions import build_definitions
from mmfr_assets_tests.llamacpp import MODEL_ALIAS

SUBSET = "FineVision-ai2d_merged"  # row id 1 has an empty answer and a full solution
ROWS = 3


def test_cleaner_and_answer_roles_end_to_end_on_real_rows(llamacpp_server, real_sample, tmp_path, monkeypatch):
    for role in ("CLEANER_LLM", "ANSWER_LLM"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", llamacpp_server)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", MODEL_ALIAS)
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    lake = tmp_path / "lake"
    defs = build_definitions(str(real_sample), str(lake), {})
    # Short replies from a CPU model: cut at max_tokens and accepted as they are.
    endpoint = {"max_tokens": 64, "timeout_s": 300.0, "max_retries": 1, "retry_on_length": False,
                "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    run_config = {
        "ops": {
            "collected": {"config": {"max_samples": ROWS}},
            # `all`: the published questions are clean, so `flagged` would send almost nothing.
            "question_reviews": {"config": {"review": "all", "max_failure_rate": 1.0}},
            "extracted_answers": {"config": {"max_failure_rate": 1.0}},
        },
        "resources": {r: {"config": endpoint} for r in ("cleaner_llm", "answer_llm")},
    }
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=SUBSET, instance=dg.DagsterInstance.ephemeral(), run_config=run_config,
        asset_selection=[dg.AssetKey(a) for a in ("collected", "question_reviews", "extracted_answers", "cleaned")],
    )
    assert result.success

    reviews = pl.read_delta(str(lake / "question_reviews"))
    assert reviews.height == ROWS and set(reviews["review_status"]) <= set(STATUSES)
    assert set(reviews["review_status"]) & {"not_routed", "skipped"} == set()  # every row was sent
    for row in reviews.iter_rows(named=True):
        assert row["attempts"] >= 1 and row["prompt_version"].startswith("question_review@")
        if row["review_status"] == FAILED:
            assert row["review_error"]  # recorded with its reason
        if row["review_status"] == "rewritten":
            assert row["corrected_question"]

    answers = pl.read_delta(str(lake / "extracted_answers"))
    origin = dict(zip(answers["id"], answers["answer_origin"]))
    assert set(origin.values()) <= set(ORIGINS)
    assert origin["1"] in ("extracted", "failed") and origin["0"] == "dataset"
    one = answers.filter(pl.col("id") == "1").row(0, named=True)
    assert (one["extracted_answer"] is not None) == (one["answer_origin"] == "extracted")
    if one["answer_origin"] == "failed":
        assert one["answer_error"]

    print("review statuses:", dict(zip(reviews["id"], reviews["review_status"])),
          "answer origins:", origin)
    cleaned = pl.read_delta(str(lake / "cleaned"))
    dropped = pl.read_delta(str(lake / "rejections")).filter(pl.col("stage") == "cleaned")
    assert cleaned.height + dropped.height == ROWS
    assert set(dropped["reason"]) <= {"text_non_answer_question", "text_empty_question"}
