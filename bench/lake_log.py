"""The lake's Delta log on an object store (issue 34): what opening and counting a table costs,
ours vs delta-rs' defaults, side by side on the tests' S3 server (moto).

    python -m bench --only lake_log [--quick]

- **Checkpoints.** A table takes `commits` partition commits (as a stage's runs make them: one
  per subset x shard, the `rejections` table one per stage of each), written by our writer with
  the lake's `TABLE_PROPERTIES` (a checkpoint every 10 commits) and, as the baseline, with
  delta-rs' default (every 100). Then: the mean time of a commit, of an open + a count, and the
  S3 requests an open + count makes (the server's access log).
- **Counts.** A table of `subsets` x `shards` partitions, two files each; every subset counted,
  as the funnel and the accounting checks count them: the baseline through the files (a footer
  read per matching file: `dataset.count_rows`, what `count_rows` did before), ours from the log
  (`rows_by`: the files' record counts, one read of the log). Both must agree.

Only the lake's own code runs here (no Dagster); the rehearsal through the daemon measures the
same change in whole runs.
"""

from __future__ import annotations

import statistics
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

SCHEMA = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])


@dataclass
class LogMeasure:
    commits: int
    subsets: int
    shards: int
    started: str = ""
    machine: str = ""
    load: str = ""
    checkpoints: dict[str, dict] = field(default_factory=dict)  # case -> commit_ms, open_ms, requests
    counts: dict[str, dict] = field(default_factory=dict)  # case -> seconds, requests, rows


@contextmanager
def _s3(out: Path):
    import boto3

    from mmfr_assets_tests.dagster_process import s3_server
    from mmfr_assets_tests.test_object_store import CREDENTIALS, NO_CLOUD

    from bench.rehearsal_backfill import _environ

    log = out / "moto.log"
    with _environ({**CREDENTIALS, **NO_CLOUD}), s3_server(log, NO_CLOUD) as endpoint:
        bucket = f"bench-lake-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        options = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        yield f"s3://{bucket}", options, log


def _requests(log: Path) -> int:
    """Requests the S3 server has logged, once its log has settled (it logs a request after
    answering it, so the last few land a moment later)."""
    from bench.rehearsal_backfill import s3_requests

    count, previous = sum(s3_requests(log).values()), -1
    while count != previous:
        time.sleep(0.3)
        count, previous = sum(s3_requests(log).values()), count
    return count


def _write(location, partition: dict[str, str], rows: int) -> None:
    from mmfr_assets.lake.delta import PartitionWriter

    with PartitionWriter(location, SCHEMA, partition) as writer:
        writer.write(pa.table({"id": [f"{partition['subset']}-{i}" for i in range(rows)], "x": list(range(rows))}))
        writer.commit()


def checkpoint_case(root: str, options: dict, log: Path, commits: int, properties: dict[str, str]) -> dict:
    """`commits` partition commits; over the last 100 of them (a whole cycle of the default
    interval, so neither case is caught just after a checkpoint), an open + a count every 10
    commits. The mean commit time, and the opens' mean time and S3 requests."""
    from mmfr_assets.lake import delta
    from mmfr_assets.lake.delta import DeltaLocation, count_rows

    location = DeltaLocation(f"{root}/t-{uuid.uuid4().hex[:6]}", options)
    commit_s: list[float] = []
    open_s: list[float] = []
    requests: list[int] = []
    with mock.patch.object(delta, "TABLE_PROPERTIES", properties):
        for k in range(commits):
            t = time.perf_counter()
            _write(location, {"subset": f"s{k}"}, 3)
            commit_s.append(time.perf_counter() - t)
            if k >= commits - 100 and k % 10 == 5:
                before = _requests(log)
                t = time.perf_counter()
                assert count_rows(location, {"subset": "s1"}) == 3
                open_s.append(time.perf_counter() - t)
                requests.append(_requests(log) - before)
    fs, path = delta.filesystem_for(location.uri, options)
    checkpoints = sum(1 for f in fs.get_file_info(pafs.FileSelector(f"{path}/_delta_log"))
                      if f.path.endswith(".checkpoint.parquet"))
    return {"commit_ms": statistics.mean(commit_s) * 1000, "open_ms": statistics.mean(open_s) * 1000,
            "requests": statistics.mean(requests), "opens": len(open_s), "checkpoints": checkpoints}


