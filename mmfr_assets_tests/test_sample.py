"""Tests for the synthetic hub-layout sample (mmfr_devkit.sample).

The central check re-implements every drop rule of the pipeline here, in the
most literal way, and verifies that it assigns exactly the planned reason to
every row, so the plan's labels are tested rather than trusted.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile, ImageOps

from mmfr_devkit.sample import (
    ANSWER_TAG_EXEMPT_SUBSETS,
    REASONS,
    REPAIRS,
    SAMPLE_SUBSETS,
    expected_counts,
    expected_reasons,
    expected_repairs,
    plan_rows,
    write_sample,
)
from mmfr_devkit.sample import generate as gen_mod
from mmfr_devkit.sample import rows as rows_mod
from mmfr_devkit.sample.__main__ import main as cli_main

MAX_PIXELS = 89_478_485
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
COLUMNS = ["source", "id", "original_question", "original_answer", "image", "question", "answer",
           "qwen3vl_235b_instruct_caption", "qwen3vl_235b_thinking_response", "qwen3vl_4b_pass_rate",
           "is_consistent", "consistency_analysis"]
TRACE, CAPTION = "qwen3vl_235b_thinking_response", "qwen3vl_235b_instruct_caption"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    return write_sample(tmp_path_factory.mktemp("demo") / "sample")


@pytest.fixture(scope="module")
def sample_rows(sample_dir) -> dict[str, list[dict]]:
    return {s: pq.read_table(sorted((sample_dir / s).glob("*.parquet"))).to_pylist() for s in SAMPLE_SUBSETS}


@pytest.fixture(scope="module")
def kinds() -> dict[str, dict[int, str]]:
    return {s: {spec.id: spec.kind for spec in plan_rows(s)} for s in SAMPLE_SUBSETS}


def rows_of_kind(sample_rows, kinds, subset, kind) -> list[dict]:
    return [r for r in sample_rows[subset] if kinds[subset][r["id"]] == kind]


# --------------------------------------------------------------------------- independent rule implementation


@contextmanager
def no_pixel_limit():
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def blank(s: str | None) -> bool:
    return s is None or not s.translate(ZERO_WIDTH).strip()


def judge_image(img: dict | None) -> str | None:
    if img is None or (img.get("bytes") is None and img.get("path") is None):
        return "image_missing"
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with no_pixel_limit():
            im = Image.open(io.BytesIO(img["bytes"]))
            if im.size[0] * im.size[1] > MAX_PIXELS:
                return "image_decompression_bomb"  # validity of the bomb stream is checked separately
            im.load()
    except Exception:
        return "image_corrupt"
    return None


def answer_pairs(trace: str) -> tuple[list[tuple[str, int]], bool]:
    tags = [(m.group(), m.start()) for m in re.finditer(r"</?answer>", trace)]
    alternating = all(t == ("<answer>" if i % 2 == 0 else "</answer>") for i, (t, _) in enumerate(tags))
    return tags, alternating


def max_ngram_count(think: str, n: int = 50) -> int:
    w = think.split()
    return max(Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1)).values(), default=0)


def judge(subset: str, row: dict) -> str | None:
    """The pipeline's rules, in stage/filter order, first failing reason wins."""
    reason = judge_image(row["image"])
    if reason:
        return reason
    if blank(row["question"]):
        return "text_empty_question"
    if blank(row["answer"]) and blank(row["original_answer"]):  # a solution is a reference
        return "text_empty_answer"
    trace, caption = row[TRACE], row[CAPTION]
    if trace is not None and "[ERROR]" in trace:
        return "content_error_marker"
    if trace is None or not trace.strip():
        return "content_missing_response"
    if len(trace.split()) < 200:
        return "content_short_response"
    if caption is None or not caption.strip():
        return "content_missing_caption"
    if len(caption.split()) < 100:
        return "content_short_caption"
    if trace.count("<think>") != 1 or trace.count("</think>") != 1 or trace.index("<think>") > trace.index("</think>"):
        return "structure_think_tags"
    t0, t1 = trace.index("<think>"), trace.index("</think>")
    if subset not in ANSWER_TAG_EXEMPT_SUBSETS:
        n_open, n_close = trace.count("<answer>"), trace.count("</answer>")
        if n_open != n_close or n_open == 0:
            return "structure_answer_unbalanced"
        tags, alternating = answer_pairs(trace)
        if not alternating:
            return "structure_answer_malformed"
        pairs = [(tags[i][1], tags[i + 1][1] + len("</answer>")) for i in range(0, len(tags), 2)]
        if not any(o >= t1 + len("</think>") or c <= t0 for o, c in pairs):
            return "structure_answer_inside_think"
    if max_ngram_count(trace[t0 + len("<think>"):t1]) >= 3:
        return "repetition_ngram"
    if row["is_consistent"] is False:
        return "correctness_inconsistent"
    if row["is_consistent"] is None:
        return "correctness_unverified"
    if row["qwen3vl_4b_pass_rate"] is None:
        return "difficulty_pass_rate_missing"
    if row["qwen3vl_4b_pass_rate"] > 0.0:
        return "difficulty_too_easy"
    return None


