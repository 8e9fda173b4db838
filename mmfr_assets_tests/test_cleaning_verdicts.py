"""`cleaned` applies the model steps' verdicts: rewritten questions, non-answer questions
dropped, failed reviews flagged (or dropped on request), answers extracted from solutions or
the solution kept as the reference; only a row with no reference at all is dropped."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq

from mmfr_assets.model_step.runner import skipped
from mmfr_assets.cleaning.answers import (
    AnswerExtraction,
    AnswerExtractionConfig,
    parse_extracted_answer,
    rows_needing_extraction,
)
from mmfr_assets.cleaning.assets import CleanedConfig, clean_batch
from mmfr_assets.llm.types import ChatResult, Choice
from mmfr_assets.model_step.declaration import Parsed, Retry
from mmfr_assets.prompts import load_prompt
from mmfr_assets_tests.other_layouts import png

IMAGE = png((1, 2, 3))


def _batch() -> pl.DataFrame:
    rows = [
        # id, question, answer, original_answer, review_status, corrected, extracted
        ("kept", "<image>What is x?", "4", None, "not_routed", None, None),
        ("rewritten", "<image>求x (5分)", "4", None, "rewritten", "<image>Find x.", None),
        ("non_answer", "<image>Prove it.", "4", None, "non_answer", None, None),
        ("failed", "<image>1. What is x?", "4", None, "failed", None, None),
        ("extracted", "<image>What is x?", "", "x = 2 + 2 = 4, so 4.", "not_routed", None, "\\frac{8}{2}"),
        ("solution_only", "<image>What is x?", None, "x = 4", "not_routed", None, None),
        ("nothing", "<image>What is x?", " ", None, "not_routed", None, None),
    ]
    ids, questions, answers, solutions, statuses, corrected, extracted = zip(*rows)
    return pl.DataFrame(
        {
            "subset": ["S"] * len(ids),
            "id": list(ids),
            "original_question": [None] * len(ids),
            "question": list(questions),
            "answer": list(answers),
            "original_answer": list(solutions),
            "image_bytes": [IMAGE] * len(ids),
            "image_path": [None] * len(ids),
            "image_count": [1] * len(ids),
            "review_status": list(statuses),
            "error_types": [["translation"] if s == "rewritten" else [] for s in statuses],
            "corrected_question": list(corrected),
            "review_error": ["unparseable reply: 'Sure'" if s == "failed" else None for s in statuses],
            "extracted_answer": list(extracted),
            "answer_error": [None] * len(ids),
        },
        schema_overrides={"image_count": pl.Int32},
    )


def test_verdicts_are_applied():
    verdicts = clean_batch(_batch(), CleanedConfig())
    kept = {r["id"]: r for r in verdicts.kept.iter_rows(named=True)}
    assert set(kept) == {"kept", "rewritten", "failed", "extracted", "solution_only"}
    assert dict(zip(verdicts.dropped["id"], verdicts.dropped["reason"])) == {
        "non_answer": "text_non_answer_question", "nothing": "text_empty_answer"}
    detail = dict(zip(verdicts.dropped["id"], verdicts.dropped["detail"]))
    assert detail["non_answer"] == "question_reviews: non-answer question"
    assert kept["rewritten"]["question"] == "<image>Find x."
    assert kept["rewritten"]["original_question"] == "<image>求x (5分)"
    assert kept["rewritten"]["question_error_types"] == ["translation"]
    assert kept["failed"]["question_review"] == "failed"  # kept with its flag
    assert kept["failed"]["question"] == "<image>1. What is x?"
    assert (kept["extracted"]["answer"], kept["extracted"]["answer_origin"]) == ("\\frac{8}{2}", "extracted")
    assert kept["extracted"]["answer_reference"] == "\\frac{8}{2}"
    solution = kept["solution_only"]
    assert solution["answer"] is None and solution["answer_origin"] == "original_answer"
    assert solution["answer_reference"] == "x = 4"
    assert (kept["kept"]["answer_origin"], kept["kept"]["answer_reference"]) == ("dataset", "4")


def test_failed_reviews_can_be_dropped():
    verdicts = clean_batch(_batch(), CleanedConfig(review_failed="drop"))
    reasons = dict(zip(verdicts.dropped["id"], verdicts.dropped["reason"]))
    assert reasons["failed"] == "text_review_failed"
    assert dict(zip(verdicts.dropped["id"], verdicts.dropped["detail"]))["failed"].startswith("unparseable")


def test_real_row_with_solution_but_no_answer_is_kept(real_sample):
    """FineVision-ai2d_merged id 1: empty answer, full original_answer; the published
    selection keeps it, and so does cleaning now (without an endpoint, on its solution)."""
    table = pq.read_table(real_sample / "FineVision-ai2d_merged" / "train-00000-of-00001.parquet")
    from mmfr_assets.collection.source import to_collected

    batch = pl.from_arrow(to_collected(table, "FineVision-ai2d_merged", 0))
    row = batch.filter(pl.col("id") == "1")
    assert not row["answer"][0] and len(row["original_answer"][0]) > 100
    assert rows_needing_extraction(batch).to_list() == [r == "1" for r in batch["id"]]
    verdicts = clean_batch(batch, CleanedConfig())
    assert "1" in verdicts.kept["id"].to_list() and verdicts.dropped.height == 0
    kept = verdicts.kept.filter(pl.col("id") == "1")
    assert kept["answer_origin"][0] == "original_answer"
    assert kept["answer_reference"][0] == row["original_answer"][0].strip()


def _ok(content: str, reasoning: str = "") -> ChatResult:
    return ChatResult(ok=True, choices=(Choice(content=content, reasoning=reasoning),))


def test_answer_parser_forms():
    assert parse_extracted_answer("<answer>\\frac{3}{4}</answer>") == "\\frac{3}{4}"
    assert parse_extracted_answer("<think>maybe <answer>A</answer></think>So: <answer> B </answer>") == "B"
    assert parse_extracted_answer("Reading the solution.</think>\n<answer>x = 2</answer>") == "x = 2"
    assert parse_extracted_answer("```\n<answer>\\sqrt{2}\\times 3</answer>\n```") == "\\sqrt{2}\\times 3"
    assert parse_extracted_answer("<answer></answer>") == ""


def test_answer_step_branches():
    step = AnswerExtraction(AnswerExtractionConfig(max_attempts=2))
    row = {"question": "Q", "answer": "", "original_answer": "... so the result is 7."}
    assert "... so the result is 7." in step.render(row, load_prompt("answer_extraction"))
    extracted = step.parse(row, [_ok("<answer>7</answer>", reasoning="<answer>8</answer>")], 1)
    assert extracted.columns == {"extracted_answer": "7", "answer_origin": "extracted", "answer_error": None}
    none = step.parse(row, [_ok("<answer></answer>")], 1)
    assert none.columns["answer_origin"] == "failed" and none.failure is None
    retry = step.parse(row, [_ok("The answer is 7.")], 1)
    assert isinstance(retry, Retry)
    given_up = step.parse(row, [_ok("The answer is 7.")], 2)
    assert isinstance(given_up, Parsed) and given_up.columns["answer_origin"] == "failed" and given_up.failure
    http = step.parse(row, [ChatResult(ok=False, error="HTTP 503")], 1)
    assert http.columns["answer_origin"] == "failed" and "HTTP 503" in http.columns["answer_error"]
    assert step.without_model({"answer": "3"}).columns["answer_origin"] == "dataset"
    assert step.without_model({"answer": ""}).columns["answer_origin"] == "absent"
    missing = skipped(step, row, "answer_llm is not configured")
    assert missing.columns["answer_origin"] == "missing" and missing.failure is None
    assert missing.columns["answer_error"] == "answer_llm is not configured"
