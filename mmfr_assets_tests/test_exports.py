"""Training exports round-tripped: hub layout read back with `datasets.load_dataset`, the
LLaMA-Factory layout read back as its data/README.md documents it; rows and image bytes compared
with the lake. Also: atomicity, stale subsets, refused subsets, sanitized file names, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import datasets
import polars as pl
import pytest

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.errors import InputError
from mmfr_assets.export import export
from mmfr_assets.exports.names import file_stem, subset_folder
from mmfr_assets.lake.delta import PartitionWriter, read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets_tests.lake_fixture import SUBSETS, materialize_subsets

EXPORTED = SUBSETS[:2]


@pytest.fixture(scope="module")
def lake_and_instance(real_sample, tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("exports") / "lake")
    instance = dg.DagsterInstance.ephemeral()
    materialize_subsets(real_sample, lake, EXPORTED, instance)
    return LakeResource(uri=lake), instance


def expected_rows(lake: LakeResource, table: str, subset: str) -> pl.DataFrame:
    """The table's rows with the bytes each row is trained on (cleaned's, else the original)."""
    rows = pl.read_delta(f"{lake.uri}/{table}").filter(pl.col("subset") == subset)
    cleaned = pl.read_delta(f"{lake.uri}/cleaned").filter(pl.col("subset") == subset).select(
        "id", pl.col("image_bytes").alias("cleaned_bytes"))
    collected = pl.read_delta(f"{lake.uri}/collected").filter(pl.col("subset") == subset).select(
        "id", pl.col("image_bytes").alias("original_bytes"))
    return rows.join(cleaned, on="id", how="left").join(collected, on="id", how="left").with_columns(
        image=pl.coalesce("cleaned_bytes", "original_bytes"))


def test_hub_export_round_trips_rows_and_image_bytes(lake_and_instance, tmp_path):
    lake, instance = lake_and_instance
    out = tmp_path / "hub"
    result = export(lake, "difficulty_filtered", list(EXPORTED), out, instance=instance)
    assert sum(result.counts.values()) > 0
    for subset in EXPORTED:
        expected = expected_rows(lake, "difficulty_filtered", subset)
        assert result.counts[subset] == expected.height
        if not expected.height:
            assert not (out / subset_folder(subset)).exists()
            continue
        loaded = datasets.load_dataset(str(out), subset, split="train", cache_dir=str(tmp_path / "c"))
        assert isinstance(loaded.features["image"], datasets.Image)
        raw = loaded.cast_column("image", datasets.Image(decode=False))
        by_id = {r["id"]: r for r in expected.iter_rows(named=True)}
        assert sorted(raw["id"]) == sorted(by_id)
        for row in raw:
            want = by_id[row["id"]]
            for column in ("question", "answer", "response", "caption", "pass_rate", "is_consistent"):
                assert row[column] == want[column], column
            assert row["image"]["bytes"] == want["image"] and want["image"]


def test_dataset_card_lists_the_recipe(lake_and_instance, tmp_path):
    lake, instance = lake_and_instance
    out = tmp_path / "hub"
    result = export(lake, "difficulty_filtered", list(EXPORTED), out, instance=instance)
    card = (out / "README.md").read_text()
    # Delta versions of every table it was read from, as committed.
    for table in ("difficulty_filtered", "quality_filtered", "distilled", "cleaned", "collected", "rejections"):
        version = result.versions[table]
        assert version is not None and f"| {table} | {version} |" in card
    # Thresholds recorded by the materializations, and where captions and traces came from.
    assert "min_response_words" in card and "max_pass_rate" in card
    # The teachers' prompt versions and models (none configured here: the card says so).
    assert re.search(r"\| teacher_responses \| prompt_version \| cot_teacher@[0-9a-f]+ \| all \|", card), card
    assert "| teacher_captions | model | none | all |" in card
    assert "llm_prompt_tokens" not in card
    assert "response: dataset" in card
    # The funnel, with a drop reason the real rows trip.
    dropped = pl.read_delta(f"{lake.uri}/rejections").filter(
        (pl.col("subset") == EXPORTED[0]) & (pl.col("stage") != "difficulty_filtered_586k"))
    reason, n = dropped.group_by("reason").len().sort("len", descending=True).row(0)
    assert f"| {reason} | {n} |" in card


def test_llamafactory_export_matches_its_documented_schema(lake_and_instance, tmp_path):
    lake, _ = lake_and_instance
    out = tmp_path / "lf"
    result = export(lake, "difficulty_filtered", list(EXPORTED), out, fmt="llamafactory")
    info = json.loads((out / "dataset_info.json").read_text())
    entry = info["mmfr_difficulty_filtered"]
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images"}
    assert entry["tags"] == {"role_tag": "role", "content_tag": "content",
                             "user_tag": "user", "assistant_tag": "assistant"}
    records = json.loads((out / entry["file_name"]).read_text())
    assert len(records) == sum(result.counts.values()) > 0
    expected = {}
    for subset in EXPORTED:
        for row in expected_rows(lake, "difficulty_filtered", subset).iter_rows(named=True):
            expected[(subset, row["id"])] = row
    for record in records:
        want = expected.pop((record["subset"], record["id"]))
        user, assistant = record["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert user["content"].count("<image>") == len(record["images"]) == 1
        assert user["content"].replace("<image>", "") == want["question"].replace("<image>", "")
        assert assistant["content"] == want["response"]
        image = out / record["images"][0]
        assert image.resolve().is_relative_to(out.resolve())
        assert image.read_bytes() == want["image"]
    assert not expected


def test_a_failed_export_leaves_no_folder_and_keeps_the_previous_one(lake_and_instance, tmp_path, monkeypatch):
    from mmfr_assets.exports import hub

    lake, _ = lake_and_instance
    out = tmp_path / "hub"
    export(lake, "quality_filtered", [EXPORTED[0]], out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    calls = []

    def failing(self, subset, rows):
        calls.append(subset)
        if len(calls) == 2:
            next(iter(rows))
            raise OSError("disk full")
        return original(self, subset, rows)

    original = hub.HubWriter.write_subset
    monkeypatch.setattr(hub.HubWriter, "write_subset", failing)
    with pytest.raises(OSError, match="disk full"):
        export(lake, "quality_filtered", list(EXPORTED), out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hub"]  # no temporary folder left
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    monkeypatch.setattr(hub.HubWriter, "write_subset", failing)
    calls.clear()
    with pytest.raises(OSError):
        export(lake, "quality_filtered", list(EXPORTED), fresh)
    assert not fresh.exists()


def test_reexport_replaces_the_whole_export(lake_and_instance, tmp_path):
    lake, _ = lake_and_instance
    out = tmp_path / "hub"
    export(lake, "quality_filtered", list(EXPORTED), out)
    assert (out / subset_folder(EXPORTED[1])).is_dir()
    export(lake, "quality_filtered", [EXPORTED[0]], out)
    assert not (out / subset_folder(EXPORTED[1])).exists()
    assert EXPORTED[1] not in (out / "README.md").read_text().split("## Funnel")[0]


def test_missing_and_failed_subsets_are_refused_by_name(lake_and_instance, tmp_path, real_sample):
    lake, _ = lake_and_instance
    out = tmp_path / "hub"
    with pytest.raises(InputError, match=r"subset 'WeMath2-Pro': .*no rows for it"):
        export(lake, "difficulty_filtered", [EXPORTED[0], "WeMath2-Pro"], out)
    assert not out.exists()
    with pytest.raises(InputError, match="the table difficulty_filtered does not exist"):
        export(LakeResource(uri=str(tmp_path / "empty")), "difficulty_filtered", list(EXPORTED), out)
    with pytest.raises(InputError, match="not exportable"):
        export(lake, "collected", list(EXPORTED), out)


def test_a_subset_whose_upstream_changed_under_it_is_refused(real_sample, tmp_path):
    lake = LakeResource(uri=str(tmp_path / "lake"))
    materialize_subsets(real_sample, lake.uri, [EXPORTED[0]], dg.DagsterInstance.ephemeral())
    # distilled re-materialized with fewer rows (a half-redone run), selection not re-run.
    location = lake.location("distilled")
    with PartitionWriter(location, DISTILLED_SCHEMA, {"subset": EXPORTED[0]}) as writer:
        for batch in read_partition(location, {"subset": EXPORTED[0]}):
            writer.write(batch.slice(0, batch.num_rows // 2))
        writer.commit()
    with pytest.raises(InputError, match=r"subset 'BMMR': quality_filtered does not account for distilled"):
        export(lake, "difficulty_filtered", [EXPORTED[0]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("question", "has_image", "turn"), [
    ("What is x?", True, "<image>What is x?"),
    ("Look: <image> What is x?", True, "Look: <image> What is x?"),
    ("<image><image>Compare", True, "<image>[image]Compare"),
    ("a <image> b", False, "a [image] b"),
])
def test_user_turn_has_one_placeholder_per_image(question, has_image, turn):
    from mmfr_assets.exports.llamafactory import user_turn

    assert user_turn(question, has_image)[0] == turn


@pytest.mark.parametrize("row_id", ["../../etc/passwd", "a/b", "a_b", "x(1).png", "..", "", "é/ü"])
def test_file_names_from_ids_stay_inside_and_are_unique(row_id):
    stem = file_stem(row_id)
    assert "/" not in stem and not stem.startswith(".") and stem
    assert set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert file_stem("a/b") != file_stem("a_b")


def test_subset_folders_keep_safe_names_and_sanitize_others():
    assert subset_folder("FineVision-geo170k(qa)") == "FineVision-geo170k(qa)"
    assert "/" not in subset_folder("../x") and subset_folder("..") != ".."


def test_mmfr_export_command(lake_and_instance, real_sample, tmp_path, monkeypatch, capsys):
    from mmfr_assets.cli import main

    lake, _ = lake_and_instance
    monkeypatch.setenv("MMFR_SOURCE", str(real_sample))
    monkeypatch.setenv("MMFR_LAKE", lake.uri)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    out = tmp_path / "lf"
    assert main(["export", str(out), "--format", "llamafactory",
                 "--subsets", ",".join(EXPORTED)]) == 0
    assert (out / "dataset_info.json").exists()
    assert main(["export", str(tmp_path / "x"), "--subsets", "WeMath2-Pro"]) == 2
    err = capsys.readouterr().err
    assert "WeMath2-Pro" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_the_586k_recipe_is_exported_side_by_side_with_the_123k(real_sample, tmp_path):
    """`difficulty_filtered_586k` (engineer `verify` adds the asset) written here the way a
    recipe asset writes it: its own table and its own rejections stage, after quality_filtered."""
    from mmfr_assets.selection import difficulty
    from mmfr_assets.stage import run_stage, upstream_batches

    lake = LakeResource(uri=str(tmp_path / "lake"))
    materialize_subsets(real_sample, lake.uri, [EXPORTED[0]], dg.DagsterInstance.ephemeral())
    run_stage(
        lake, stage="difficulty_filtered_586k", subset=EXPORTED[0],
        batches=upstream_batches(lake, "quality_filtered", EXPORTED[0], batch_size=64),
        decide=lambda batch: difficulty.select_difficulty(batch, 0.75),
        schema=DISTILLED_SCHEMA, filters=difficulty.FILTERS,
    )
    small = export(lake, "difficulty_filtered", [EXPORTED[0]], tmp_path / "123k")
    large = export(lake, "difficulty_filtered_586k", [EXPORTED[0]], tmp_path / "586k")
    expected = expected_rows(lake, "difficulty_filtered_586k", EXPORTED[0])
    assert large.counts[EXPORTED[0]] == expected.height > small.counts[EXPORTED[0]]
    loaded = datasets.load_dataset(str(tmp_path / "586k"), EXPORTED[0], split="train",
                                   cache_dir=str(tmp_path / "c")).cast_column("image", datasets.Image(decode=False))
    assert sorted(loaded["id"]) == sorted(expected["id"])
    card = (tmp_path / "586k" / "README.md").read_text()
    assert "| difficulty_filtered_586k | difficulty | difficulty_too_easy |" in card
    assert "| difficulty_filtered |" not in card  # the 123K table is not part of this lineage
