"""Smoke test of the benchmarks (`make bench`, `python -m bench`): the quick bench functions on
tiny data. Nothing is timed here; it checks that the parallel generator writes exactly the rows
of `write_sample`, that the baseline (the published `datasets.filter` way) and ours keep the
same rows of a materialized partition, and that the image benchmark's outputs agree."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from bench import images, quality
from bench.data import SourceSpec, write_source
from mmfr_assets.definitions import build_definitions
from mmfr_devkit.sample import write_sample

SUBSET = "bmmr-smoke"


def _rows(folder) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])


@pytest.mark.process
def test_quick_bench_functions(tmp_path):
    spec = SourceSpec(subsets={SUBSET: 90}, trace_words=400, image_size=128, shard_rows=40)
    source = write_source(tmp_path / "source", spec, workers=2, log=lambda *_: None)
    reference = write_sample(
        tmp_path / "reference", subsets=[SUBSET], rows_per_subset=90, trace_words=400,
        fault_rate=spec.fault_rate, image_size=128,
    )
    assert _rows(source / SUBSET).equals(_rows(reference / SUBSET))

    lake = str(tmp_path / "lake")
    job = build_definitions(str(source), lake, {}).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(partition_key=SUBSET, instance=dg.DagsterInstance.ephemeral(),
                                    asset_selection=[k for k in job.asset_layer.executable_asset_keys
                                                     if k.path[-1] != "report"])
    assert result.success

    ours = quality.ours(lake, SUBSET)
    assert quality.plan_mismatches(ours, SUBSET, spec.plan_kwargs(SUBSET)) == []
    exported = tmp_path / "baseline_input.parquet"
    assert quality.export_rows(lake, SUBSET, exported) == ours.rows > 0
    baseline = quality.baseline(exported, tmp_path / "hf_cache", num_proc=1)
    assert baseline.rows == ours.rows
    assert baseline.kept == ours.kept and 0 < len(ours.kept) < ours.rows

    photos = [images.photo(900, 600, seed=0), images.photo(2600, 1200, seed=1)]
    scenario = images.run_scenario("smoke", photos, workers=2)
    assert scenario.sizes_equal and scenario.min_psnr >= 30


@pytest.mark.process
def test_model_step_bench_on_tiny_partitions(tmp_path):
    """`bench/model_step.py` end to end on tiny partitions: the bare client and the asset (a
    `dagster asset materialize` subprocess) send the same prompts, every row gets a generated
    trace, and both memory runs are measured. No timing is asserted."""
    from bench import model_step
    from mmfr_assets.lake.delta import DeltaLocation, read_partition

    case = model_step.Case("lognormal", concurrency=4, rows=12)
    result = model_step.run(tmp_path, cases=[case], repeats=1, memory_rows=6, log=lambda *_: None)
    (measured,) = result.cases
    assert measured.bare[0].completed == measured.asset[0].completed == 12
    assert measured.bare[0].prompts == measured.asset[0].prompts and len(measured.asset[0].prompts) == 12
    assert measured.asset[0].seconds > 0 and measured.bare[0].seconds > 0
    assert [m.rows for m in result.memory] == [6, 24]
    assert all(m.served.completed == m.rows and m.run.max_rss_mb for m in result.memory)

    lake = tmp_path / "lake"
    for rows in (12, 24):
        subset = model_step.partition_name(rows)
        batches = list(read_partition(DeltaLocation(f"{lake}/teacher_responses"), {"subset": subset},
                                      columns=["id", "response_origin"], batch_size=1024))
        table = pl.concat([pl.from_arrow(b) for b in batches])
        assert table["id"].to_list() == [f"{subset}-{i:07d}" for i in range(rows)]  # input order
        assert set(table["response_origin"]) == {"generated"}

    lines = model_step.render(result, repeats=1)
    assert lines[0].startswith("## Model steps")
    assert any("asset / bare" in line for line in lines)


@pytest.mark.process
def test_dedup_templated_memory_on_a_tiny_subset(tmp_path, real_sample):
    """`bench/dedup.py`'s issue-34 section on 300 templated rows: `deduplicated` materialized in
    a fresh process from the written `cleaned` and `dedup_signatures`, every row read, none
    dropped (each row is its own numbered problem), its peak RSS measured. No timing asserted."""
    from bench import dedup

    [(rows, result)] = dedup.templated_memory(tmp_path, real_sample, (300,), log=lambda *_: None).items()
    assert rows == 300 and result["success"], result
    assert result["rows_in"] == 300 and result["rows_dropped"] == 0
    assert result["peak_rss_mb"] > result["rss_before_mb"] > 0
    quality = {"templated": 41, "templated_differing_merges": {"negatives_entity": 0, "negatives_shape": 1},
               "shuffled": 8, "shuffled_merged": 8, "recall_all": 1.0, "false_merges": 0,
               "negatives_dropped": 0, "real_dropped": []}
    lines = dedup.render_templated("now", "0", {"defaults": quality}, {300: result})
    assert lines[0].startswith("### Templated families") and any("| 300 |" in line for line in lines)


def test_rehearsal_source_is_the_papers_shape(real_sample, tmp_path):
    """The rehearsal's source (bench/rehearsal.py): the paper's category shares, every row its own
    problem (own id, numbered question, own image bytes with the figure's pixels), traces of the
    real length distribution with no 50-word window repeated, and the planted duplicates copying
    a row of an earlier subset with the same answer."""
    import io
    import random
    from collections import Counter

    from PIL import Image

    from bench import rehearsal

    shares = Counter()
    for _, category, share, _ in rehearsal.PLAN:
        shares[category] += share
    assert {c: round(s, 3) for c, s in shares.items()} == rehearsal.CATEGORY_SHARES
    rng = random.Random(1)
    lengths = sorted(rehearsal.trace_words(rng) for _ in range(4000))
    assert 850 < lengths[2000] < 980 and 3000 < lengths[3600] < 3900

    planted = rehearsal.write_source(real_sample, tmp_path / "src", rehearsal.SourceSpec(
        total_rows=2_000, duplicate_share=0.05, unannotated_share=0.1), log=lambda *_: None)
    rows = pl.concat([pl.read_parquet(p).with_columns(pl.lit(p.parent.name).alias("subset"))
                      for p in sorted((tmp_path / "src").glob("*/*.parquet"))], how="diagonal_relaxed")
    assert rows.height == planted["rows"] == sum(planted["sizes"].values())
    assert rows.select("subset", "id").n_unique() == rows.height
    images = rows["image"].struct.field("bytes").drop_nulls()
    assert images.n_unique() == images.len()  # every row's own bytes
    family = rows.filter((pl.col("subset") == "MMR1") & pl.col("id").is_in([1, 11]))  # one real row's
    assert family.height == 2 and "(Problem 1 of MMR1.)" in family["question"][0]
    first, second = (r["bytes"] for r in family["image"].to_list())
    assert first != second
    assert Image.open(io.BytesIO(first)).tobytes() == Image.open(io.BytesIO(second)).tobytes()
    trace = rows["qwen3vl_235b_thinking_response"].drop_nulls()[5]
    think = trace.split("<think>", 1)[1].split("</think>", 1)[0].split()
    windows = Counter(tuple(think[i:i + 50]) for i in range(len(think) - 49))
    assert windows and max(windows.values()) == 1
    assert 0 < planted["unannotated"] < 0.2 * rows.height
    by_key = {(r["subset"], str(r["id"])): r for r in rows.iter_rows(named=True)}
    assert planted["duplicates"]
    for subset, row_id, of_subset, of_id in planted["duplicates"]:
        copy, original = by_key[(subset, row_id)], by_key[(of_subset, of_id)]
        assert copy["answer"] == original["answer"] and of_subset != subset


@pytest.mark.process
def test_rehearsal_memory_stays_flat_on_a_templated_subset(real_sample, tmp_path):
    """Issue 34's must-hold at CI size (`python -m bench --only rehearsal` measures it at
    20,000 vs 100,000): `mmfr run --until deduplicated` as a user runs it, on one subset whose
    rows are each their own problem over a figure and text their family shares, peaks within
    1.5x at 5x the rows (it was 12x: dedup's candidate pairs grew with the square of a family)."""
    from bench import rehearsal

    peaks = {}
    for rows in (2_000, 10_000):
        source = rehearsal.templated_source(real_sample, tmp_path / f"t{rows}" / "source", rows)
        run = rehearsal.run_cli(tmp_path / f"t{rows}", source, rows, until="deduplicated", log=lambda *_: None)
        assert "deduplicated" in run.stage_seconds, run.output
        peaks[rows] = run.peak_rss_mb
    assert peaks[10_000] <= 1.5 * peaks[2_000] and peaks[10_000] < 2_500, peaks
    # nothing lost at that size: every source row in `collected`, and each stage's input its
    # kept rows plus its rejections, once each
    lake = tmp_path / "t10000" / "lake"
    ids = {table: _ids(lake / table) for table in ("collected", "cleaned", "deduplicated")}
    assert len(ids["collected"]) == len(set(ids["collected"])) == 10_000
    rejected = pl.read_delta(str(lake / "rejections")).select("stage", "id")
    for upstream, stage in (("collected", "cleaned"), ("cleaned", "deduplicated")):
        dropped = rejected.filter(pl.col("stage") == stage)["id"].to_list()
        assert sorted(ids[stage] + dropped) == sorted(ids[upstream]), stage


def _ids(table) -> list[str]:
    from mmfr_assets.lake.delta import DeltaLocation, read_partition

    with read_partition(DeltaLocation(str(table)), {}, columns=["id"]) as reader:
        return [i for batch in reader for i in batch["id"].to_pylist()]


def test_rehearsal_backfill_arithmetic():
    """The backfill rehearsal's pure parts: CPU charged to the step running at each sample (else
    to the run's overhead), the per-run peak distribution, and the repeats a cache should have
    answered, from the fake server's per-body counts."""
    from bench.rehearsal_backfill import charge_cpu, complete_subsets, distribution, repeated_requests

    windows = [(10.0, 20.0, "collected"), (25.0, 30.0, "cleaned")]
    samples = [(5.0, 1.0), (12.0, 3.0), (19.0, 6.0), (22.0, 6.5), (27.0, 8.0), (31.0, 8.25)]
    assert charge_cpu(samples, windows) == {"(run overhead)": 1.75, "collected": 5.0, "cleaned": 1.5}
    assert charge_cpu([], windows) == {}
    assert charge_cpu([(12.0, 2.0), (13.0, 1.0)], windows) == {"collected": 2.0}  # never negative
    peaks = distribution([700.0, 500.0, 900.0, 600.0, 800.0, 650.0, 620.0, 610.0, 640.0, 1200.0])
    assert (peaks["n"], peaks["min"], peaks["max"], peaks["median"], peaks["p90"]) == (10, 500.0, 1200.0, 645.0, 900.0)
    assert distribution([])["max"] == 0.0
    counts = repeated_requests({"a": [1, 0, 1], "b": [3, 2, 1], "c": [2, 0, 2], "d": [2, 1, 0]})
    assert counts == {"bodies": 4, "received_again": 3, "paid_twice": 1, "received_again_not_after_a_fault": 1}
    line = ["collected", "cleaned", "difficulty_filtered"]  # a run holding the line's last stage
    runs = [{"status": "SUCCESS", "partition": f"{k}|A", "assets": line} for k in range(4)]
    runs += [{"status": "SUCCESS" if k else "FAILURE", "partition": f"{k}|B", "assets": line} for k in range(4)]
    runs += [{"status": "SUCCESS", "partition": f"{k}|C", "assets": ["cleaned"]} for k in range(4)]
    runs += [{"status": "SUCCESS", "partition": None, "assets": ["report"]}]
    assert complete_subsets(runs, ["A", "B", "C"]) == ["A"]


def test_rehearsal_backfill_pool_waits_and_s3_requests(tmp_path):
    """The queue's waits for a full pool, read from the run coordinator's log lines (a run held
    from its first look with the pool full to the next look after its last), and the S3 server's
    requests by method from its access log."""
    from bench.rehearsal_backfill import pool_waits, s3_requests

    def look(t):
        return f"2026-12-07 20:19:{t:02d} +0000 - dagster.daemon.QueuedRunCoordinatorDaemon - INFO - Priority sorting and checking tag concurrency limits for queued runs."

    def held(t, run, used):
        state = {"granularity": "op", "slot_count": 2, "pending_step_count": 0, "launched_count": used, "in_progress_count": 0}
        free = {**state, "launched_count": 0}
        return (f"2026-12-07 20:19:{t:02d} +0000 - dagster.daemon.QueuedRunCoordinatorDaemon - INFO - Run {run} is "
                f"blocked by global concurrency limits: " + json.dumps({"answer_llm": state, "judge_llm": free}))

    a, b = "a" * 8 + "-0000-0000-0000-" + "0" * 12, "b" * 8 + "-0000-0000-0000-" + "0" * 12
    log = tmp_path / "daemon.log"
    log.write_text("\n".join([look(0), held(0, a, 2), look(5), held(5, a, 2), held(5, b, 1), look(10), held(10, b, 2),
                              look(15), look(20)]))
    # a: held at 0 and 5, launched at the look of 10; b: full only at 10 (at 5 one slot was free)
    assert pool_waits(log) == {"answer_llm": {"runs": 2, "seconds": 15.0, "longest": 10.0}}
    moto = tmp_path / "moto.log"
    moto.write_text('127.0.0.1 - - [07/Dec/2026 20:19:00] "GET /b/lake/x/_delta_log/00000000000000000001.json HTTP/1.1" 200 -\n'
                    '127.0.0.1 - - [07/Dec/2026 20:19:00] "\x1b[33mGET /b/lake/x/_delta_log/_last_checkpoint HTTP/1.1\x1b[0m" 404 -\n'
                    '127.0.0.1 - - [07/Dec/2026 20:19:01] "\x1b[35m\x1b[1mGET /b/lake/x/part-0.parquet HTTP/1.1\x1b[0m" 206 -\n'
                    '127.0.0.1 - - [07/Dec/2026 20:19:01] "PUT /b/lake/x/part-0.parquet HTTP/1.1" 200 -\n')
    assert s3_requests(moto) == {"GET": 3, "PUT": 1}  # a 404 and a 206 too: werkzeug colors them
