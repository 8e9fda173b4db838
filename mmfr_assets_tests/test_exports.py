"""Training exports round-tripped: hub layout read back with `datasets.load_dataset`, the
LLaMA-Factory layout read back as its data/README.md documents it; rows and image bytes compared
with the lake. Also: atomicity, stale subsets, refused subsets, sanitized file names, the CLI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dagster as dg
import datasets
import polars as pl
import pyarrow.json as pa_json
import pytest

from mmfr_assets.distillation.annotations import DISTILLED_SCHEMA
from mmfr_assets.errors import InputError
from mmfr_assets.exports.export import TrainingFormat, export
from mmfr_assets.files import file_stem, subset_folder
from mmfr_assets.exports.thinking import normalize_thinking
from mmfr_assets.exports.turns import DEFAULT_SYSTEM_PROMPT, question_without_images
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
            # The derived columns: the question without placeholders, the trace in qwen3 markers.
            assert "<image>" not in row["question_plain"]
            assert row["question_plain"] == question_without_images(want["question"])
            assert row["response_normalized"] == normalize_thinking(want["response"], "qwen3")[0]
            assert row["response_normalized"].startswith("<think>\n")
            assert "\n</think>\n\n" in row["response_normalized"]
    assert any("<image>" in q for s in EXPORTED
               for q in expected_rows(lake, "difficulty_filtered", s)["question"])  # a real case


def test_hub_card_has_a_default_config_and_dataset_info(lake_and_instance, tmp_path):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    lake, instance = lake_and_instance
    out = tmp_path / "hub"
    result = export(lake, "difficulty_filtered", list(EXPORTED), out, instance=instance)
    total = sum(result.counts.values())
    cache = str(tmp_path / "c")
    everything = datasets.load_dataset(str(out), split="train", cache_dir=cache)
    assert everything.num_rows == total
    assert isinstance(everything.features["image"], datasets.Image)
    assert datasets.load_dataset(str(out), "all", split="train", cache_dir=cache).num_rows == total
    assert sorted(set(everything["subset"])) == sorted(s for s, n in result.counts.items() if n)
    card = DatasetCard.load(out / "README.md")
    data = card.data
    assert data.license == "other" and data["license_name"] == "research-only"
    assert data.pretty_name == "MMFineReason-123K (mmfr-assets)"
    assert data.task_categories and data.size_categories == ["n<1K"]
    infos = DatasetInfosDict.from_dataset_card_data(data)
    assert infos["all"].splits["train"].num_examples == total
    for subset, rows in result.counts.items():
        if rows:
            split = infos[subset].splits["train"]
            assert split.num_examples == rows and split.num_bytes > 0
            assert isinstance(infos[subset].features["image"], datasets.Image)
    assert "from datasets import load_dataset" in card.text and "dataset: mmfr_123k" in card.text


#: The 123K recipe's lineage, source first: the tables its card reads and counts.
LINEAGE_123K = ("collected", "cleaned", "deduplicated", "distilled", "quality_filtered", "difficulty_filtered")


def card_tables(card: str, header: str) -> list[tuple[str, ...]]:
    """The rows of the card's markdown table whose header row is `header` (cells stripped)."""
    lines = card.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip() for cell in line.strip().strip("|").split("|")))
    return rows


