"""Stage 2 end to end through Dagster: a source of another layout (`question`/`answer`/
`solution`/`images`) collected, reviewed by `cleaner_llm`, answered by `answer_llm` and cleaned,
with the fake server's scripted replies covering every branch, and exact counts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import datasets
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets_tests.other_layouts import png

ASSETS = ["collected", "question_reviews", "extracted_answers", "cleaned"]
FAST = {"max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 10.0}

# id: (question, answer, solution, images); words such as "walrus" select scripted replies.
ROWS = {
    "plain": ("<image>What is the length of the walrus segment AB?", "5", None, 1),
    "chinese": ("<image>如图，海象线段AB的长度是多少？", "5", None, 1),
    "proof": ("<image>Prove that the narwhal triangle in the figure is isosceles.", "yes", None, 1),
    "garbled": ("<image>Find the area of the okapi region in the figure. (5 points)", "12", None, 1),
    "url": ("<image>See https://example.com/axolotl for data. What is the mean of the bars?", "3", None, 1),
    "solution": ("<image>What is the pangolin ratio in the figure?", "", "The ratio is 1 to 2, so 1/2.", 1),
    "untagged": ("<image>What is the quokka speed shown in the graph?", None, "Speed = 10/2 = 5 m/s.", 1),
    "nothing": ("<image>What is the tapir angle in the figure?", " ", None, 1),
    "two_images": ("<image><image>Which of the two capybara figures is larger?", "A", None, 2),
}
REVIEW_REPLY = (
    '{"error_type": ["translation"], "corrected_text": '
    '"<image>As shown, what is the length of segment AB? Note $\\frac{a}{b} \\times \\sqrt{2}$."}'
)
RULES = [
    {"fault": "reply", "marker": "海象", "content": "Here is my verdict:\n```json\n" + REVIEW_REPLY + "\n```",
     "reasoning": 'The text is Chinese. Draft: {"error_type": "irrelevant content", "corrected_text": "x"}'},
    {"fault": "reply", "marker": "narwhal",
     "content": '<think>A proof has no checkable answer.</think>{"error_type": "non-answer question", '
                '"corrected_text": ""}'},
    {"fault": "reply", "marker": "okapi", "content": "I think the question is mostly fine, maybe."},
    {"fault": "reply", "marker": "axolotl", "content": "Okay, checking the link.</think>\n\nNo Problem"},
    {"fault": "reply", "marker": "pangolin", "content": "The solution ends with 1/2. <answer>\\frac{1}{2}</answer>"},
    {"fault": "reply", "marker": "quokka", "content": "The speed is 5 m/s."},
]


def _source(folder: Path) -> Path:
    features = datasets.Features({
        "id": datasets.Value("string"), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "solution": datasets.Value("string"),
        "images": datasets.Sequence(datasets.Image()),
    })
    rows = {"id": [], "question": [], "answer": [], "solution": [], "images": []}
    for k, (row_id, (question, answer, solution, images)) in enumerate(ROWS.items()):
        for name, value in (("id", row_id), ("question", question), ("answer", answer), ("solution", solution)):
            rows[name].append(value)
        rows["images"].append([{"bytes": png((k * 20, i * 90, 30)), "path": None} for i in range(images)])
    (folder / "mine").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "mine" / "train.parquet"))
    (folder / "README.md").write_text(
        '---\nconfigs:\n- config_name: "mine"\n  data_files:\n  - split: train\n    path: "mine/*.parquet"\n---\n'
    )
    return folder


def _run(defs, instance, *, config=None):
    run_config = {
        "ops": {"question_reviews": {"config": {"max_failure_rate": 0.5}},
                "extracted_answers": {"config": {"max_failure_rate": 0.6}}},
        "resources": {r: {"config": FAST} for r in ("cleaner_llm", "answer_llm")},
    }
    for asset, values in (config or {}).items():
        run_config["ops"].setdefault(asset, {"config": {}})["config"].update(values)
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="mine", instance=instance, raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in ASSETS], run_config=run_config,
    )


def _metadata(result, asset):
    [m] = [e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
           if e.event_specific_data.materialization.asset_key.path[-1] == asset]
    # counts besides the row counts are text (the UI plots numbers): read back as numbers here
    return {k: _number(getattr(v, "value", v)) for k, v in m.items()}


def _number(value):
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value


@pytest.fixture
def endpoints(monkeypatch, tmp_path, fake_llm):
    for role in ("CLEANER_LLM", "ANSWER_LLM"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", fake_llm.url)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", "fake-model")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    fake_llm.configure(rules=RULES)
    return fake_llm


def test_every_branch_with_scripted_replies_and_exact_counts(endpoints, tmp_path):
    defs = build_definitions(str(_source(tmp_path / "src")), str(tmp_path / "lake"), {})
    instance = dg.DagsterInstance.ephemeral()
    result = _run(defs, instance)
    assert result.success
    lake = tmp_path / "lake"

    reviews = pl.read_delta(str(lake / "question_reviews"))
    status = dict(zip(reviews["id"], reviews["review_status"]))
    assert status == {
        "plain": "not_routed", "chinese": "rewritten", "proof": "non_answer", "garbled": "failed",
        "url": "no_problem", "solution": "not_routed", "untagged": "not_routed",
        "nothing": "not_routed", "two_images": "not_routed",
    }
    garbled = reviews.filter(pl.col("id") == "garbled").row(0, named=True)
    assert garbled["attempts"] == 2 and "mostly fine" in garbled["review_error"]
    assert "score_annotation" in garbled["route_reasons"]
    review_meta = _metadata(result, "question_reviews")
    assert review_meta["rows_sent"] == 4 and review_meta["rows/not_routed"] == 5
    assert review_meta["rows_failed"] == 1
    assert review_meta["review/rows_routed"] == 4 and review_meta["review/mode"] == "flagged"
    assert review_meta["review/route/foreign_script"] == 1 and review_meta["review/route/url"] == 1
    assert review_meta["review/error_type/translation"] == 1
    assert review_meta["review/error_type/non-answer question"] == 1

    answers = pl.read_delta(str(lake / "extracted_answers"))
    origin = dict(zip(answers["id"], answers["answer_origin"]))
    assert origin == {"plain": "dataset", "chinese": "dataset", "proof": "dataset", "garbled": "dataset",
                      "url": "dataset", "solution": "extracted", "untagged": "failed",
                      "nothing": "absent", "two_images": "dataset"}

    cleaned = {r["id"]: r for r in pl.read_delta(str(lake / "cleaned")).iter_rows(named=True)}
    assert sorted(cleaned) == ["chinese", "garbled", "plain", "solution", "untagged", "url"]
    chinese = cleaned["chinese"]
    assert chinese["question"] == (
        "<image>As shown, what is the length of segment AB? Note $\\frac{a}{b} \\times \\sqrt{2}$.")
    assert chinese["original_question"] == ROWS["chinese"][0]
    assert chinese["question_error_types"] == ["translation"]
    assert cleaned["garbled"]["question_review"] == "failed"
    assert cleaned["garbled"]["question"] == ROWS["garbled"][0]
    assert (cleaned["solution"]["answer"], cleaned["solution"]["answer_origin"]) == ("\\frac{1}{2}", "extracted")
    assert cleaned["untagged"]["answer_origin"] == "original_answer"
    assert cleaned["untagged"]["answer_reference"] == "Speed = 10/2 = 5 m/s."
    rejections = pl.read_delta(str(lake / "rejections")).filter(pl.col("stage") == "cleaned")
    assert dict(zip(rejections["id"], rejections["reason"])) == {
        "proof": "text_non_answer_question", "nothing": "text_empty_answer", "two_images": "image_multiple"}
    meta = _metadata(result, "cleaned")
    assert (meta["review/calls_made"], meta["review/calls_saved"], meta["review/rewritten"]) == (4, 5, 1)
    assert meta["review/error_type/translation"] == 1 and meta["review/error_type/non-answer question"] == 1
    assert meta["answers/extracted"] == 1 and meta["dropped"]["text_non_answer_question"] == 1

    # A re-run pays for nothing: every reply comes from the cache.
    sent = endpoints.stats()["requests"]
    assert sent == (4 + 1) + (2 + 1)  # reviews (garbled asked twice), extractions (untagged twice)
    again = _run(defs, instance)
    assert again.success and endpoints.stats()["requests"] == sent

    # review: none sends nothing; review_failed: drop drops the failed one (from a fresh lake).
    lake2 = tmp_path / "lake2"
    defs2 = build_definitions(str(tmp_path / "src"), str(lake2), {})
    none = _run(defs2, instance, config={"question_reviews": {"review": "none"},
                                          "cleaned": {"review_failed": "drop"}})
    assert none.success and endpoints.stats()["requests"] == sent
    assert set(pl.read_delta(str(lake2 / "question_reviews"))["review_status"]) == {"not_routed"}


def test_review_failed_drop_and_keep_first(endpoints, tmp_path):
    defs = build_definitions(str(_source(tmp_path / "src")), str(tmp_path / "lake"), {})
    result = _run(defs, dg.DagsterInstance.ephemeral(),
                  config={"cleaned": {"review_failed": "drop", "multiple_images": "keep_first"}})
    assert result.success
    rejections = pl.read_delta(str(tmp_path / "lake" / "rejections")).filter(pl.col("stage") == "cleaned")
    assert dict(zip(rejections["id"], rejections["reason"])) == {
        "proof": "text_non_answer_question", "nothing": "text_empty_answer", "garbled": "text_review_failed"}
    cleaned = pl.read_delta(str(tmp_path / "lake" / "cleaned"))
    assert cleaned.filter(pl.col("id") == "two_images")["image_count"].to_list() == [2]


def test_without_endpoints_rows_are_kept_and_the_metadata_says_skipped(monkeypatch, tmp_path):
    for role in ("CLEANER_LLM", "ANSWER_LLM"):
        monkeypatch.delenv(f"MMFR_{role}_BASE_URL", raising=False)
    defs = build_definitions(str(_source(tmp_path / "src")), str(tmp_path / "lake"), {})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="mine", instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(a) for a in ASSETS])
    assert result.success
    assert _metadata(result, "question_reviews")["model_calls"].startswith("skipped")
    reviews = pl.read_delta(str(tmp_path / "lake" / "question_reviews"))
    assert dict(zip(reviews["id"], reviews["review_status"]))["chinese"] == "skipped"
    cleaned = pl.read_delta(str(tmp_path / "lake" / "cleaned"))
    # Nothing is dropped for want of a model: the solution is the untagged row's reference.
    assert sorted(cleaned["id"]) == ["chinese", "garbled", "plain", "proof", "solution", "untagged", "url"]
    assert dict(zip(cleaned["id"], cleaned["answer_origin"]))["solution"] == "original_answer"
    assert _metadata(result, "cleaned")["review/skipped_no_endpoint"] == 4


def test_cleaned_alone_says_which_model_steps_it_could_not_join(tmp_path):
    defs = build_definitions(str(_source(tmp_path / "src")), str(tmp_path / "lake"), {})
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="mine", instance=instance,
        asset_selection=[dg.AssetKey("collected"), dg.AssetKey("cleaned")])
    assert result.success
    logs = " ".join(e.user_message for e in instance.all_logs(result.run_id))
    assert "question_reviews, extracted_answers not materialized for this partition" in logs
    meta = _metadata(result, "cleaned")
    assert meta["model_steps_not_joined"] == "question_reviews, extracted_answers"
    assert meta["review/calls_made"] == 0 and meta["review/calls_saved"] == 0