def count_cases(root: str, options: dict, log: Path, subsets: int, shards: int) -> dict[str, dict]:
    """One table of subsets x shards partitions (two files each), every subset counted through
    the files and from the log."""
    from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter, rows_by

    location = DeltaLocation(f"{root}/counts", options)
    names = [f"subset-{k:02d}(x)" for k in range(subsets)]
    for name in names:
        for shard in range(shards):
            with PartitionWriter(location, SCHEMA, {"subset": name, "shard": str(shard)}, max_file_bytes=1) as writer:
                for half in range(2):
                    writer.write(pa.table({"id": [f"{name}-{shard}-{half}-{i}" for i in range(5)], "x": list(range(5))}))
                writer.commit()
    out: dict[str, dict] = {}
    for case in ("through the files (before)", "from the log (ours)"):
        before, started = _requests(log), time.perf_counter()
        if case.startswith("through"):
            dataset = location.table().to_pyarrow_dataset()
            counted = {name: dataset.count_rows(filter=pads.field("subset") == name) for name in names}
        else:
            counted = rows_by(location.table(), "subset")
        out[case] = {"seconds": time.perf_counter() - started, "requests": _requests(log) - before,
                     "rows": sum(counted.values())}
    rows = {c["rows"] for c in out.values()}
    assert rows == {subsets * shards * 10}, f"the two counts differ: {out}"
    return out


def run(out: Path, *, quick: bool, log=print) -> LogMeasure:
    from bench import machine

    out.mkdir(parents=True, exist_ok=True)
    info = machine.describe()
    measure = LogMeasure(commits=100 if quick else 300, subsets=8 if quick else 22, shards=2 if quick else 4,
                         started=machine.now_utc(), load=machine.load_text(),
                         machine=f"{info['cpus (nproc)']} cores ({info['cpu model']}), {info['ram']}")
    with _s3(out) as (root, options, s3_log):
        for case, properties in (("delta-rs default (every 100 commits)", {}),
                                 ("ours (every 10 commits)", {"delta.checkpointInterval": "10"})):
            measure.checkpoints[case] = checkpoint_case(root, options, s3_log, measure.commits, properties)
            log(f"lake_log {case}: {measure.checkpoints[case]}")
        measure.counts = count_cases(root, options, s3_log, measure.subsets, measure.shards)
        log(f"lake_log counts: {measure.counts}")
    return measure


def render(m: LogMeasure) -> list[str]:
    base, ours = m.checkpoints.values()
    files, log_ = m.counts.values()
    return [
        "## Lake log: checkpoints and counts from the log (issue 34)",
        "",
        f"Measured {m.started} on {m.machine} (load {m.load} at the start). `python -m bench --only "
        f"lake_log` (`bench/lake_log.py`), on the tests' S3 server (moto), our writer and reader only. "
        f"A table of {m.commits:,} partition commits, its log checkpointed as delta-rs does by default "
        f"and as the lake's tables now are, opened and counted every 10 commits over the last 100 "
        f"(a whole cycle of the default's checkpoints); then one table of {m.subsets} subsets x {m.shards} shards "
        f"(two files a partition) whose every subset is counted, through the files and from the log:",
        "",
        "| table of commits | checkpoints | a commit, ms (mean) | an open + a count, ms (mean) | S3 requests per open + count (mean) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {case} | {c['checkpoints']} | {c['commit_ms']:,.0f} | {c['open_ms']:,.0f} | {c['requests']:,.0f} |"
          for case, c in m.checkpoints.items()],
        f"| ratio, default / ours | | {base['commit_ms'] / ours['commit_ms']:.1f}x | "
        f"{base['open_ms'] / ours['open_ms']:.1f}x | {base['requests'] / max(ours['requests'], 1):.1f}x |",
        "",
        f"| {m.subsets} subsets counted | seconds | S3 requests | rows |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {case} | {c['seconds']:.2f} | {c['requests']:,} | {c['rows']:,} |" for case, c in m.counts.items()],
        f"| ratio, before / ours | {files['seconds'] / max(log_['seconds'], 1e-9):.1f}x | "
        f"{files['requests'] / max(log_['requests'], 1):.1f}x | same rows |",
    ]
