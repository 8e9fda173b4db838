"""The rehearsal through the daemon (issue 34, second part): the whole graph as a Dagster user
runs it, on the parts a cluster uses, measured.

    python -m bench --only rehearsal_backfill [--quick]   # 10,000 rows in 22 subsets (--quick: 1,000)

- the rehearsal's source (`rehearsal.write_source`, all 22 subsets) with half the rows'
  annotations removed (and, for those with a worked solution, the answer: `without_answers`),
  `question_reviews` reviewing every question: every model role has work;
- PostgreSQL instance storage (`deploy/dagster-postgres.yaml`, a fresh database on the server of
  `MMFR_TEST_POSTGRES_URL`, as the tests; `eval "$(bash deploy/local-postgres.sh)"` starts one;
  beside a test run on the same cluster give the bench its own role, `MMFR_PG_ROLE=mmfr_bench
  MMFR_PG_DB=mmfr_bench`: each call of the script sets a new password for its role, and the
  other shell's new connections then fail)
  and the response cache in the same database; the lake on the S3 server the tests use (moto);
  every role (`llm.resource.ROLES`) on the fake server in its own process, with the rehearsal's
  per-role faults, heavy-tailed latency and completion lengths (`rehearsal_endpoints`), each
  role an endpoint serving `MAX_CONCURRENCY` requests at once; `MMFR_SHARDS=4`;
- one code server serving the code location (`dagster code-server start`, a `grpc_server`
  workspace entry: as docs/operating.md advises for long backfills and the Helm chart's user
  deployment runs it) and `dagster-webserver` + `dagster-daemon` on it with the repo's instance
  settings (run queue 4 at once, 3 per backfill; every pool's limit set first, as
  docs/operating.md says),
  and ONE backfill launched as the UI's *Materialize all* with all partitions selected
  (`launchPartitionBackfill`, every asset, `allPartitions`), each run's steps in its worker
  process (`in_process`, as a run pod executes them).

Measured while it runs: every run worker process (`dagster api execute_run`, launched by the
daemon's code server) is sampled every `SAMPLE_S` from /proc: its peak RSS (`VmHWM`) and its CPU
seconds (its own and its reaped children's), the CPU between two samples charged to the step its
run was in (the steps' windows from the event log), else to the run's fixed cost. After it: the
runs and how long they waited in the queue, per step wall and CPU, requests / tokens / re-asks
per row per role (the steps' metadata and the server's counters), each endpoint's busy fraction
(seconds served holding a slot / (slots x the backfill's wall time)), the lake's bytes per 1,000
rows, what the UI's asset pages and the report cost to load at that size, and "nothing lost,
nothing twice" (every source row in every table of the line once or in the rejections with its
reason; no request body answered usably twice: `by_request` of the fake server).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHARDS = 4
POOL_LIMIT = 2  # steps of one role at once over every run: each keeps MAX_CONCURRENCY // 2 in flight
SAMPLE_S = 0.5
CLOCK = os.sysconf("SC_CLK_TCK")
WORKER_PID = re.compile(r"\(pid: (\d+)\)")
# A run's worker: the daemon's code server (`dagster api grpc`) starts each run in a child it
# spawns (multiprocessing); `dagster api execute_run` is the other launcher's worker.
RUN_WORKER = (b"execute_run", b"--multiprocessing-fork")
INFRASTRUCTURE = {b"dagster-webserver": "webserver", b"dagster-daemon": "daemon", b"api grpc": "code server",
                  b"code-server start": "code server",
                  b"moto_server": "S3 server (moto)", b"mmfr_devkit.fake_server": "fake endpoints"}
IGNORED = "(not ours)"
SET_POOL_LIMIT = """
mutation SetPool($pool: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $pool, limit: $limit) }
"""
ALL_ASSETS = "{ assetNodes { assetKey { path } pools isPartitioned } }"
# What the UI's asset page asks for (its definition, partition health, the latest materializations).
ASSET_PAGE = """
query AssetPage($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      id description opNames pools isPartitioned
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
        ... on MultiPartitionStatuses { primaryDimensionName ranges { primaryDimStartKey primaryDimEndKey
          secondaryDim { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } }
      }
    }
  }
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 100) {
        partition runId timestamp
        metadataEntries { label __typename ... on MarkdownMetadataEntry { mdStr } ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


# -- pure arithmetic (unit-tested in mmfr_assets_tests/test_bench_smoke.py) -------------------


def distribution(values: list[float]) -> dict[str, float]:
    """min / median / p90 / max of `values` (zeros when there are none)."""
    if not values:
        return {"n": 0, "min": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered)) - 1))]
    return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered), "p90": p90,
            "max": ordered[-1]}


def step_at(windows: list[tuple[float, float, str]], at: float) -> str | None:
    """The step whose (start, end, step) window holds `at`, else None."""
    for start, end, step in windows:
        if start <= at <= end:
            return step
    return None


def charge_cpu(samples: list[tuple[float, float]], windows: list[tuple[float, float, str]],
               outside: str = "(run overhead)") -> dict[str, float]:
    """CPU seconds per step of one process: `samples` are (time, cumulative CPU seconds) in time
    order; each increase is charged to the step running at the later sample (`windows` of the
    process's run), else to `outside` (the run's start-up and end, between steps)."""
    charged: dict[str, float] = defaultdict(float)
    previous = 0.0  # the process was sampled from its start: CPU before the first sample is its own
    for at, cpu in samples:
        charged[step_at(windows, at) or outside] += max(0.0, cpu - previous)
        previous = cpu
    return dict(charged)


