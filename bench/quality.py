"""`quality_filtered`'s compute: ours (the batch function of the asset) against the baseline
(`bench/baseline.py`: `datasets.filter`, one Python call per example), on the same rows of a
materialized `distilled` partition, with the same kept rows asserted."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.lake.delta import DeltaLocation, read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.rules.quality import QualityRules, select_quality
from mmfr_assets.stage import upstream_batches

BATCH_SIZE = 1024  # the asset's default batch_size


@dataclass
class Pass:
    """One pass of a filter over a partition's rows."""

    name: str
    rows: int
    seconds: float  # the filter's own time
    kept: set[str]
    reasons: dict[str, str] | None = None  # dropped id -> reason (ours)
    other_seconds: float = 0.0  # reading (ours) / loading into `datasets` (baseline)
    cpu_seconds: float = 0.0  # CPU time of the filter, all threads and worker processes

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    @property
    def rows_per_cpu_second(self) -> float:
        return self.rows / self.cpu_seconds if self.cpu_seconds else float("inf")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(lake_uri: str, subset: str, *, limit: int | None = None, rules=QualityRules()) -> Pass:
    """`select_quality` over the partition's batches, read as the asset reads them
    (`upstream_batches`); only the calls to the batch function are timed (`other_seconds`:
    reading and converting batches)."""
    kept: set[str] = set()
    reasons: dict[str, str] = {}
    rows, compute, cpu = 0, 0.0, 0.0
    started = time.perf_counter()
    for frame in upstream_batches(LakeResource(uri=lake_uri), "distilled", subset, batch_size=BATCH_SIZE):
        if limit is not None and rows >= limit:
            break
        if limit is not None:
            frame = frame.head(limit - rows)
        t, c = time.perf_counter(), time.process_time()
        verdicts = select_quality(frame, rules)
        compute += time.perf_counter() - t
        cpu += time.process_time() - c
        rows += frame.height
        kept.update(verdicts.kept["id"].to_list())
        reasons.update(zip(verdicts.dropped["id"].to_list(), verdicts.dropped["reason"].to_list()))
    reading = time.perf_counter() - started - compute
    return Pass("ours", rows, compute, kept, reasons, reading, cpu)


def export_rows(lake_uri: str, subset: str, path: Path, *, limit: int | None = None) -> int:
    """The partition's first `limit` rows as one parquet file (what the baseline loads)."""
    location = DeltaLocation(f"{lake_uri.rstrip('/')}/distilled")
    rows = 0
    writer = None
    for batch in read_partition(location, {"subset": subset}, batch_size=BATCH_SIZE):
        if limit is not None and rows >= limit:
            break
        table = pa.Table.from_batches([batch])
        if limit is not None:
            table = table.slice(0, limit - rows)
        table = table.append_column("subset", pa.array([subset] * table.num_rows, pa.string())) if "subset" not in table.column_names else table
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        rows += table.num_rows
    if writer is not None:
        writer.close()
    return rows


def baseline(parquet: Path, cache_dir: Path, *, num_proc: int | None = None) -> Pass:
    """The published way: a `datasets.Dataset` (Arrow cache, memory-mapped) and `.filter` with
    one Python call per whole example over `num_proc` processes. Only `.filter` is timed."""
    import datasets

    from bench import baseline as published

    datasets.disable_progress_bars()
    num_proc = num_proc or os.cpu_count() or 1
    t = time.perf_counter()
    dataset = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(cache_dir))
    loading = time.perf_counter() - t
    t, c, children = time.perf_counter(), time.process_time(), _children_cpu()
    kept = dataset.filter(
        published.keep,
        num_proc=num_proc if num_proc > 1 else None,
        load_from_cache_file=False,
    )
    seconds = time.perf_counter() - t
    cpu = time.process_time() - c + _children_cpu() - children  # the pool's workers have exited
    return Pass(f"baseline (datasets.filter, num_proc={num_proc})", len(dataset), seconds,
                set(kept["id"]), None, loading, cpu)


def plan_mismatches(ours_pass: Pass, subset: str, plan_kwargs: dict) -> list[tuple[str, str | None, str | None]]:
    """(id, planned, got) where ours disagrees with the generator's plan: a row planned to be
    dropped by a quality rule must get that reason; every other row must be kept."""
    from mmfr_devkit.sample import REASON_STAGE, expected_reasons

    planned = {str(k): v for k, v in expected_reasons(subset, **plan_kwargs).items()}
    seen = ours_pass.kept | set(ours_pass.reasons or {})
    wrong = []
    for row_id in seen:
        expected = planned.get(row_id)
        expected = expected if REASON_STAGE.get(expected) == "quality_filtered" else None
        got = (ours_pass.reasons or {}).get(row_id)
        if got != expected:
            wrong.append((row_id, expected, got))
    return wrong