# --------------------------------------------------------------------------- layout and schema


def test_readme_configs(sample_dir):
    text = (sample_dir / "README.md").read_text()
    front = text.split("---")[1]
    for s in SAMPLE_SUBSETS:
        assert f'- config_name: "{s}"' in front
        assert f'path: "{s}/train-*.parquet"' in front
        assert [p.name for p in (sample_dir / s).iterdir()] == ["train-00000-of-00001.parquet"]
    assert sorted(p.name for p in sample_dir.iterdir()) == sorted([*SAMPLE_SUBSETS, "README.md"])


def test_parquet_schema_matches_hub(sample_dir):
    want = pa.schema([
        ("source", pa.string()), ("id", pa.int64()), ("original_question", pa.string()),
        ("original_answer", pa.string()), ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("question", pa.string()), ("answer", pa.string()), ("qwen3vl_235b_instruct_caption", pa.string()),
        ("qwen3vl_235b_thinking_response", pa.string()), ("qwen3vl_4b_pass_rate", pa.float64()),
        ("is_consistent", pa.bool_()), ("consistency_analysis", pa.string()),
    ])
    for s in SAMPLE_SUBSETS:
        f = pq.ParquetFile(sample_dir / s / "train-00000-of-00001.parquet")
        schema = f.schema_arrow
        assert schema.remove_metadata().equals(want), schema
        hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert list(hf) == COLUMNS
        assert hf["image"] == {"_type": "Image"}
        assert hf["qwen3vl_4b_pass_rate"] == {"dtype": "float64", "_type": "Value"}
        rg = f.metadata.row_group(0)
        comp = {rg.column(i).path_in_schema: rg.column(i).compression for i in range(rg.num_columns)}
        assert comp["image.bytes"] == "UNCOMPRESSED" and comp["question"] == "SNAPPY"  # as datasets writes it


