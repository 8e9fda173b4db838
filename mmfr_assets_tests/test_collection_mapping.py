"""Any source in: the column mapping, image values of every form, and exact counts for
sources of other layouts through collection and cleaning."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from mmfr_assets.cleaning.assets import CleanedConfig, clean_batch
from mmfr_assets.collection.image_values import row_images
from mmfr_assets.collection.mapping import ColumnMap, resolve_mapping
from mmfr_assets.collection.source import HFSourceResource, mapped_tables, to_collected
from mmfr_assets.errors import InputError
from mmfr_assets_tests.other_layouts import SEVERAL_IMAGES, image_paths, png, problem_solution_images


def test_usual_names_are_detected():
    assert resolve_mapping(["problem", "solution", "images"], None, where="w") == {
        "question": "problem", "original_answer": "solution", "image": "images",
    }
    card = ["source", "id", "original_question", "original_answer", "image", "question", "answer"]
    assert resolve_mapping(card, None, where="w") == {c: c for c in card}


def test_explicit_mapping_wins_and_empty_means_unmapped():
    mapping = resolve_mapping(
        ["question", "query", "answer", "label", "img"],
        ColumnMap(question="query", answer="label", image=""),
        where="w",
    )
    assert mapping == {"question": "query", "answer": "label"}
    # An explicitly taken column is not detected again for another target.
    assert resolve_mapping(["answer", "gt"], {"original_answer": "answer"}, where="w") == {
        "original_answer": "answer"
    }


def test_mapping_naming_absent_columns_is_refused_in_one_line():
    with pytest.raises(InputError) as refused:
        resolve_mapping(["problem", "images"], ColumnMap(question="prompt", answer="gt"), where="src S")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("src S:")
    assert "question='prompt'" in message and "answer='gt'" in message and "problem, images" in message
    with pytest.raises(InputError, match="unknown keys caption_text"):
        resolve_mapping(["question"], {"caption_text": "c"}, where="w")


def test_source_with_none_of_the_columns_is_refused():
    with pytest.raises(InputError) as refused:
        resolve_mapping(["foo", "bar"], None, where="src S")
    assert "\n" not in str(refused.value) and "foo, bar" in str(refused.value)


def test_image_values_of_every_form(tmp_path):
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "in_subset.png").write_bytes(b"subset-file")
    (tmp_path / "top.png").write_bytes(b"top-file")
    absolute = tmp_path / "abs.png"
    absolute.write_bytes(b"abs-file")
    folders = [tmp_path / "S", tmp_path]
    structs = pa.array([{"bytes": b"b1", "path": "x.png"}, {"bytes": None, "path": "top.png"},
                        {"bytes": None, "path": None}, None])
    assert [(i.data, i.count) for i in row_images(structs, folders)] == [
        (b"b1", 1), (b"top-file", 1), (None, 0), (None, 0)]
    paths = pa.array(["in_subset.png", "top.png", str(absolute), "gone.png", "http://h/x.png", ""])
    assert [(i.data, i.path, i.count) for i in row_images(paths, folders)] == [
        (b"subset-file", "in_subset.png", 1), (b"top-file", "top.png", 1),
        (b"abs-file", str(absolute), 1), (None, "gone.png", 1), (None, "http://h/x.png", 1),
        (None, None, 0)]
    raw = pa.array([b"raw", None], pa.binary())
    assert [(i.data, i.count) for i in row_images(raw, folders)] == [(b"raw", 1), (None, 0)]
    lists = pa.array([[b"a", b"b", b"c"], [], None, [None, b"d"]], pa.list_(pa.binary()))
    assert [(i.data, i.count) for i in row_images(lists, folders)] == [
        (b"a", 3), (None, 0), (None, 0), (b"d", 1)]


def test_to_collected_casts_and_counts():
    table = pa.table({"uid": [7, None], "problem": ["Q1", "Q2"], "label": [3, 4],
                      "images": [[b"x"], [b"y", b"z"]]})
    mapping = {"id": "uid", "question": "problem", "answer": "label", "image": "images"}
    out = to_collected(table, "S", 100, mapping).to_pylist()
    assert [r["id"] for r in out] == ["7", "#101"]
    assert [r["answer"] for r in out] == ["3", "4"]
    assert [(r["image_bytes"], r["image_count"]) for r in out] == [(b"x", 1), (b"y", 2)]
    with pytest.raises(InputError, match="mapped to qwen3vl_4b_pass_rate"):
        to_collected(pa.table({"question": ["q"], "rate": ["high"]}), "S", 0,
                     {"question": "question", "qwen3vl_4b_pass_rate": "rate"})


def _collect(path, subset, column_map=None, batch_size=7):
    source = HFSourceResource(path=str(path))
    tables, mapping = mapped_tables(source, subset, column_map, batch_size=batch_size)
    return pl.concat([pl.from_arrow(t) for t in tables]), mapping


def test_problem_solution_images_collected_and_cleaned_with_exact_counts(tmp_path):
    folder = problem_solution_images(tmp_path / "ds")
    collected, mapping = _collect(folder, "geometry")
    assert mapping == {"id": "id", "question": "problem", "original_answer": "solution",
                       "image": "images"}
    assert collected.height == 20
    assert collected["question"].null_count() == 0 and collected["image_bytes"].null_count() == 0
    assert collected["id"].to_list() == [str(k) for k in range(20)]
    counts = dict(zip(collected["id"], collected["image_count"]))
    assert {i for i, c in counts.items() if c == 2} == SEVERAL_IMAGES
    assert collected["image_bytes"][0] == png((0, 100, 200))

    verdicts = clean_batch(collected, CleanedConfig())
    assert verdicts.kept.height == 17 and verdicts.dropped.height == 3
    assert set(verdicts.dropped["id"]) == SEVERAL_IMAGES
    assert set(verdicts.dropped["reason"]) == {"image_multiple"}
    assert verdicts.dropped["detail"][0].startswith("2 images")
    kept = verdicts.kept
    # No answer column: the solution is the row's reference for verification.
    assert kept["answer_origin"].unique().to_list() == ["original_answer"]
    assert kept["answer_reference"][0].startswith("Since the triangles are similar")
    assert kept["original_question"].to_list() == kept["question"].to_list()
    # keep_first: the first image is trained on, the count stays recorded.
    lenient = clean_batch(collected, CleanedConfig(multiple_images="keep_first"))
    assert lenient.kept.height == 20
    assert sorted(lenient.kept.filter(pl.col("image_count") == 2)["id"]) == sorted(SEVERAL_IMAGES)


def test_image_path_column_collected_and_cleaned_with_exact_counts(tmp_path):
    folder = image_paths(tmp_path / "ds")
    collected, mapping = _collect(folder, "charts", batch_size=5)
    assert mapping == {"question": "question", "answer": "answer", "image": "image"}
    assert collected.height == 12
    assert collected["image_bytes"].null_count() == 2
    assert collected["image_bytes"][3] == (folder / "pictures" / "chart_3.png").read_bytes()
    assert collected["id"].to_list() == [f"#{k}" for k in range(12)]
    verdicts = clean_batch(collected, CleanedConfig())
    assert verdicts.kept.height == 10
    assert dict(zip(verdicts.dropped["id"], verdicts.dropped["reason"])) == {
        "#10": "image_missing", "#11": "image_missing"}
    assert verdicts.kept["image_width"].to_list() == [32 + k for k in range(10)]


def test_bad_mapping_is_refused_before_anything_is_read_further(tmp_path):
    folder = image_paths(tmp_path / "ds")
    with pytest.raises(InputError, match="question='prompt'"):
        _collect(folder, "charts", ColumnMap(question="prompt"))
    # A column of the wrong type is refused from the first batch too, before anything is written.
    source = HFSourceResource(path=str(folder))
    with pytest.raises(InputError, match="mapped to qwen3vl_4b_pass_rate has type string"):
        mapped_tables(source, "charts", {"qwen3vl_4b_pass_rate": "question"}, batch_size=4)


def _materialize(source, lake, subset, run_config=None):
    import dagster as dg

    from mmfr_assets.definitions import build_definitions

    defs = build_definitions(str(source), str(lake), {})
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=subset, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in
                         ("collected", "question_reviews", "extracted_answers", "cleaned")],
        run_config=run_config,
    )


@pytest.mark.parametrize("layout, subset, kept, dropped", [
    (problem_solution_images, "geometry", 17, {"image_multiple": 3}),
    (image_paths, "charts", 10, {"image_missing": 2}),
])
def test_other_layouts_through_the_assets(tmp_path, monkeypatch, layout, subset, kept, dropped):
    monkeypatch.delenv("MMFR_CLEANER_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("MMFR_ANSWER_LLM_BASE_URL", raising=False)
    source, lake = layout(tmp_path / "ds"), tmp_path / "lake"
    result = _materialize(source, lake, subset)
    assert result.success
    rows = layout is problem_solution_images and 20 or 12
    assert pl.read_delta(str(lake / "collected")).height == rows
    assert pl.read_delta(str(lake / "cleaned")).height == kept
    rejections = pl.read_delta(str(lake / "rejections"))
    assert dict(rejections.group_by("reason").len().iter_rows()) == dropped
    [collected] = [e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
                   if e.event_specific_data.materialization.asset_key.path[-1] == "collected"]
    assert "image" in collected["column_map"].value


def test_bad_mapping_fails_the_run_before_any_table_is_touched(tmp_path):
    from mmfr_assets.errors import InputError

    source, lake = problem_solution_images(tmp_path / "ds"), tmp_path / "lake"
    config = {"ops": {"collected": {"config": {"column_map": {"question": "prompt"}}}}}
    result = _materialize(source, lake, "geometry", config)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.error
    cause = error.cause or error
    assert cause.cls_name == InputError.__name__ and "question='prompt'" in cause.message
    assert not lake.exists() or not (lake / "collected").exists()