def repeated_requests(by_request: dict[str, list[int]]) -> dict[str, int]:
    """From the fake server's `by_request` ([received, faulted, good] per request body): bodies
    answered usably more than once (paid twice), and bodies received again other than after a
    fault (a repeat the response cache should have answered)."""
    paid_twice = sum(1 for _, _, good in by_request.values() if good > 1)
    not_after_fault = sum(1 for received, faulted, _ in by_request.values() if received - faulted > 1)
    repeated = sum(1 for received, _, _ in by_request.values() if received > 1)
    return {"bodies": len(by_request), "received_again": repeated, "paid_twice": paid_twice,
            "received_again_not_after_a_fault": not_after_fault}


# -- sampling the run processes ---------------------------------------------------------------


def _status_kb(status: str, key: str) -> int:
    for line in status.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int, children: bool) -> float | None:
    """utime + stime of `pid`, with its reaped children's (cutime + cstime) if `children` (a run
    worker's; not the daemon's or a code server's, whose children are tracked themselves)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if children else (11, 12))) / CLOCK


@dataclass
class ProcessTrack:
    pid: int
    kind: str  # "run" or an INFRASTRUCTURE name
    run_id: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    peak_rss_mb: float = 0.0
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (time.time(), cumulative CPU s)


class Sampler:
    """Samples /proc every `SAMPLE_S` in a thread: this rehearsal's run workers (cmdline with
    `execute_run`) and its other processes (webserver, daemon, code servers: their environment
    holds its DAGSTER_HOME; the S3 server and the fake endpoints: `pids`). Other processes on the
    machine (another instance's daemon and workers) are left out."""

    def __init__(self, home: Path, pids: set[int] = frozenset()) -> None:
        self.marker = f"DAGSTER_HOME={home}".encode()
        self.pids = set(pids)
        self.tracks: dict[tuple[int, float], ProcessTrack] = {}  # (pid, start time) -> track
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rehearsal-sampler", daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        now = time.time()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                started = float((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
            except (OSError, IndexError, ValueError):
                continue
            key = (pid, started)
            track = self.tracks.get(key)
            if track is None:
                track = self._classify(entry, pid, cmdline, now)
                if track is None:
                    continue  # not yet decidable (its environment unreadable): next sample
                self.tracks[key] = track
            if track.kind == IGNORED:
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            cpu = _cpu_seconds(pid, track.kind == "run")
            if cpu is None:
                continue
            track.last_seen = now
            track.peak_rss_mb = max(track.peak_rss_mb, _status_kb(status, "VmHWM:") / 1024)
            track.cpu.append((now, cpu))

    def _classify(self, entry: Path, pid: int, cmdline: bytes, now: float) -> ProcessTrack | None:
        """What `pid` is: a run worker (spawned by our code server), a child of one (its own
        pool's processes: their memory is reported apart, their CPU is in the worker's reaped
        children's), one of INFRASTRUCTURE, or not ours; None while undecidable."""
        kind = next((name for marker, name in INFRASTRUCTURE.items() if marker in cmdline), None)
        if any(marker in cmdline for marker in RUN_WORKER):
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                return None
            parent_kind = self._kind_of(parent)
            if parent_kind is None:
                return None
            kind = {"code server": "run", "run": "run child", "run child": "run child"}.get(parent_kind)
            if b"execute_run" in cmdline:
                kind = "run"
        if kind is None or (pid not in self.pids and kind in ("S3 server (moto)", "fake endpoints")):
            return ProcessTrack(pid, IGNORED)
        if pid not in self.pids:
            try:
                ours = self.marker + b"\0" in (entry / "environ").read_bytes() + b"\0"
            except OSError:
                return None
            if not ours:
                return ProcessTrack(pid, IGNORED)
        return ProcessTrack(pid, kind, None, now)

    def _kind_of(self, pid: int) -> str | None:
        """The kind of the live process `pid` as tracked (its latest track), None if unseen."""
        kinds = [(t.first_seen, t.kind) for (p, _), t in self.tracks.items() if p == pid]
        return max(kinds)[1] if kinds else None

    def runs(self) -> list[ProcessTrack]:
        return [t for t in self.tracks.values() if t.kind == "run"]


# -- the cluster's parts ----------------------------------------------------------------------


@contextmanager
def postgres_database():
    """A fresh database on the server of MMFR_TEST_POSTGRES_URL (as the tests' fixture), dropped
    afterwards: {DAGSTER_PG_* variables, "_url": its URL for the response cache}."""
    from mmfr_assets_tests.dagster_process import fresh_postgres_database

    url = os.environ.get("MMFR_TEST_POSTGRES_URL")
    if not url:
        raise SystemExit("rehearsal_backfill: needs a PostgreSQL server: set MMFR_TEST_POSTGRES_URL="
                         "postgresql://USER:PASSWORD@127.0.0.1:5432/postgres (a role with CREATEDB); as root, "
                         "`eval \"$(bash deploy/local-postgres.sh)\"` starts one")
    with fresh_postgres_database(url, "mmfr_rehearsal") as values:
        yield values


@contextmanager
def _environ(values: dict[str, str]):
    """This process's environment with `values` (it reads the instance and the lake too)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- after the backfill: reading what happened ------------------------------------------------


def run_records(home: Path, backfill_id: str) -> tuple[list[dict], dict[str, list[tuple[float, float, str]]]]:
    """The backfill's runs (id, status, partition, assets, created / started / ended) and each
    run's step windows (start, end, step) from its event log."""
    import dagster as dg

    from dagster._core.events import DagsterEventType

    from bench.rehearsal import run_step_windows

    runs, windows = [], {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
            run = record.dagster_run
            pids = [int(m.group(1)) for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                    if (m := WORKER_PID.search(e.message or ""))]
            runs.append({"id": run.run_id, "status": run.status.value, "partition": run.tags.get("dagster/partition"),
                         "assets": sorted(k.to_user_string() for k in run.asset_selection or ()),
                         "created": record.create_timestamp.timestamp(), "started": record.start_time,
                         "ended": record.end_time, "pid": pids[0] if pids else None})
            windows[run.run_id] = run_step_windows(instance, run.run_id)
    return runs, windows


def lake_bytes_s3(endpoint: str, bucket: str, prefix: str = "lake/") -> dict[str, int]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    sizes: dict[str, int] = defaultdict(int)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"][len(prefix):].split("/", 1)[0]] += item["Size"]
    return {table: size for table, size in sizes.items() if table}  # not the prefix's own marker


def page_load_seconds(url: str, assets: list[str], repeats: int = 3) -> dict[str, dict]:
    """Per asset, the median seconds of the UI's asset-page query, and the bytes it returned."""
    import urllib.request

    out = {}
    for name in assets:
        times, size = [], 0
        for _ in range(repeats):
            body = json.dumps({"query": ASSET_PAGE, "variables": {"key": {"path": [name]}}}).encode()
            request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=300) as response:
                payload = response.read()
            times.append(time.perf_counter() - started)
            size = len(payload)
            errors = json.loads(payload).get("errors")
            if errors:
                raise RuntimeError(f"asset page query for {name}: {errors[:1]}")
        out[name] = {"seconds": statistics.median(times), "bytes": size}
    return out


def report_load(endpoint: str, bucket: str) -> dict:
    """The report page as a reader gets it from the object store (<lake>/_report/index.html)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    started = time.perf_counter()
    try:
        body = client.get_object(Bucket=bucket, Key="lake/_report/index.html")["Body"].read()
    except client.exceptions.NoSuchKey:
        return {"seconds": None, "bytes": 0}
    return {"seconds": time.perf_counter() - started, "bytes": len(body)}


def source_ids(source: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {folder.name: sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))
            for folder in sorted(source.iterdir()) if folder.is_dir()}


def complete_subsets(runs: list[dict], subsets: list[str]) -> list[str]:
    """The subsets whose every shard ran the whole line (a run holding the line's last stage
    succeeded for each of the SHARDS shards): those the lake's accounting can be asked of."""
    from mmfr_assets.lineage import LINE

    done: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        if r["status"] == "SUCCESS" and LINE[-1] in r["assets"] and "|" in (r["partition"] or ""):
            shard, subset = r["partition"].split("|", 1)
            done[subset].add(shard)
    return [s for s in subsets if len(done[s]) == SHARDS]


def accounting(lake: str, options: dict, sizes: dict[str, int], subsets: list[str] | None = None) -> dict:
    """Nothing lost, nothing twice in the lake: `assert_accounted` over the line's tables of
    `subsets` (default all), and every source row of every subset in `collected`."""
    from mmfr_assets_tests.dagster_process import assert_accounted, lake_snapshot

    checked = sorted(sizes) if subsets is None else list(subsets)
    collected = lake_snapshot(lake, sorted(sizes), options)["ids"] if subsets is not None else None
    subsets = checked
    snapshot = lake_snapshot(lake, subsets, options)
    problems = []
    try:
        assert_accounted(snapshot, subsets)
    except AssertionError as error:
        problems.append(str(error))
    ids = collected or snapshot["ids"]
    for subset, rows in sizes.items():
        kept = len(ids[("collected", subset)])
        if kept != rows:
            problems.append(f"collected/{subset}: {kept} rows of the source's {rows}")
    drops = sum(snapshot["drops"].values())
    kept_rows = {table: sum(len(v) for (t, _), v in snapshot["ids"].items() if t == table)
                 for table in dict.fromkeys(t for t, _ in snapshot["ids"])}
    return {"problems": problems, "rejections": drops, "kept": kept_rows, "subsets": subsets}


BLOCKED = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000.* Run ([0-9a-f-]{36}) is blocked by global "
                     r"concurrency limits: (\{.*\})")
STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000")
LOOK = "Priority sorting and checking tag concurrency limits for queued runs"
S3_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|HEAD|POST|DELETE) /')  # werkzeug colors non-200 lines


def pool_waits(daemon_log: Path) -> dict[str, dict]:
    """How long the queue held runs back for a full pool, per pool: the run coordinator logs a
    run it holds each time it looks (every few seconds) with its pools' slots and their use; a
    run's wait for a pool is from the first look that found the pool full to the next look after
    the last one that did."""
    import bisect
    import datetime as dt

    def seconds(stamp: str) -> float:
        return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()

    held: dict[tuple[str, str], list[float]] = defaultdict(list)
    looks: list[float] = []
    for line in daemon_log.read_text(errors="replace").splitlines():
        if LOOK in line:
            looks.append(seconds(STAMP.search(line).group(1)))
        found = BLOCKED.search(line)
        if not found:
            continue
        for pool, state in json.loads(found.group(3)).items():
            in_use = state.get("launched_count", 0) + state.get("in_progress_count", 0)
            if in_use >= state.get("slot_count", 0):
                held[(pool, found.group(2))].append(seconds(found.group(1)))
    out: dict[str, dict] = {}
    for (pool, _run), times in held.items():
        after = bisect.bisect_right(looks, max(times))
        wait = (looks[after] if after < len(looks) else max(times)) - min(times)
        entry = out.setdefault(pool, {"runs": 0, "seconds": 0.0, "longest": 0.0})
        entry["runs"] += 1
        entry["seconds"] += wait
        entry["longest"] = max(entry["longest"], wait)
    return out