def test_dataset_card_lists_the_recipe(lake_and_instance, tmp_path):
    """The card's versions, row counts, origins and funnel equal what the lake's tables hold,
    read here with deltalake and polars (not from the export's own result)."""
    from deltalake import DeltaTable

    lake, instance = lake_and_instance
    out = tmp_path / "hub"
    export(lake, "difficulty_filtered", list(EXPORTED), out, instance=instance)
    card = (out / "README.md").read_text()
    table = {name: pl.read_delta(f"{lake.uri}/{name}") for name in (*LINEAGE_123K, "rejections")}

    # Delta versions of every table it was read from: the tables' latest commits.
    versions = {name: str(DeltaTable(f"{lake.uri}/{name}").version()) for name in (*LINEAGE_123K, "rejections")}
    assert dict(card_tables(card, "| table | Delta version |")) == versions

    final = table["difficulty_filtered"]
    assert dict(card_tables(card, "| subset | rows |")) == {
        s: str(final.filter(pl.col("subset") == s).height) for s in EXPORTED}

    # Where each exported row's caption and trace came from, counted from the table's columns.
    origins = {(s, f"{kind}: {value}", str(n))
               for kind in ("caption", "response")
               for s, value, n in final.group_by("subset", f"{kind}_origin").len().iter_rows()}
    assert set(card_tables(card, "| subset | origin | rows |")) == origins

    # The funnel: rows each stage's table holds, and rows dropped per filter and reason.
    kept = {(s, stage, "", "(rows kept)", str(table[stage].filter(pl.col("subset") == s).height))
            for s in EXPORTED for stage in LINEAGE_123K}
    dropped = {(s, stage, f, reason, str(n)) for stage, s, f, reason, n in table["rejections"]
               .filter(pl.col("subset").is_in(EXPORTED) & pl.col("stage").is_in(LINEAGE_123K))
               .group_by("stage", "subset", "filter", "reason").len().iter_rows()}
    assert dropped, "the real rows trip at least one filter"
    assert set(card_tables(card, "| subset | stage | filter | reason | rows |")) == kept | dropped

    # Thresholds recorded by the materializations, and the teachers' prompts and models (none
    # configured here: the card says so).
    assert "min_response_words" in card and "max_pass_rate" in card
    assert re.search(r"\| teacher_responses \| prompt_version \| cot_teacher@[0-9a-f]+ \| all \|", card), card
    assert "| teacher_captions | model | none: no caption_teacher endpoint configured | all |" in card
    assert "llm_prompt_tokens" not in card
    # what each kept row cost: here every annotation came with the source (no endpoint)
    assert "## What each kept row cost" in card and "nothing was spent on models" in card


def lf_records(out: Path, entry: dict) -> list[dict]:
    """The records of a dataset_info entry, read the way LLaMA-Factory's loader reads them:
    every file of the `file_name` folder, one type (`.jsonl`: json), with `datasets`' JSON
    builder; each shard is also read by pyarrow's JSON reader (JSON Lines, not an array)."""
    folder = out / entry["file_name"]
    assert folder.is_dir()
    files = sorted(str(folder / name) for name in os.listdir(folder))
    assert files and all(f.endswith(".jsonl") for f in files)
    for file in files:
        pa_json.read_json(file)
    loaded = datasets.load_dataset("json", data_files=files, split="train",
                                   cache_dir=str(out.parent / "json-cache"))
    return loaded.to_list()


def test_llamafactory_export_matches_its_documented_schema(lake_and_instance, tmp_path):
    lake, _ = lake_and_instance
    out = tmp_path / "lf"
    result = export(lake, "difficulty_filtered", list(EXPORTED), out, fmt="llamafactory")
    info = json.loads((out / "dataset_info.json").read_text())
    # The recipe's name, and the earlier table name kept for the same files.
    assert set(info) == {"mmfr_123k", "mmfr_difficulty_filtered"} and result.datasets[0] == "mmfr_123k"
    entry = info["mmfr_123k"]
    assert info["mmfr_difficulty_filtered"] == entry
    assert entry["file_name"] == "mmfr_123k"
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "images": "images", "system": "system"}
    assert entry["tags"] == {"role_tag": "role", "content_tag": "content",
                             "user_tag": "user", "assistant_tag": "assistant"}
    records = lf_records(out, entry)
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
        # qwen3 thinking markers (LLaMA-Factory's ReasoningTemplate thought_words), answer kept.
        thought = want["response"].split("<think>", 1)[1].split("</think>", 1)[0].strip()
        assert assistant["content"].startswith("<think>\n" + thought + "\n</think>\n\n")
        assert assistant["content"].rstrip(". \n").endswith("</answer>") == \
            want["response"].rstrip(". \n").endswith("</answer>")
        assert record["system"] == DEFAULT_SYSTEM_PROMPT
        image = out / record["images"][0]
        assert image.resolve().is_relative_to(out.resolve())
        assert image.read_bytes() == want["image"]
    assert not expected
    readme = (out / "README.md").read_text()
    assert "dataset: mmfr_123k" in readme and "pass rate = 0 over 4 student samples" in readme


