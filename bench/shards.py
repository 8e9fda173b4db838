"""One subset over several step processes when the endpoint is the limit (issue 19).

`teacher_responses` as users run it (`dagster asset materialize --select teacher_responses
--partition P`, in-process executor, one subprocess per run, `bench/lake.py`) against fake
teachers (`mmfr_devkit/fake_server.py`, each in its own process) whose capacity is the
limit: each serves `capacity` requests at once with heavy-tailed (lognormal) latency and queues
the rest in arrival order, as vLLM's waiting queue holds requests beyond `max_num_seqs` (a
queue rather than 429s: the client would retry a 429 after a backoff, which measures the
backoff, not the bound). So an endpoint's capacity is `capacity / mean latency` requests per
second, and the share of it a case used is the server's busy slot-seconds (latency slept
holding a slot) over `capacity × window`.

Three cases over the same number of rows, `MMFR_COT_TEACHER_MAX_CONCURRENCY` = the endpoint's
capacity (its total) in each, and a bench instance per case whose `cot_teacher` pool limit is
the number of processes (`dagster instance concurrency set`, done through the instance API):

- **1 process**: one subset of N rows on a lake with one shard (`MMFR_SHARDS=1`), pool limit
  1: the step keeps `capacity` in flight.
- **4 processes, 1 endpoint**: the same subset on a lake with `MMFR_SHARDS=4` (its rows in four
  shards by the hash of their id, ~N/4 each), its four shard runs (`0|whole` ... `3|whole`)
  launched at once, pool limit 4: each step reads the limit and keeps `capacity // 4` in flight
  (`mmfr_assets/llm/bound.py`). Run at the same time as the 1-process case (each on its own
  endpoint), so both see the same machine.
- **4 processes, 4 endpoints**: the same four shard runs with four comma-separated base URLs
  (one fake server each, same capacity), pool limit 4: the four shards keep `capacity` each on four different URLs.

Run alone: `python -m bench --only shards [--quick]`.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.lake import Lake, Run
from bench.machine import load_text, now_utc
from bench.model_step import ASSET, ROLE, build_lake
from mmfr_devkit.fake_server import start_fake_server

PROCESSES = 4
SIGMA = 1.2
UTILIZATION_GOAL = 0.95
SPEEDUP_GOAL = 3.6
MEMORY_GOAL = 1.15
PER_STEP_LINE = re.compile(rf"{ROLE} (\d+) requests in flight \((.*)\)")


@dataclass(frozen=True)
class Setup:
    rows: int
    capacity: int  # requests one endpoint serves at once (and max_concurrency, its total)
    latency_s: float  # mean of the lognormal

    @property
    def server_config(self) -> dict:
        # "answer": "A" makes every trace pass the teacher's answer check: one request per row.
        return {"latency_s": self.latency_s, "latency_sigma": SIGMA, "capacity": self.capacity,
                "answer": "A"}

    @property
    def capacity_rate(self) -> float:
        return self.capacity / self.latency_s


def setup_for(quick: bool) -> Setup:
    return Setup(rows=800, capacity=8, latency_s=0.05) if quick else Setup(40_000, 16, 0.2)


def shard_keys(subset: str, shards: int) -> list[str]:
    """The partition keys of a subset's shards (`dagster asset materialize --partition`)."""
    return [f"{k}|{subset}" for k in range(shards)]


@dataclass(frozen=True)
class Step:
    """One `dagster asset materialize` run as it went."""

    partition: str
    run: Run
    per_step: int
    derivation: str


@dataclass(frozen=True)
class Case:
    label: str
    processes: int
    endpoints: int
    rows: int
    steps: list[Step]
    served: list[dict]  # each endpoint's /admin/stats
    capacity: int

    @property
    def window(self) -> float:
        """First request received by any endpoint -> last completion sent by any."""
        first = min(s["first_request_at"] for s in self.served)
        last = max(s["last_completion_at"] for s in self.served)
        return last - first

    @property
    def completed(self) -> int:
        return sum(s["completed"] for s in self.served)

    @property
    def rate(self) -> float:
        return self.completed / self.window

    @property
    def utilization(self) -> float:
        """Busy slot-seconds over what the endpoints could have served in the window."""
        return sum(s["served_seconds"] for s in self.served) / (self.capacity * self.endpoints * self.window)

    @property
    def max_in_flight(self) -> int:
        return max(s["max_in_flight"] for s in self.served)

    @property
    def peak_rss_mb(self) -> float:
        return statistics.median(s.run.max_rss_mb or 0 for s in self.steps)


