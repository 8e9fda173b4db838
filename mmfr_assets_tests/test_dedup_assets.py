"""`dedup_signatures` and `deduplicated` in the graph (issue 21): a subset's copies of another
subset's rows are dropped before the teachers, one subset's run at a time, in either order; and
rows leaked from a configured benchmark are dropped as `contaminated`."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets_tests.planted_duplicates import reencode, reword

UNTIL_DISTILLED = ["collected", "question_reviews", "extracted_answers", "cleaned",
                   "dedup_signatures", "deduplicated", "teacher_captions", "teacher_responses",
                   "distilled"]


def write_source(root, subsets: dict[str, pl.DataFrame]):
    lines = ["---", "configs:"]
    for name, frame in subsets.items():
        (root / name).mkdir(parents=True)
        frame.write_parquet(root / name / "train-00000-of-00001.parquet")
        lines += [f'- config_name: "{name}"', "  data_files:", "  - split: train",
                  f'    path: "{name}/train-*.parquet"']
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return root


@pytest.fixture(scope="module")
def source(real_sample, tmp_path_factory):
    import random

    real = pl.read_parquet(real_sample / "FineVision-geo170k(qa)" / "train-00000-of-00001.parquet"
                           ).with_columns(pl.col("id").cast(pl.String))
    rng = random.Random(1)
    copies = real.head(6).with_columns(
        pl.Series("image", [{"bytes": reencode(i["bytes"], quality=60), "path": None}
                            for i in real.head(6)["image"]]),
        pl.Series("question", [reword(q, rng) for q in real.head(6)["question"]]),
        pl.Series("id", [f"copy-{i}" for i in real.head(6)["id"]]),
    )
    other = pl.read_parquet(real_sample / "BMMR" / "train-00000-of-00001.parquet"
                            ).with_columns(pl.col("id").cast(pl.String))
    copy_of_b = pl.concat([other.head(4), copies])  # 4 rows of its own, 6 copies of A's
    return write_source(tmp_path_factory.mktemp("dedup-source"),
                        {"A-geo": real, "B-mixed": copy_of_b}), real, other


def run(defs, subset, instance, config=None):
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key=subset, instance=instance, asset_selection=[dg.AssetKey(a) for a in UNTIL_DISTILLED],
        run_config={"ops": {"deduplicated": {"config": config}}} if config else None)
    assert result.success
    return {m.asset_key.path[-1]: m.metadata for m in
            (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}


def rows(lake, table, subset):
    return pl.read_delta(f"{lake}/{table}").filter(pl.col("subset") == subset)


def test_copies_in_another_subset_never_reach_the_teachers(source, tmp_path):
    root, real, _ = source
    lake = str(tmp_path / "lake")
    defs = build_definitions(str(root), lake, {})
    instance = dg.DagsterInstance.ephemeral()
    # B first: A has no signatures yet, so B keeps its copies (nothing ranked before them)
    first_b = run(defs, "B-mixed", instance)
    assert first_b["deduplicated"]["rows_dropped"].value == 0
    run(defs, "A-geo", instance)
    assert rows(lake, "deduplicated", "A-geo").height == real.height  # A ranks first: all kept
    # B again: its six copies are duplicates of A's rows (A ranks before B by name)
    again = run(defs, "B-mixed", instance)
    meta = again["deduplicated"]
    assert meta["rows_in"].value == 10 and meta["rows_dropped"].value == 6
    assert meta["dropped"].value == {"contaminated": 0, "duplicate_of": 6}
    assert meta["dedup/compared_subsets"].value == {"A-geo": real.height, "B-mixed": 10}
    assert meta["dedup/teacher_calls_saved"].value == {"caption_teacher": 0, "cot_teacher": 0}
    dropped = pl.read_delta(f"{lake}/rejections").filter(
        (pl.col("stage") == "deduplicated") & (pl.col("subset") == "B-mixed"))
    assert sorted(zip(dropped["id"], dropped["filter"], dropped["reason"], dropped["detail"])) == sorted(
        (f"copy-{i}", "dedup", "duplicate_of", f"(A-geo, {i})") for i in real.head(6)["id"])
    # the teachers and distilled hold the kept rows only; accounting checks passed (run succeeded)
    kept = set(rows(lake, "deduplicated", "B-mixed")["id"])
    assert len(kept) == 4
    for table in ("teacher_responses", "teacher_captions", "distilled"):
        assert set(rows(lake, table, "B-mixed")["id"]) == kept, table
    signatures = rows(lake, "dedup_signatures", "B-mixed")
    assert signatures.height == 10 and signatures["phash"].null_count() == 0
    assert "image_bytes" not in pl.read_delta(f"{lake}/deduplicated").columns
    # the printed funnel and the report's table show what was removed and the asks it saved
    from mmfr_assets.dedup.savings import savings
    from mmfr_assets.lake.resource import LakeResource
    from mmfr_assets.reporting.funnel import funnel_lines

    printed = "\n".join(funnel_lines(LakeResource(uri=lake), ["B-mixed"]))
    assert any(line.split()[-2:] == ["duplicate_of", "6"] for line in printed.splitlines())
    assert "asks saved (caption + trace)" in printed
    [saved] = savings(LakeResource(uri=lake), ["B-mixed"])
    assert (saved.duplicates, saved.contaminated, saved.asks) == (6, 0, 0)  # published annotations
    # listing B first keeps B's copies and drops A's originals instead
    swapped = run(defs, "A-geo", instance, {"subset_order": ["B-mixed"]})
    assert swapped["deduplicated"]["rows_dropped"].value == 6


def test_benchmark_leaks_are_dropped_as_contaminated(source, tmp_path):
    root, real, other = source
    bench = tmp_path / "benchmarks"
    (bench / "MathBench").mkdir(parents=True)
    leaked_text = real["question"][0]
    (bench / "MathBench" / "test.jsonl").write_text(
        json.dumps({"pid": "mb-7", "question": "Context: " + leaked_text + " Explain."}) + "\n"
        + json.dumps({"pid": "mb-8", "question": "An unrelated question about a circle"}) + "\n")
    (bench / "FigureBench").mkdir()
    pl.DataFrame({"question": ["What is shown?"],
                  "image": [{"bytes": reencode(other["image"][1]["bytes"], quality=70), "path": None}],
                  "id": ["fb-1"]}).write_parquet(bench / "FigureBench" / "test.parquet")
    lake = str(tmp_path / "lake")
    defs = build_definitions(str(root), lake, {})
    instance = dg.DagsterInstance.ephemeral()
    config = {"benchmarks": [str(bench / "MathBench"), str(bench / "FigureBench")]}
    meta = run(defs, "A-geo", instance, config)["deduplicated"]
    assert meta["decontamination/benchmarks"].value == {
        "FigureBench": {"items": 1, "rows_removed": 0}, "MathBench": {"items": 2, "rows_removed": 1}}
    meta = run(defs, "B-mixed", instance, config)["deduplicated"]
    assert meta["decontamination/benchmarks"].value["FigureBench"] == {"items": 1, "rows_removed": 1}
    dropped = pl.read_delta(f"{lake}/rejections").filter(
        (pl.col("stage") == "deduplicated") & (pl.col("reason") == "contaminated"))
    details = dict(zip(dropped["id"], dropped["detail"]))
    assert details[str(real["id"][0])].startswith("benchmark MathBench item mb-7: shares the 13-gram")
    assert details[str(other["id"][1])].startswith("benchmark FigureBench item fb-1: image")
    # the copy of the leaked row in B is contaminated too (its reworded text may not be, its
    # figure is not the benchmark's): either way it never reaches the teachers
    assert str(real["id"][0]) not in set(rows(lake, "teacher_responses", "A-geo")["id"])


def test_a_benchmark_without_questions_is_refused_in_one_line(source, tmp_path):
    from mmfr_assets.dedup.benchmarks import read_benchmark
    from mmfr_assets.errors import InputError

    (tmp_path / "b.jsonl").write_text('{"text_only_field_x": 1}\n')
    with pytest.raises(InputError, match="has no question column"):
        read_benchmark(tmp_path / "b.jsonl")
    with pytest.raises(InputError, match="no .parquet or .jsonl file"):
        read_benchmark(tmp_path / "missing")