def test_llamafactory_json_lines_are_sharded(lake_and_instance, tmp_path):
    lake, _ = lake_and_instance
    out = tmp_path / "lf"
    result = export(lake, "quality_filtered", list(EXPORTED), out, fmt="llamafactory",
                    shard_bytes=4_000, training=TrainingFormat(think_format="raw", system_prompt=""))
    entry = json.loads((out / "dataset_info.json").read_text())["mmfr_quality_filtered"]
    assert "system" not in entry["columns"]
    shards = sorted((out / entry["file_name"]).iterdir())
    assert len(shards) > 1
    assert all(p.stat().st_size <= 4_000 or len(p.read_text().splitlines()) == 1 for p in shards)
    records = lf_records(out, entry)
    assert len(records) == sum(result.counts.values())
    assert len({(r["subset"], r["id"]) for r in records}) == len(records)
    by_id = {(s, r["id"]): r for s in EXPORTED
             for r in expected_rows(lake, "quality_filtered", s).iter_rows(named=True)}
    assert all(r["messages"][1]["content"] == by_id[(r["subset"], r["id"])]["response"] for r in records)


def test_llamafactory_exports_combine_in_one_folder(lake_and_instance, tmp_path):
    lake, instance = lake_and_instance
    out = tmp_path / "lf"
    small = export(lake, "difficulty_filtered", list(EXPORTED), out, fmt="llamafactory", instance=instance)
    images_before = sorted((out / "images").rglob("*"))
    large = export(lake, "difficulty_filtered_586k", list(EXPORTED), out, fmt="llamafactory",
                   instance=instance)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"mmfr_123k", "mmfr_difficulty_filtered", "mmfr_586k",
                         "mmfr_difficulty_filtered_586k"}
    assert len(lf_records(out, info["mmfr_123k"])) == sum(small.counts.values())
    records = lf_records(out, info["mmfr_586k"])
    assert len(records) == sum(large.counts.values()) > sum(small.counts.values())
    assert all((out / r["images"][0]).is_file() for r in records)
    assert set(images_before) <= set((out / "images").rglob("*"))  # shared, none lost
    readme = (out / "README.md").read_text()
    assert "pass rate = 0 over 4 student samples" in readme and "pass rate < 1 over 4" in readme
    # Re-exporting one dataset replaces only its own files.
    export(lake, "difficulty_filtered", [EXPORTED[0]], out, fmt="llamafactory")
    info = json.loads((out / "dataset_info.json").read_text())
    assert len(info) == 4
    assert {r["subset"] for r in lf_records(out, info["mmfr_123k"])} <= {EXPORTED[0]}
    assert len(lf_records(out, info["mmfr_586k"])) == sum(large.counts.values())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


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
    assert main(["export", str(out), "--format", "llamafactory", "--think-format", "raw",
                 "--no-system-prompt", "--subsets", ",".join(EXPORTED)]) == 0
    entry = json.loads((out / "dataset_info.json").read_text())["mmfr_123k"]
    assert "system" not in entry["columns"]
    assert "dataset=mmfr_123k" in capsys.readouterr().out
    assert "`raw`" in (out / "cards" / "mmfr_123k.md").read_text()
    monkeypatch.chdir(tmp_path)  # the default folder names the recipe and the layout
    assert main(["export", "--asset", "difficulty_filtered_586k", "--subsets", EXPORTED[0]]) == 0
    assert datasets.load_dataset(str(tmp_path / "exports" / "mmfr_586k-hub"), split="train",
                                 cache_dir=str(tmp_path / "c")).num_rows > 0
    assert main(["export", str(out), "--shard-mb", "0"]) == 2
    assert "--shard-mb" in capsys.readouterr().err
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


def test_the_586k_card_shows_its_real_rule(lake_and_instance, tmp_path):
    lake, instance = lake_and_instance
    out = tmp_path / "hub"
    result = export(lake, "difficulty_filtered_586k", list(EXPORTED), out, instance=instance)
    assert result.name.dataset == "mmfr_586k" and result.name.recorded
    card = (out / "README.md").read_text()
    assert "# MMFineReason-586K (mmfr-assets)" in card
    assert "keep the rows with pass rate < 1 over 4 student samples** (max_pass_rate 1.0, exclusive" in card
    assert "| difficulty_filtered_586k | inclusive | False | all |" in card
    assert "| difficulty_filtered_586k | recipe | pass rate < 1 | all |" in card
    # Without the instance the rule is the config default, and the card says so.
    export(lake, "difficulty_filtered", [EXPORTED[0]], out)
    card = (out / "README.md").read_text()
    assert "pass rate = 0 over 4 student samples** (max_pass_rate 0.0, inclusive; the asset's config default" in card


