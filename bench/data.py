"""Large realistic sources in hub layout, written in parallel.

Rows are exactly those of `mmfr_devkit.sample.write_sample(out, subsets=[s], rows_per_subset=N,
seed, trace_words, fault_rate, image_size)`: the same plan (`plan_rows`) and the same per-row
builder (`build_row`, seeded per row), so a row does not depend on which process built it.
`write_sample` builds one subset's rows one after the other (~4 ms a row with 2,000-word traces
and images); here every subset is cut into shards of `shard_rows` rows and the shards are built
by a process pool, then the card (`README.md`) is written with `readme_text`. With one worker
and one subset this is `write_sample` itself (the smoke test checks that both agree).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 256  # rows per row group (as write_sample)


@dataclass(frozen=True)
class SourceSpec:
    """What to generate: rows per subset, and the `write_sample` knobs."""

    subsets: dict[str, int]  # subset name -> rows
    trace_words: int = 2000
    fault_rate: float = 0.03
    image_size: int = 384
    seed: int = 0
    shard_rows: int = 5000

    def plan_kwargs(self, subset: str) -> dict:
        """The arguments of `expected_reasons` / `plan_rows` for `subset`."""
        return {
            "rows_per_subset": self.subsets[subset],
            "seed": self.seed,
            "fault_rate": self.fault_rate,
        }


def _write_shard(job: tuple) -> tuple[str, int, int]:
    """Build rows [first, first + count) of one subset into one parquet shard."""
    from mmfr_devkit.sample.generate import SCHEMA
    from mmfr_devkit.sample.plan import plan_rows
    from mmfr_devkit.sample.rows import build_row

    path, subset, first, count, spec = job
    spec = SourceSpec(**spec)
    plan = plan_rows(subset, **spec.plan_kwargs(subset))
    rows = (
        build_row(subset, row, seed=spec.seed, trace_words=spec.trace_words,
                  image_size=spec.image_size)
        for row in itertools.islice(plan, first, first + count)
    )
    written = 0
    with pq.ParquetWriter(path, SCHEMA, compression="snappy") as writer:
        while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
            writer.write_table(pa.Table.from_pylist(chunk, schema=SCHEMA), row_group_size=len(chunk))
            written += len(chunk)
    return path, written, os.path.getsize(path)


def write_source(out: Path, spec: SourceSpec, *, workers: int | None = None, log=print) -> Path:
    """Write (or reuse, if `out` holds this very spec) a hub-layout source of `spec`."""
    from mmfr_devkit.sample.generate import readme_text

    out = Path(out)
    stamp = out / ".bench-spec.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted:
        log(f"reusing the generated source {out}")
        return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = []
    for subset, n in spec.subsets.items():
        (tmp / subset).mkdir(parents=True)
        shards = max(1, math.ceil(n / spec.shard_rows))
        for k in range(shards):
            first = k * spec.shard_rows
            path = tmp / subset / f"train-{k:05d}-of-{shards:05d}.parquet"
            jobs.append((str(path), subset, first, min(spec.shard_rows, n - first), asdict(spec)))
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    total = sum(spec.subsets.values())
    # The largest shards first, so the pool ends together.
    jobs.sort(key=lambda j: -j[3])
    if workers == 1 or len(jobs) == 1:
        results = [_write_shard(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_shard, jobs))
    readme = readme_text(list(spec.subsets), dict(spec.subsets), "Benchmark source (bench/data.py).")
    (tmp / "README.md").write_text(readme, encoding="utf-8")
    stamp_tmp = tmp / ".bench-spec.json"
    stamp_tmp.write_text(wanted)
    os.rename(tmp, out)
    elapsed = time.perf_counter() - started
    size = sum(r[2] for r in results)
    log(
        f"generated {total} rows ({', '.join(f'{s}: {n}' for s, n in spec.subsets.items())}) "
        f"in {elapsed:.0f} s with {workers} processes: {size / 1e9:.2f} GB of parquet, "
        f"{elapsed / max(total, 1) * 1000 * workers:.2f} ms/row/process"
    )
    return out