@pytest.mark.parametrize("subset", SAMPLE_SUBSETS)
def test_load_dataset_streaming_and_not(sample_dir, tmp_path, subset):
    streamed = datasets.load_dataset(str(sample_dir), subset, split="train", streaming=True)
    assert isinstance(streamed.features["image"], datasets.Image)
    assert list(streamed.features) == COLUMNS
    ids = [r["id"] for r in streamed.decode(False)]
    ds = datasets.load_dataset(str(sample_dir), subset, split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert len(ds) == len(ids) == 40
    assert ds["id"] == ids and len(set(ids)) == len(ids)
    assert set(ids) == set(expected_reasons(subset))
    assert set(ds["source"]) == {subset}
    # decoding a clean row yields a PIL image
    clean = next(i for i, r in enumerate(ids) if expected_reasons(subset)[r] is None
                 and not expected_repairs(subset).get(r))
    assert ds[clean]["image"].mode == "RGB"


def test_deterministic(sample_dir, tmp_path):
    again = write_sample(tmp_path / "again")
    a = sorted(p.relative_to(sample_dir) for p in sample_dir.rglob("*") if p.is_file())
    b = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        assert (sample_dir / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = write_sample(tmp_path / "seed1", seed=1, subsets=["WeMath2-Pro"])
    assert (other / "WeMath2-Pro/train-00000-of-00001.parquet").read_bytes() != \
        (sample_dir / "WeMath2-Pro/train-00000-of-00001.parquet").read_bytes()


def test_sample_is_small(sample_dir):
    total = sum(p.stat().st_size for p in sample_dir.rglob("*") if p.is_file())
    assert total < 8_000_000, total


# --------------------------------------------------------------------------- the plan is right


@pytest.mark.parametrize("subset", SAMPLE_SUBSETS)
def test_rules_agree_with_plan(sample_rows, subset):
    expected = expected_reasons(subset)
    got = {r["id"]: judge(subset, r) for r in sample_rows[subset]}
    assert got == expected


@pytest.mark.parametrize("subset", SAMPLE_SUBSETS)
def test_every_reason_present_once_and_survivors(subset):
    counts = expected_counts(subset)
    applicable = [r for r in REASONS if subset not in ANSWER_TAG_EXEMPT_SUBSETS or not r.startswith("structure_answer")]
    for reason in applicable:
        assert counts[reason] >= 1, reason
    assert all(counts[r] == 1 for r in applicable if r != "difficulty_too_easy")
    assert counts[None] >= 3 + len(REPAIRS)
    assert sorted(expected_repairs(subset).values()) == sorted(REPAIRS)
    assert all(expected_reasons(subset)[i] is None for i in expected_repairs(subset))


def test_pass_rates_and_judgments(sample_rows, kinds):
    for s, rows in sample_rows.items():
        for r in rows:
            assert r["qwen3vl_4b_pass_rate"] in (None, 0.0, 0.25, 0.5, 0.75, 1.0)
            ca = r["consistency_analysis"]
            if r["is_consistent"] is True:
                assert ca.rstrip().endswith("JUDGMENT: EQUIVALENT")
            elif r["is_consistent"] is False:
                assert ca.rstrip().endswith("JUDGMENT: NOT EQUIVALENT")
        clean = [r for r in rows if kinds[s][r["id"]] == "clean"]
        assert len(clean) >= 3 and all(r["qwen3vl_4b_pass_rate"] == 0.0 for r in clean)


# --------------------------------------------------------------------------- images


def _open(row) -> Image.Image:
    return Image.open(io.BytesIO(row["image"]["bytes"]))


@pytest.mark.parametrize("subset", SAMPLE_SUBSETS)
def test_repair_images(sample_rows, kinds, subset):
    by_kind = {k: rows_of_kind(sample_rows, kinds, subset, f"repair:{k}") for k in REPAIRS}
    assert all(len(v) == 1 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    im = {k: _open(v[0]) for k, v in by_kind.items()}
    assert (im["resize_jpeg"].format, im["resize_jpeg"].size) == ("JPEG", (4000, 3000))
    assert (im["resize_png"].format, im["resize_png"].size) == ("PNG", (1500, 4000))
    assert im["mode_p"].mode == "P" and "transparency" not in im["mode_p"].info
    assert im["mode_p_transparency"].mode == "P" and "transparency" in im["mode_p_transparency"].info
    assert im["mode_rgba"].mode == "RGBA" and im["mode_rgba"].getextrema()[3][0] == 0  # really transparent
    assert im["mode_la"].mode == "LA"
    assert im["mode_l"].mode == "L"
    assert (im["mode_cmyk"].format, im["mode_cmyk"].mode) == ("JPEG", "CMYK")
    for k, tag in (("exif_rotate_6", 6), ("exif_rotate_8", 8)):
        stored = im[k]
        assert stored.format == "JPEG" and stored.getexif().get(0x0112) == tag
        upright = ImageOps.exif_transpose(stored)
        assert upright.size == stored.size[::-1] and upright.size[0] > upright.size[1]
    for v in im.values():
        v.load()  # all decodable


@pytest.mark.parametrize("subset", SAMPLE_SUBSETS)
def test_broken_images(sample_rows, kinds, subset):
    (missing,) = rows_of_kind(sample_rows, kinds, subset, "image_missing")
    assert missing["image"] is None
    (corrupt,) = rows_of_kind(sample_rows, kinds, subset, "image_corrupt")
    with pytest.raises(Exception):
        Image.open(io.BytesIO(corrupt["image"]["bytes"])).load()
    (bomb,) = rows_of_kind(sample_rows, kinds, subset, "image_decompression_bomb")
    data = bomb["image"]["bytes"]
    assert len(data) < 40_000
    width, height = struct.unpack(">II", data[16:24])
    assert width * height > MAX_PIXELS
    with no_pixel_limit():
        assert Image.open(io.BytesIO(data)).size == (width, height)
    # the IDAT stream is complete: it inflates to exactly one filter byte + packed row per line
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    d, total, pending = zlib.decompressobj(), 0, idat
    while pending:  # bounded output per call: never materialise the whole raster
        total += len(d.decompress(pending, 1 << 20))
        pending = d.unconsumed_tail
    assert d.eof and total == height * (1 + math.ceil(width / 8))


def test_normal_images_are_small_pictures(sample_rows, kinds):
    n = 0
    for s, rows in sample_rows.items():
        for r in rows:
            k = kinds[s][r["id"]]
            if k.startswith("repair:") or k.startswith("image_"):
                continue
            im = _open(r)
            assert im.format in ("JPEG", "PNG") and im.mode == "RGB"
            assert 300 <= max(im.size) <= 800
            assert len(im.getcolors(1 << 20) or range(300)) > 2  # something is drawn
            n += 1
    assert n > 100


# --------------------------------------------------------------------------- text


def test_normalisation_cases(sample_rows, kinds):
    for s in SAMPLE_SUBSETS:
        (crlf,) = rows_of_kind(sample_rows, kinds, s, "normalize:crlf_trailing_spaces")
        assert "\r\n" in crlf["question"] and re.search(r" +\r\n", crlf["question"])
        (zw,) = rows_of_kind(sample_rows, kinds, s, "normalize:zero_width_bom")
        assert zw["question"].startswith("\ufeff") and "\u200b" in zw["question"]
        (bl,) = rows_of_kind(sample_rows, kinds, s, "normalize:blank_lines")
        assert "\n\n\n\n\n" in bl["question"]
        (eq,) = rows_of_kind(sample_rows, kinds, s, "text_empty_question")
        assert eq["question"].translate(ZERO_WIDTH).strip() == "" and eq["answer"].strip()


def test_boundary_rows(sample_rows, kinds):
    for s in SAMPLE_SUBSETS:
        (t200,) = rows_of_kind(sample_rows, kinds, s, "edge:trace_200_words")
        assert len(t200[TRACE].split()) == 200
        (c100,) = rows_of_kind(sample_rows, kinds, s, "edge:caption_100_words")
        assert len(c100[CAPTION].split()) == 100
        (twice,) = rows_of_kind(sample_rows, kinds, s, "edge:paragraph_twice")
        tr = twice[TRACE]
        assert max_ngram_count(tr[tr.index("<think>") + 7:tr.index("</think>")]) == 2
    (no_tags,) = rows_of_kind(sample_rows, kinds, "LLaVA-CoT", "edge:no_answer_tags")
    assert "<answer>" not in no_tags[TRACE] and "</answer>" not in no_tags[TRACE]


def test_text_realism(sample_rows, kinds):
    traces = []
    for s, rows in sample_rows.items():
        for r in rows:
            k = kinds[s][r["id"]]
            if not blank(r["question"]):
                assert "<image>" in r["question"]
            if k == "clean" or k.startswith("repair:") or k.startswith("normalize:"):
                tr, cap = r[TRACE], r[CAPTION]
                assert 250 <= len(tr.split()) <= 700, len(tr.split())
                assert 110 <= len(cap.split()) <= 300, len(cap.split())
                after = tr[tr.index("</think>"):]
                if s not in ANSWER_TAG_EXEMPT_SUBSETS:
                    assert re.search(r"the final answer is <answer>[^<]+</answer>\.$", after)
                assert max_ngram_count(tr[tr.index("<think>") + 7:tr.index("</think>")], 30) == 1  # far from 50 x3
            if r[TRACE]:
                traces.append(r[TRACE])
    assert len(set(traces)) == len(traces)
    bmmr = [r["original_question"] for r in sample_rows["BMMR"]]
    assert any(re.search(r"[\u4e00-\u9fff]", q) for q in bmmr)
    assert any(re.search(r"  |\t| \n", q) for q in bmmr)


# --------------------------------------------------------------------------- scale, atomicity, CLI


def test_multi_shard_run(tmp_path):
    out = write_sample(tmp_path / "big", subsets=["BMMR"], rows_per_subset=500, shard_rows=150, chunk_rows=64,
                       fault_rate=0.1, image_size=320)
    files = sorted((out / "BMMR").iterdir())
    assert [f.name for f in files] == [f"train-{k:05d}-of-00004.parquet" for k in range(4)]
    metas = [pq.ParquetFile(f).metadata for f in files]
    assert [m.num_rows for m in metas] == [150, 150, 150, 50]
    assert metas[0].num_row_groups == 3  # written in chunks, not in one go
    streamed = datasets.load_dataset(str(out), "BMMR", split="train", streaming=True).decode(False)
    rows = list(streamed)
    assert len(rows) == 500 and len({r["id"] for r in rows}) == 500
    expected = expected_reasons("BMMR", rows_per_subset=500, fault_rate=0.1)
    assert {r["id"]: judge("BMMR", r) for r in rows} == expected
    counts = Counter(expected.values())
    assert counts[None] > 100 and counts["difficulty_too_easy"] > 100


def test_other_subsets_follow_their_rules(tmp_path):
    """Any hub subset name works; answer-tag exemptions follow the subset, not the demo list."""
    subsets = ["FineVision-ai2d_merged", "MMR1"]
    out = write_sample(tmp_path / "other", subsets=subsets)
    for s in subsets:
        rows = pq.read_table(out / s / "train-00000-of-00001.parquet").to_pylist()
        assert {r["id"]: judge(s, r) for r in rows} == expected_reasons(s)
    assert "structure_answer_unbalanced" not in expected_counts("FineVision-ai2d_merged")
    assert expected_counts("MMR1")["structure_answer_unbalanced"] == 1


def test_atomic_and_safe_replace(tmp_path, monkeypatch):
    out = tmp_path / "s"
    write_sample(out, subsets=["WeMath2-Pro"], rows_per_subset=3)
    write_sample(out, subsets=["LLaVA-CoT"], rows_per_subset=2)  # replaces a previous sample wholesale
    assert sorted(p.name for p in out.iterdir()) == ["LLaVA-CoT", "README.md"]
    with pytest.raises(FileExistsError):
        write_sample(out, rows_per_subset=1, overwrite=False)

    foreign = tmp_path / "not_a_sample"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_sample(foreign, rows_per_subset=1)
    assert (foreign / "notes.txt").read_text() == "keep me"

    calls = {"n": 0}
    real = rows_mod.build_row

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("boom")
        return real(*a, **kw)

    monkeypatch.setattr(gen_mod, "build_row", flaky)
    with pytest.raises(RuntimeError):
        write_sample(tmp_path / "half", rows_per_subset=10)
    with pytest.raises(RuntimeError):
        write_sample(out, rows_per_subset=10)
    assert not (tmp_path / "half").exists()
    assert sorted(p.name for p in out.iterdir()) == ["LLaVA-CoT", "README.md"]  # old sample untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_sample", "s"]  # no temp dirs left behind


def test_cli(tmp_path, capsys):
    assert cli_main([str(tmp_path / "cli"), "--rows", "12", "--subsets", "FineVision-geo170k(qa),LLaVA-CoT"]) == 0
    out = capsys.readouterr().out
    assert "FineVision-geo170k(qa)/train-00000-of-00001.parquet\t12 rows" in out
    assert "wrote 24 rows in 2 files" in out