TRACE = "<think>First, the angle.\nThen the side.</think>\n\nSo the answer is <answer>C</answer>."


@pytest.mark.parametrize(("think_format", "expected"), [
    ("qwen3", "<think>\nFirst, the angle.\nThen the side.\n</think>\n\nSo the answer is <answer>C</answer>."),
    ("plain", "<think>First, the angle.\nThen the side.</think>So the answer is <answer>C</answer>."),
    ("kimi", "◁think▷First, the angle.\nThen the side.◁/think▷So the answer is <answer>C</answer>."),
    ("gemma4", "<|channel>thought\nFirst, the angle.\nThen the side.<channel|>So the answer is <answer>C</answer>."),
    ("raw", TRACE),
])
def test_think_markers_follow_the_template(think_format, expected):
    """The markers are LLaMA-Factory's `thought_words` of the templates named in thinking.py:
    its `remove_thought` regex (open + .*? + close) must find the whole thought."""
    from mmfr_assets.exports.thinking import THINK_FORMATS

    text, had_block = normalize_thinking(TRACE, think_format)
    assert (text, had_block) == (expected, True)
    markers = THINK_FORMATS[think_format]
    if markers is not None:
        pattern = re.compile(f"{re.escape(markers[0])}(.*?){re.escape(markers[1])}", re.DOTALL)
        assert re.sub(pattern, "", text).lstrip("\n") == "So the answer is <answer>C</answer>."
    # Already normalized traces stay as they are; traces without a closed block are untouched.
    assert normalize_thinking(text, think_format)[0] == text or think_format == "raw"
    assert normalize_thinking("no block <answer>1</answer>", think_format) == ("no block <answer>1</answer>", False)


def test_sharegpt_record_options():
    from mmfr_assets.exports.llamafactory import sharegpt_record

    row = {"subset": "S", "id": "1", "question": "What is x?", "answer": None,
           "caption": "A triangle with sides 3, 4, 5.", "response": TRACE}
    record, notes = sharegpt_record(row, "images/S/1.png")
    assert record["system"] == DEFAULT_SYSTEM_PROMPT and "<answer>" in DEFAULT_SYSTEM_PROMPT
    assert record["messages"][0]["content"] == "<image>What is x?"
    assert record["answer"] == "" and not any(notes.values())
    fmt = TrainingFormat(system_prompt="", caption_context=True, think_format="raw")
    record, notes = sharegpt_record(row, "images/S/1.png", fmt)
    assert "system" not in record
    assert record["messages"][0]["content"] == (
        "<image>Image description:\nA triangle with sides 3, 4, 5.\n\nWhat is x?")
    assert record["messages"][1]["content"] == TRACE
    record, notes = sharegpt_record({**row, "caption": None}, None, fmt)
    assert notes["rows without a caption to add"] == 1 and record["images"] == []


@pytest.mark.parametrize(("question", "plain"), [
    ("<image>What is x?", "What is x?"),
    ("Look: <image> What is x?", "Look: What is x?"),
    ("Figure:\n<image>\nFind y.", "Figure:\nFind y."),
    ("No image here.", "No image here."),
])
def test_question_without_images(question, plain):
    assert question_without_images(question) == plain


def test_image_files_are_named_by_content_and_written_once(tmp_path):
    from mmfr_assets.files import ParallelFiles, content_name

    files = ParallelFiles(workers=2, max_pending=1)
    try:
        for data in (b"a", b"b", b"a"):
            files.write(tmp_path / content_name(data, "png"), data)
        files.flush()
        assert files.written == 2
        assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == [b"a", b"b"]
        files.write(tmp_path / "missing" / "x.png", b"c")
        with pytest.raises(FileNotFoundError):
            files.flush()
    finally:
        files.close()