def postgres_cpu_seconds() -> float | None:
    """CPU seconds the local PostgreSQL cluster has used: its postmaster's own and its exited
    backends' (reaped: the postmaster's cutime/cstime) plus its live backends'. Its processes
    belong to the `postgres` user, not this rehearsal's environment, so the sampler cannot
    tell them apart: taken before and after the backfill, the difference is the cluster's work
    over it, any other client's included. None when no postmaster is found here."""
    processes: dict[int, tuple[bytes, int, list[int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        processes[int(entry.name)] = (cmdline, int(fields[1]), [int(f) for f in fields[11:15]])
    # The postmaster keeps its command line; its backends rewrite theirs ("postgres: 16/main: ...").
    postmaster = next((pid for pid, (cmd, _, _) in processes.items() if cmd.split(b"\0")[0].endswith(b"/bin/postgres")),
                      None)
    if postmaster is None:
        return None
    live = sum(sum(times[:2]) for _, parent, times in processes.values() if parent == postmaster)
    return (sum(processes[postmaster][2]) + live) / CLOCK


def s3_requests(moto_log: Path) -> dict[str, int]:
    """Requests the S3 server answered over the rehearsal, by method (its access log)."""
    counts: dict[str, int] = defaultdict(int)
    for line in moto_log.read_text(errors="replace").splitlines():
        found = S3_REQUEST.search(line)
        if found:
            counts[found.group(1)] += 1
    return dict(counts)


# -- the rehearsal ----------------------------------------------------------------------------


@dataclass
class BackfillMeasure:
    rows: int
    subsets: int
    started: str
    load_before: str
    load_after: str = ""
    machine: str = ""
    status: str = ""
    wall_s: float = 0.0
    runs: list[dict] = field(default_factory=list)
    windows: dict[str, list] = field(default_factory=dict)
    processes: list[dict] = field(default_factory=list)  # per run worker: run, peak MB, CPU s, seconds
    infrastructure: dict[str, dict] = field(default_factory=dict)
    step_cpu: dict[str, float] = field(default_factory=dict)
    step_peak_mb: dict[str, float] = field(default_factory=dict)
    server: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)
    lake: dict[str, int] = field(default_factory=dict)
    pages: dict[str, dict] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    accounted: dict = field(default_factory=dict)
    repeats: dict = field(default_factory=dict)
    pool_waits: dict[str, dict] = field(default_factory=dict)  # pool -> runs held, seconds held, longest
    s3_requests: dict[str, int] = field(default_factory=dict)  # method -> requests the S3 server answered
    postgres_cpu_s: float | None = None  # the PostgreSQL cluster's CPU over the backfill (None: not readable)
    quick: bool = False
    planted: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # measures that could not be taken, and why


def run(out: Path, real_sample: Path, *, quick: bool, rows: int | None = None, subsets: int | None = None,
        seed: int = 0, timeout_s: float | None = None, log=print) -> BackfillMeasure:
    """The backfill rehearsal on `rows` rows (default 10,000; --quick 1,000) in the first
    `subsets` of the plan (default all 22); gives up waiting after `timeout_s` (then measures
    what ran, and says so)."""
    import shutil

    import boto3
    import yaml

    from bench import machine, rehearsal_endpoints
    from bench.rehearsal import PLAN, SourceSpec, write_source
    from mmfr_assets.llm.resource import ROLES
    from mmfr_assets_tests.dagster_process import (
        REPO_ROOT, code_server, create_instance_storage, daemon, dagster_env, graphql, s3_server, wait_for_daemons,
        webserver,
    )
    from mmfr_assets_tests.test_object_store import CREDENTIALS, NO_CLOUD
    from mmfr_devkit.fake_server import busy_fraction, start_fake_server

    rows = rows or (1_000 if quick else 10_000)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    info = machine.describe()
    measure = BackfillMeasure(0, 0, machine.now_utc(), machine.load_text(), quick=quick,
                              machine=f"{info['cpus (nproc)']} cores ({info['cpu model']}), {info['ram']}")
    source = out / "source"
    plan = PLAN[:subsets] if subsets else PLAN
    measure.planted = write_source(real_sample, source, SourceSpec(total_rows=rows, unannotated_share=0.5, seed=seed),
                                   plan=plan, log=log)
    rehearsal_endpoints.without_answers(source)
    sizes = source_ids(source)
    measure.rows, measure.subsets = sum(sizes.values()), len(sizes)
    settings = rehearsal_endpoints.server_config(seed, quick)
    for role in ROLES:
        settings["roles"].setdefault(role, dict(rehearsal_endpoints.ROLE_SETTINGS["cleaner_llm"]))
        settings["roles"][role]["capacity"] = rehearsal_endpoints.MAX_CONCURRENCY
    home = out / "home"
    home.mkdir()
    yaml_file = home / "dagster.yaml"
    yaml_file.write_text((REPO_ROOT / "deploy" / "dagster-postgres.yaml").read_text())
    run_config = {**yaml.safe_load(rehearsal_endpoints.RUN_CONFIG), "execution": {"config": {"in_process": {}}}}

    with (postgres_database() as pg, s3_server(out / "moto.log", NO_CLOUD) as s3,
          _environ({**CREDENTIALS, **NO_CLOUD, **{k: v for k, v in pg.items() if not k.startswith("_")}})):
        bucket = f"mmfr-rehearsal-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=s3).create_bucket(Bucket=bucket)
        options = {"AWS_ENDPOINT_URL": s3, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        lake = f"s3://{bucket}/lake"
        server = start_fake_server(settings, in_process=False)
        try:
            endpoints = rehearsal_endpoints.endpoint_env(server.url, out / "unused-cache")
            endpoints["MMFR_LLM_CACHE"] = pg["_url"]
            env = dagster_env(home, source, lake, **{k: v for k, v in pg.items() if not k.startswith("_")},
                              **CREDENTIALS, **NO_CLOUD, **endpoints,
                              MMFR_LAKE_STORAGE_OPTIONS=json.dumps(options), MMFR_SHARDS=str(SHARDS),
                              MMFR_REPORT_DIR=str(out / "report"))
            create_instance_storage(home)
            with (Sampler(home, {server.pid, *_listening(s3)}) as sampler,
                  code_server(env, out / "code-server.log", out / "workspace.yaml") as workspace,
                  webserver(env, out / "webserver.log", workspace=workspace) as url,
                  daemon(env, out / "daemon.log", workspace=workspace) as daemon_process):
                wait_for_daemons(url, daemon_process, out / "daemon.log", timeout=900)
                nodes = graphql(url, ALL_ASSETS)["assetNodes"]
                for pool in sorted({p for n in nodes for p in n["pools"]}):
                    graphql(url, SET_POOL_LIMIT, {"pool": pool, "limit": POOL_LIMIT})
                assets = [n["assetKey"]["path"] for n in nodes]
                launched_at = time.time()
                postgres_before = postgres_cpu_seconds()
                result = graphql(url, """
                    mutation Launch($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                      __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                    {"p": {"assetSelection": [{"path": p} for p in assets], "allPartitions": True,
                           "fromFailure": False, "title": "rehearsal: materialize all, all partitions",
                           "tags": [{"key": "dagster/from_ui", "value": "true"}], "runConfigData": run_config}})
                launched = result["launchPartitionBackfill"]
                if launched["__typename"] != "LaunchBackfillSuccess":
                    raise RuntimeError(f"backfill not launched: {launched}")
                backfill_id = launched["backfillId"]
                log(f"rehearsal backfill {backfill_id}: {len(assets)} assets x all partitions of "
                    f"{measure.subsets} subsets (MMFR_SHARDS={SHARDS})")
                measure.status = _wait(home, backfill_id, timeout_s, log)
                measure.wall_s = time.time() - launched_at
                measure.load_after = machine.load_text()
                if postgres_before is not None and (postgres_after := postgres_cpu_seconds()) is not None:
                    measure.postgres_cpu_s = postgres_after - postgres_before
                measure.pages = _attempt(measure, "asset pages", lambda: page_load_seconds(
                    url, ["collected", "teacher_responses", "quality_filtered", "rl_selected", "report"]), {})
            stats = server.stats(detail=True)
        finally:
            server.stop()
        # Each measure on its own: one that fails is recorded as such, the others still taken.
        measure.runs, measure.windows = _attempt(measure, "runs", lambda: run_records(home, backfill_id), ([], {}))
        measure.server = stats["by_role"]
        measure.repeats = repeated_requests(stats["by_request"])
        measure.busy = {role: busy_fraction(s.get("served_seconds", 0.0), rehearsal_endpoints.MAX_CONCURRENCY,
                                            measure.wall_s) for role, s in stats["by_role"].items()}
        measure.steps = _attempt(measure, "step metadata", lambda: rehearsal_endpoints.step_metadata(home, source, lake), {})
        measure.lake = _attempt(measure, "lake size", lambda: lake_bytes_s3(s3, bucket), {})
        measure.report = _attempt(measure, "report", lambda: report_load(s3, bucket), {})
        measure.pool_waits = _attempt(measure, "pool waits", lambda: pool_waits(out / "daemon.log"), {})
        measure.s3_requests = _attempt(measure, "S3 requests", lambda: s3_requests(out / "moto.log"), {})
        measure.accounted = _attempt(measure, "accounting", lambda: accounting(
            lake, options, sizes, complete_subsets(measure.runs, sorted(sizes))), {})
    (out / "tracks.json").write_text(json.dumps([asdict(t) for t in sampler.tracks.values() if t.kind != IGNORED]))
    _attempt(measure, "run processes", lambda: _processes(measure, sampler), None)
    (out / "measure.json").write_text(json.dumps(asdict(measure), default=str))
    log(f"rehearsal backfill: {measure.status} in {measure.wall_s:,.0f} s, {len(measure.runs)} runs, "
        f"{len(measure.processes)} run processes, peak RSS {max((p['peak_mb'] for p in measure.processes), default=0):,.0f} MB")
    return measure


def _attempt(measure: "BackfillMeasure", what: str, measure_it, default):
    """`measure_it()`, or `default` with the error recorded in `measure.errors`."""
    import traceback

    try:
        return measure_it()
    except Exception as error:  # noqa: BLE001 - recorded and rendered, the other measures still taken
        measure.errors.append(f"{what}: {type(error).__name__}: {str(error)[:300]}")
        traceback.print_exc()
        return default


def _listening(endpoint: str) -> set[int]:
    """The pids of the moto server serving `endpoint` (its command line names the port)."""
    port = endpoint.rsplit(":", 1)[1].encode()
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if any(b"moto_server" in part for part in cmdline) and port in cmdline:
            found.add(int(entry.name))
    return found


def _wait(home: Path, backfill_id: str, timeout_s: float | None, log) -> str:
    """The backfill's final status (or `timed out` after `timeout_s`, the backfill canceled),
    logging the runs' progress every minute."""
    import dagster as dg

    deadline = time.monotonic() + timeout_s if timeout_s else None
    next_log = 0.0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            backfill = instance.get_backfill(backfill_id)
            status = backfill.status.value
            if status not in ("REQUESTED", "CANCELING"):
                return status
            if time.monotonic() > next_log:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                counts: dict[str, int] = defaultdict(int)
                for r in runs:
                    counts[r.status.value] += 1
                log(f"  {time.strftime('%H:%M:%S')} backfill {status}: {dict(counts)}")
                next_log = time.monotonic() + 60
            if deadline is not None and time.monotonic() > deadline:
                from dagster._core.execution.backfill import BulkActionStatus

                # Canceled as the UI cancels it; the daemon then cancels its runs in flight (up
                # to 5 minutes' wait), so none is cut off when the bench stops the daemon.
                instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
                until = time.monotonic() + 300
                while instance.get_backfill(backfill_id).status.value == "CANCELING" and time.monotonic() < until:
                    time.sleep(5)
                return "timed out (canceled)"
            time.sleep(5)


def _processes(measure: BackfillMeasure, sampler: Sampler) -> None:
    """Per run worker: its run, peak RSS, CPU; CPU and peak RSS per step over all of them."""
    by_run = {r["id"]: r for r in measure.runs}
    for track in sampler.runs():  # its run: the run whose worker pid it is, started while it lived
        track.run_id = next((r["id"] for r in measure.runs if r["pid"] == track.pid and r["started"]
                             and track.first_seen - 5 <= r["started"] <= track.last_seen + 5), None)
    step_cpu: dict[str, float] = defaultdict(float)
    step_peak: dict[str, float] = defaultdict(float)
    for track in sampler.runs():
        windows = measure.windows.get(track.run_id, [])
        charged = charge_cpu(track.cpu, windows)
        for step, cpu in charged.items():
            step_cpu[step] += cpu
        for step in {s for _, _, s in windows}:
            step_peak[step] = max(step_peak[step], track.peak_rss_mb)  # the process's peak while it ran that run
        run_record = by_run.get(track.run_id, {})
        measure.processes.append({"run": track.run_id, "partition": run_record.get("partition"),
                                  "assets": run_record.get("assets", []), "peak_mb": track.peak_rss_mb,
                                  "cpu_s": track.cpu[-1][1] if track.cpu else 0.0,
                                  "seconds": track.last_seen - track.first_seen, "charged": charged})
    measure.step_cpu, measure.step_peak_mb = dict(step_cpu), dict(step_peak)
    for track in sampler.tracks.values():
        if track.kind in ("run", IGNORED):
            continue
        item = measure.infrastructure.setdefault(track.kind, {"processes": 0, "peak_mb": 0.0, "cpu_s": 0.0})
        item["processes"] += 1
        item["peak_mb"] = max(item["peak_mb"], track.peak_rss_mb)
        if track.cpu and track.kind != "run child":  # a run child's CPU is in its worker's (reaped)
            # started before the sampler (S3 server, endpoints): only what they used during it
            item["cpu_s"] += track.cpu[-1][1] - (track.cpu[0][1] if track.pid in sampler.pids else 0.0)


# -- the results section ----------------------------------------------------------------------


def _per_run_fixed_cost(measure: BackfillMeasure) -> dict[str, dict]:
    """Per run: wall seconds outside its steps (worker start, code load, run end) and the CPU
    seconds its worker spent outside its steps; and the queue wait (created -> started)."""
    outside_wall, outside_cpu, waited, in_run = [], [], [], []
    for r in measure.runs:
        if r["started"] and r["ended"]:
            steps = sum(end - start for start, end, _ in measure.windows.get(r["id"], []))
            outside_wall.append(r["ended"] - r["started"] - steps)
            in_run.append(r["ended"] - r["started"])
        if r["started"]:
            waited.append(r["started"] - r["created"])
    steps_of = {run: sum(end - start for start, end, _ in spans) for run, spans in measure.windows.items()}
    alive = []  # the worker's life (spawned, imports, code loaded, run, exit) outside its run's steps
    for p in measure.processes:
        outside_cpu.append(p["charged"].get("(run overhead)", 0.0))
        if p["run"]:
            alive.append(p["seconds"] - steps_of.get(p["run"], 0.0))
    return {"wall outside steps, s": distribution(outside_wall), "CPU outside steps, s": distribution(outside_cpu),
            "worker alive outside steps, s": distribution(alive),
            "run wall (start to end), s": distribution(in_run), "waited in the queue, s": distribution(waited)}


def render(measure: BackfillMeasure) -> list[str]:
    from bench.rehearsal import lake_table
    from bench.rehearsal_endpoints import MAX_CONCURRENCY, ROLE_SETTINGS

    per_k = measure.rows / 1000 if measure.rows else 1
    peaks = [p["peak_mb"] for p in measure.processes]
    run_cpu = sum(p["cpu_s"] for p in measure.processes)
    statuses: dict[str, int] = defaultdict(int)
    for r in measure.runs:
        statuses[r["status"]] += 1
    fixed = _per_run_fixed_cost(measure)
    step_wall: dict[str, float] = defaultdict(float)
    step_runs: dict[str, int] = defaultdict(int)
    for spans in measure.windows.values():
        for start, end, step in spans:
            step_wall[step] += end - start
            step_runs[step] += 1
    # The report's folder (viewer pages and images) is bounded by rows per subset x stage, not by
    # the rows: given apart, not per 1,000 rows.
    from mmfr_assets.reporting.publish import REPORT_PREFIX as REPORT_FOLDER

    tables = {t: b for t, b in measure.lake.items() if t != REPORT_FOLDER}
    lake_total = sum(tables.values())
    rep = measure.repeats
    lines = [
        "## Rehearsal through the daemon (issue 34, second part)",
        "",
        f"Measured {measure.started} on {measure.machine} (load {measure.load_before} at the start, "
        f"{measure.load_after} at the end). `python -m bench --only rehearsal_backfill"
        f"{' --quick' if measure.quick else ''}` (`bench/rehearsal_backfill.py`): the rehearsal's source, "
        f"{measure.rows:,} rows in {measure.subsets} subsets (the paper's proportions, "
        f"{len(measure.planted.get('duplicates', []))} planted cross-subset near-duplicates, "
        f"{measure.planted.get('unannotated', 0)} rows without annotations), `question_reviews` "
        f"reviewing every question; PostgreSQL instance storage (`deploy/dagster-postgres.yaml`) and "
        f"response cache, the lake on the S3 server the tests use (moto), every role on the fake "
        f"server (the rehearsal's per-role faults, lognormal latency, trace lengths; each role an "
        f"endpoint of {MAX_CONCURRENCY} slots, `MMFR_<ROLE>_MAX_CONCURRENCY={MAX_CONCURRENCY}`, every "
        f"pool's limit {POOL_LIMIT}), `MMFR_SHARDS={SHARDS}`, one code server "
        f"(`dagster code-server start`, a `grpc_server` workspace entry) with `dagster-webserver` + "
        f"`dagster-daemon` on it and the repo's instance settings (4 runs at once, 3 per backfill), and one backfill "
        f"launched as the UI's *Materialize all* with all partitions (`launchPartitionBackfill`, "
        f"every asset, `allPartitions`, each run's steps in its worker: `in_process`).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| backfill | {measure.status} |",
        f"| wall time (launch to the backfill's end) | {measure.wall_s:,.0f} s |",
        f"| runs | {len(measure.runs)} ({', '.join(f'{s} {n}' for s, n in sorted(statuses.items()))}) |",
        f"| run worker processes sampled | {len(measure.processes)} |",
        f"| CPU seconds per 1,000 rows (all run workers) | {run_cpu / per_k:,.1f} |",
        f"| CPU seconds per 1,000 rows (webserver, daemon, code servers, S3, endpoints) | "
        f"{sum(i['cpu_s'] for i in measure.infrastructure.values()) / per_k:,.1f} |",
        f"| peak RSS of a run process: max / p90 / median / min | "
        + " / ".join(f"{distribution(peaks)[k]:,.0f}" for k in ("max", "p90", "median", "min")) + " MB |",
        f"| lake bytes per 1,000 rows (its tables) | {lake_total / per_k / 1e6:,.2f} MB |",
        f"| the report's folder (`lake/{REPORT_FOLDER}`: viewer pages, plots) | "
        f"{measure.lake.get(REPORT_FOLDER, 0) / 1e6:,.1f} MB |",
        f"| per run: wall outside its steps, RUN_START to RUN_SUCCESS, median (p90) | {fixed['wall outside steps, s']['median']:,.1f} s "
        f"({fixed['wall outside steps, s']['p90']:,.1f}) |",
        f"| per run: its worker process alive outside the steps (spawn, imports, code load, run start and end), "
        f"median (p90) | {fixed['worker alive outside steps, s']['median']:,.1f} s "
        f"({fixed['worker alive outside steps, s']['p90']:,.1f}) |",
        f"| per run: CPU outside its steps, median (p90) | {fixed['CPU outside steps, s']['median']:,.1f} s "
        f"({fixed['CPU outside steps, s']['p90']:,.1f}) |",
        f"| per run: wall start to end, median (p90) | {fixed['run wall (start to end), s']['median']:,.1f} s "
        f"({fixed['run wall (start to end), s']['p90']:,.1f}) |",
        f"| waited in the queue (created to started): median / p90 / max, sum | "
        f"{fixed['waited in the queue, s']['median']:,.0f} / {fixed['waited in the queue, s']['p90']:,.0f} / "
        f"{fixed['waited in the queue, s']['max']:,.0f} s, "
        f"{sum(r['started'] - r['created'] for r in measure.runs if r['started']):,.0f} s |",
        "",
        "Per step (summed over its runs; CPU charged from the workers' samples every "
        f"{SAMPLE_S} s; peak = the largest peak RSS of a worker whose run held that step):",
        "",
        "| step | runs | wall s | wall s per 1,000 rows | CPU s per 1,000 rows | peak RSS of its runs' workers, MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step, wall in sorted(step_wall.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {step} | {step_runs[step]} | {wall:,.0f} | {wall / per_k:,.1f} | "
                     f"{measure.step_cpu.get(step, 0.0) / per_k:,.1f} | {measure.step_peak_mb.get(step, 0.0):,.0f} |")
    lines.append(f"| (run overhead: outside every step) | {len(measure.runs)} | - | - | "
                 f"{measure.step_cpu.get('(run overhead)', 0.0) / per_k:,.1f} | - |")
    lines += [
        "",
        "Per role: the server's counters (requests, faults, completion tokens, busy fraction = "
        "seconds served holding a slot / (slots x the backfill's wall time)) and the steps' "
        "metadata (rows sent, asked again, failed, requests per row):",
        "",
        "| role | requests | faults | rows sent | requests per row sent | completion tokens per row sent | asked again per row sent | failed | busy fraction |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role in ROLE_SETTINGS:
        served = measure.server.get(role, {"requests": 0, "faults": {}, "completion_tokens": 0})
        step = measure.steps.get(role, {})
        sent = step.get("rows_sent", 0)
        per = (lambda v: f"{v / sent:,.2f}") if sent else (lambda v: "-")
        faults = ", ".join(f"{f} {n}" for f, n in sorted(served["faults"].items())) or "none"
        steps = (f"{sent:,.0f} | {per(step.get('llm_requests_sent', 0))} | {per(step.get('llm_completion_tokens', 0))} | "
                 f"{per(step.get('rows_asked_again', 0))} | {step.get('rows_failed', 0):,.0f}") if measure.steps else (
            "not read | - | - | - | -")  # the steps' metadata could not be read (measure.errors)
        lines.append(f"| {role} | {served['requests']:,} | {faults} | {steps} | {measure.busy.get(role, 0.0):.3f} |")
    lines += [
        "",
        "Runs the queue held back for a full pool (the run coordinator's log: a run's wait is from "
        "the first look that found the pool full to the next look after the last one that did):",
        "",
        "| pool | runs held | seconds held, in all | longest, s |",
        "| --- | ---: | ---: | ---: |",
        *([f"| {pool} | {w['runs']:,} | {w['seconds']:,.0f} | {w['longest']:,.0f} |"
           for pool, w in sorted(measure.pool_waits.items())] or ["| (none) | 0 | 0 | 0 |"]),
        "",
        f"Requests the S3 server answered: {sum(measure.s3_requests.values()):,} "
        f"({', '.join(f'{m} {n:,}' for m, n in sorted(measure.s3_requests.items()))}), "
        f"{sum(measure.s3_requests.values()) / max(1, len(measure.runs)):,.0f} per run.",
    ]
    kinds = sorted({p["peak_mb"] // 100 * 100 for p in measure.processes})
    lines += [
        "",
        "Peak RSS of every run process (the workers the daemon's code server launched; `VmHWM`), by 100 MB band:",
        "",
        "| MB | run processes |",
        "| --- | ---: |",
        *[f"| {k:,.0f}-{k + 99:,.0f} | {sum(1 for p in measure.processes if p['peak_mb'] // 100 * 100 == k)} |"
          for k in kinds],
        "",
        "The largest run processes:",
        "",
        "| partition | assets | peak RSS MB | CPU s | seconds |",
        "| --- | --- | ---: | ---: | ---: |",
        *[f"| {(p['partition'] or '(none)').replace('|', chr(92) + '|')} | {', '.join(p['assets'])} | {p['peak_mb']:,.0f} | {p['cpu_s']:,.1f} | {p['seconds']:,.0f} |"
          for p in sorted(measure.processes, key=lambda p: -p["peak_mb"])[:5]],
        "",
        "The other processes (over the backfill):",
        "",
        "| process | count | peak RSS MB | CPU s |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {k} | {v['processes']} | {v['peak_mb']:,.0f} | {v['cpu_s']:,.0f} |" for k, v in sorted(measure.infrastructure.items())],
        f"| PostgreSQL (the cluster: instance storage and response cache) | - | - | {measure.postgres_cpu_s:,.0f} |"
        if measure.postgres_cpu_s is not None else "| PostgreSQL | not measured (no local postmaster) | - | - |",
        "",
        "The event log's and the report's cost at this size: the UI's asset-page query "
        "(`assetNodeOrError` with the partition statuses, `assetOrError` with the latest 100 "
        "materializations and their metadata), median of 3, and the report page from the object store:",
        "",
        "| page | seconds | bytes |",
        "| --- | ---: | ---: |",
        *[f"| asset `{name}` | {p['seconds']:.2f} | {p['bytes']:,} |" for name, p in measure.pages.items()],
        f"| report `lake/_report/index.html` (GET from S3) | "
        f"{measure.report['seconds']:.3f} | {measure.report['bytes']:,} |" if measure.report.get("seconds") is not None
        else "| report `lake/_report/index.html` | not written | - |",
        "",
        *lake_table(tables, per_k, 3),
        "",
        "Nothing lost, nothing twice:",
        "",
        f"- the lake: {'every source row is in `collected`, and each table of the line holds its input once, kept or in the rejections with its reason (`assert_accounted`)' if not measure.accounted.get('problems') else 'NOT HELD: ' + '; '.join(measure.accounted['problems'][:5])}"
        f" (the line checked on the {len(measure.accounted.get('subsets', []))} subsets whose every shard ran it: "
        f"{', '.join(measure.accounted.get('subsets', [])) or 'none'}); "
        f"{measure.accounted.get('rejections', 0):,} rejections in those.",
        f"- the endpoints: {rep.get('bodies', 0):,} distinct request bodies, {rep.get('received_again', 0):,} received "
        f"more than once, {rep.get('received_again_not_after_a_fault', 0):,} of them other than after a fault, "
        f"**{rep.get('paid_twice', 0):,} answered usably twice** (paid twice).",
        *([f"- not measured: {e}" for e in measure.errors]),
        "",
    ]
    return lines