@dataclass
class Result:
    setup: Setup
    one: Case
    shared: Case
    spread: Case
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    date: str


class CaseLake(Lake):
    """The bench lake with a Dagster instance of its own (its pool limit) and the teacher's env."""

    def __init__(self, lake: Lake, home: Path, pool_limit: int, env: dict[str, str]) -> None:
        super().__init__(lake.root, lake.source)
        self.home = home.absolute()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.extra = env
        set_pool_limit(self.home, ROLE, pool_limit)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


def set_pool_limit(home: Path, pool: str, limit: int) -> None:
    """`dagster instance concurrency set <pool> <limit>` on the instance at `home`."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    finally:
        instance.dispose()


def _step(lake: CaseLake, partition: str) -> Step:
    run = lake.materialize(ASSET, partition, measure=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{ASSET}-{partition}")  # as Lake.materialize names it
    log = (lake.logs / f"{name}.log").read_text(errors="replace")
    match = PER_STEP_LINE.search(log)
    if match is None:
        raise RuntimeError(f"{partition}: the step logged no per-step concurrency")
    return Step(partition, run, int(match.group(1)), match.group(2))


def _start(setup: Setup, n: int) -> list:
    servers = [start_fake_server({}, in_process=False) for _ in range(n)]
    for server in servers:
        server.configure(**setup.server_config)
    return servers


def _case_env(servers, setup: Setup, cache: Path, shards: int) -> dict[str, str]:
    prefix = f"MMFR_{ROLE.upper()}_"
    return {prefix + "BASE_URL": ",".join(s.url for s in servers), "MMFR_SHARDS": str(shards),
            prefix + "MAX_CONCURRENCY": str(setup.capacity), "MMFR_LLM_CACHE": str(cache)}


def run(root: Path, *, quick: bool = False, setup: Setup | None = None,
        log: Callable[..., None] = print) -> Result:
    setup = setup or setup_for(quick)
    whole = f"whole-{setup.rows}"
    parts = shard_keys(whole, PROCESSES)
    log(f"shards: building a subset of {setup.rows:,} rows on a 1-shard lake and on a {PROCESSES}-shard lake")
    lake = build_lake(root / "one-shard", [setup.rows], names=[whole])
    sharded = build_lake(root / f"{PROCESSES}-shards", [setup.rows], names=[whole], shards=PROCESSES)
    load_before = os.getloadavg()
    servers: list = []
    try:
        with tempfile.TemporaryDirectory(dir=root) as caches, ThreadPoolExecutor(2 * PROCESSES) as pool:
            cache = Path(caches)
            # 1 process and 4 processes on one endpoint each, at the same time
            one_server, shared_server = _start(setup, 2)
            servers += [one_server, shared_server]
            one_lake = CaseLake(lake, root / "home-one", 1, _case_env([one_server], setup, cache / "one.sqlite", 1))
            shared_lake = CaseLake(sharded, root / "home-shared", PROCESSES,
                                   _case_env([shared_server], setup, cache / "shared.sqlite", PROCESSES))
            futures = [pool.submit(_step, one_lake, whole),
                       *(pool.submit(_step, shared_lake, p) for p in parts)]
            steps = [f.result() for f in futures]
            one = Case("1 process, 1 endpoint", 1, 1, setup.rows, steps[:1], [one_server.stats()], setup.capacity)
            shared = Case(f"{PROCESSES} processes at once, 1 endpoint", PROCESSES, 1, setup.rows, steps[1:],
                          [shared_server.stats()], setup.capacity)
            for case in (one, shared):
                log(f"  {case.label}: {case.rate:.1f} rows/s, {case.utilization:.3f} of capacity, "
                    f"per step {[s.per_step for s in case.steps]}, max in flight {case.max_in_flight}")
            # 4 processes on 4 endpoints
            spread_servers = _start(setup, PROCESSES)
            servers += spread_servers
            spread_lake = CaseLake(sharded, root / "home-spread", PROCESSES,
                                   _case_env(spread_servers, setup, cache / "spread.sqlite", PROCESSES))
            steps = [f.result() for f in [pool.submit(_step, spread_lake, p) for p in parts]]
            spread = Case(f"{PROCESSES} processes at once, {PROCESSES} endpoints", PROCESSES, PROCESSES,
                          setup.rows, steps, [s.stats() for s in spread_servers], setup.capacity)
            log(f"  {spread.label}: {spread.rate:.1f} rows/s ({spread.rate / one.rate:.2f}× one), "
                f"{spread.utilization:.3f} of capacity")
    finally:
        for server in servers:
            server.stop()
    for case in (one, shared, spread):
        if case.completed != case.rows or any(s["requests"] != s["completed"] for s in case.served):
            raise RuntimeError(f"{case.label}: {case.completed} of {case.rows} rows answered "
                               f"({[s['requests'] for s in case.served]} requests)")
    if any(s["requests"] == 0 for s in spread.served):
        raise RuntimeError("an endpoint of the spread case got no request: URLs not spread")
    return Result(setup, one, shared, spread, load_before, os.getloadavg(), now_utc())


def shard_rows(result: Result) -> list[int]:
    """Rows each shard run answered (its endpoint's completions in the 4-endpoint case)."""
    return [s["completed"] for s in result.spread.served]


def _goal(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(result: Result) -> list[str]:
    s, one, shared, spread = result.setup, result.one, result.shared, result.spread
    speedup = spread.rate / one.rate
    memory = one.peak_rss_mb / shared.peak_rss_mb if shared.peak_rss_mb else 0.0
    lines = [
        "## Shards: one subset over several step processes, the endpoint the limit (issue 19)",
        "",
        f"`teacher_responses` materialized as users run it (`dagster asset materialize --select "
        f"teacher_responses --partition P`, in-process executor, one subprocess per run) over "
        f"{s.rows:,} rows that all need a trace (text only), against fake teachers in their own "
        f"processes that serve {s.capacity} requests at once each with lognormal latency (mean "
        f"{s.latency_s:g} s, σ {SIGMA:g}) and queue the rest in arrival order (as vLLM queues "
        f"requests beyond `max_num_seqs`): an endpoint's capacity is {s.capacity} / {s.latency_s:g} s "
        f"= {s.capacity_rate:.0f} rows/s. `MMFR_COT_TEACHER_MAX_CONCURRENCY` = {s.capacity} (the "
        f"endpoint's total) in every case; each case's instance has the `cot_teacher` pool limit "
        f"set to its number of processes, and each step derives its share from it at run time "
        f"(`mmfr_assets/llm/bound.py`). Share of capacity = the servers' busy slot-seconds / "
        f"(slots × window), window = first request received → last completion sent over the "
        f"case's endpoints (the processes' start-up is outside it, their uneven starts and ends "
        f"inside). The 1-process and the 4-process-1-endpoint cases ran at the same time (each "
        f"on its own endpoint), then the 4-endpoint case. The {PROCESSES} processes are the "
        f"{PROCESSES} shard runs of the same {s.rows:,}-row subset on a lake with "
        f"`MMFR_SHARDS={PROCESSES}` (rows {', '.join(f'{n:,}' for n in shard_rows(result))} by "
        f"the hash of their id); in the 4-endpoint case each shard uses its own URL.",
        "",
        f"Measured {result.date}. Load average (1/5/15 min) before: {load_text(result.load_before)}; "
        f"after: {load_text(result.load_after)} (2 shared cores).",
        "",
        "| case | pool limit | in flight per step (from its log) | rows/s | share of capacity | max in flight at an endpoint | window | peak RSS per run (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in (one, shared, spread):
        per_step = sorted({st.per_step for st in case.steps})
        lines.append(
            f"| {case.label} | {case.processes} | {', '.join(map(str, per_step))} | {case.rate:.1f} | "
            f"**{case.utilization:.3f}** | {case.max_in_flight} | {case.window:.1f} s | "
            f"{case.peak_rss_mb:,.0f} MB |")
    lines += [
        "",
        f"How a step derived its share (its log line): 1 process: “{one.steps[0].derivation}”; "
        f"4 processes, 1 endpoint: “{shared.steps[0].derivation}”; 4 endpoints: "
        f"“{spread.steps[0].derivation}”.",
        "",
        f"Goals: 4 processes on one endpoint ≥ {UTILIZATION_GOAL} of its capacity, as 1 process: "
        f"{_goal(shared.utilization >= UTILIZATION_GOAL and one.utilization >= UTILIZATION_GOAL)} "
        f"({shared.utilization:.3f} and {one.utilization:.3f}; the endpoint never saw more than "
        f"{shared.max_in_flight} of its total {s.capacity}); 4 endpoints ≥ {SPEEDUP_GOAL}× the rows/s "
        f"of 1: {_goal(speedup >= SPEEDUP_GOAL)} ({speedup:.2f}×); peak memory per run flat in "
        f"the subset's size ({s.rows:,}-row run vs ~{s.rows // PROCESSES:,}-row shard runs, goal ≤ "
        f"{MEMORY_GOAL}×): {_goal(0 < memory <= MEMORY_GOAL)} ({memory:.2f}×).",
    ]
    return lines