def test_recipe_names_and_rules():
    from mmfr_assets.exports.dataset_names import export_name

    records = {"difficulty_filtered": {"A": {"max_pass_rate": "0.5", "inclusive": "False"}},
               "student_rollouts": {"A": {"num_samples": "8"}}}
    name = export_name("difficulty_filtered", records)
    assert (name.dataset, name.aliases, name.recorded) == ("mmfr_123k", ("mmfr_difficulty_filtered",), True)
    assert name.rule == "pass rate < 0.5 over 8 student samples"
    assert name.paper_rule == "pass rate = 0"
    default = export_name("difficulty_filtered_586k", {})
    assert (default.rule, default.recorded, default.paper_rule) == (
        "pass rate < 1 over 4 student samples", False, None)
    assert default.bound == "max_pass_rate 1.0, exclusive"
    other = export_name("quality_filtered", {})
    assert (other.dataset, other.aliases, other.rule) == ("mmfr_quality_filtered", (), None)


def test_the_card_names_quality_thresholds_other_than_the_papers():
    """The paper's thresholds are the `quality_thresholds` resource's defaults: recorded ones
    equal to them say nothing, others are named with the paper's value beside them."""
    from mmfr_assets.exports.dataset_names import thresholds_note
    from mmfr_assets.rules.config import QualityThresholds

    def recorded(**changed):
        return {"quality_filtered": {s: {"thresholds": json.dumps(QualityThresholds(**changed).applied())}
                                     for s in ("A", "B")}}

    assert thresholds_note({}) is None and thresholds_note(recorded()) is None
    assert thresholds_note(recorded(min_response_words=300, max_ngram_occurrences=3)) == (
        "Quality thresholds differ from the paper's: `min_response_words` 300 (paper: 200), "
        "`ngram_min_count` 4 (paper: 3).")


def test_llamafactory_reads_the_export_with_its_own_code(lake_and_instance, tmp_path):
    """LLaMA-Factory's parser, converter, <image> check and thought regex over the export
    (`llamafactory_check.py`); only where LLaMA-Factory is installed (it pulls torch)."""
    pytest.importorskip("llamafactory", reason="LLaMA-Factory is not installed: make check-llamafactory")
    from mmfr_assets_tests.llamafactory_check import check

    lake, _ = lake_and_instance
    out = tmp_path / "lf"
    result = export(lake, "quality_filtered", list(EXPORTED), out, fmt="llamafactory")
    assert check(str(out), "mmfr_quality_filtered", "qwen3_vl") == (sum(result.counts.values()), [])
    raw = tmp_path / "raw"
    export(lake, "quality_filtered", list(EXPORTED), raw, fmt="llamafactory",
           training=TrainingFormat(think_format="raw"))
    assert "does not recognise the think block" in check(str(raw), "mmfr_quality_filtered", "qwen3_vl")[1][0]
    # qwen3 is text-only: LLaMA-Factory refuses image rows with it at train time, and so does the check
    assert "does not support image input" in check(str(out), "mmfr_quality_filtered", "qwen3")[1][0]


@pytest.mark.parametrize("think_format", ["qwen3", "plain", "kimi", "gemma4", "raw"])
def test_the_card_recommends_a_template_that_takes_images(think_format):
    """LLaMA-Factory's text-only templates (qwen3, glm4_7, mimo_v2: no multimodal plugin in its
    data/template.py) refuse every image row; the card names none of them, and says when no
    template with images fits the markers."""
    from mmfr_assets.exports.card import _usage
    from mmfr_assets.exports.dataset_names import export_name

    lines = "\n".join(_usage("llamafactory", "OUT", export_name("quality_filtered", {}), ["d"], ["A"], think_format))
    named = re.findall(r"template: (\w+)|also ([\w, ]+)", lines)
    templates = {t.strip() for pair in named for part in pair for t in part.split(",") if t.strip()}
    assert not templates & {"qwen3", "glm4_7", "mimo_v2"}, lines
    assert templates or "no LLaMA-Factory template takes images" in lines


def test_the_card_counts_and_names_only_subsets_with_rows():
    """A subset selected but without rows gets no config: the usage example names one that has
    rows, and the header counts only those (and says how many are empty)."""
    from mmfr_assets.exports.card import dataset_card

    card = dataset_card(asset="quality_filtered", lake_uri="lake", fmt="hub", counts={"AAA-empty": 0, "BMMR": 3},
                        versions={}, recipe={}, origins={}, funnel=[])
    assert "3 rows in 1 subsets with their images" in card
    assert "(1 more subsets selected have no rows here: no config is written for them)" in card
    assert 'load_dataset("OUT", "BMMR", split="train")' in card and '"AAA-empty"' not in card
