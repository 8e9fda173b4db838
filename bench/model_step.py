"""Model steps keep the endpoint busy (issue 8): `teacher_responses` as users run it, against a
bare streaming client on the same fake server, side by side.

- The asset: `dagster asset materialize --select teacher_responses` (a subprocess, in-process
  executor, like `bench/lake.py` runs every stage) over a partition whose N `cleaned` rows all
  lack a trace, with `MMFR_COT_TEACHER_BASE_URL` at the fake server, max_concurrency C and a
  fresh response cache per run. A subprocess rather than `dg.materialize` in this process: it
  is what an operator (and the daemon's run worker) runs, its peak RSS is the step's alone
  (`/usr/bin/time -v`), and nothing of the benchmark's own process competes with it.
- The bare client: asyncio + aiohttp, C workers each sending its next request as soon as its
  last reply is read (exactly C in flight), posting the bodies the asset sends (built with the
  same `CotTeacher.render`, `LLMEndpoint.request` and `build_body`; the server's per-prompt
  digests are compared to prove it) and decoding each JSON reply. aiohttp with no SDK on top is
  the cheapest client there is, so it is the strictest baseline.
- The rate is measured the same way for both, by the server (a separate process): completions
  over the wall time from its first request received to its last completion sent
  (`/admin/stats`: `first_request_at`, `last_completion_at`). The asset's start-up (loading the
  code location, reading the partition) is outside that window; its drain at the end is inside,
  as the bare client's is.

Rows are text only (no image in `collected` or `cleaned`): both clients then send identical
bodies and no image encoding weighs on either side.

Run alone: `python -m bench --only model_step [--quick]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pyarrow as pa

from bench.lake import Lake, Run
from bench.machine import load_text, now_utc
from mmfr_assets.cleaning.assets import CLEANED_SCHEMA
from mmfr_assets.collection.assets import COLLECTED_SCHEMA
from mmfr_assets.dedup.assets import DEDUPLICATED_SCHEMA
from mmfr_assets.distillation.teachers import CotTeacher, CotTeacherConfig
from mmfr_assets.lake.delta import DeltaLocation
from mmfr_assets.lake.shards import open_writer
from mmfr_assets.llm.client import build_body
from mmfr_devkit.fake_server import prompt_digest, start_fake_server
from mmfr_assets.llm.resource import endpoint_class_for_role
from mmfr_assets.prompts import load_prompt
from mmfr_devkit.sample import write_sample

ASSET = CotTeacher.asset
ROLE = CotTeacher.role
GOAL = 0.95  # of the bare client's rate (issue 8)
MEAN_LATENCY_S = 0.2
HEAVY_SIGMA = 1.2
MEMORY_FACTOR = 4
WRITE_ROWS = 4096  # rows per parquet row group when building the partitions


@dataclass(frozen=True)
class Case:
    latency: str  # "constant" | "lognormal"
    concurrency: int
    rows: int

    @property
    def server_config(self) -> dict:
        # The teacher's answer check compares each trace with the row's reference ("A"): the
        # fake teacher answers "A", so every row passes at its first attempt and both clients
        # send one request per row.
        config = {"latency_s": MEAN_LATENCY_S, "answer": "A"}
        if self.latency == "lognormal":
            config["latency_sigma"] = HEAVY_SIGMA
        return config

    @property
    def label(self) -> str:
        if self.latency == "lognormal":
            return f"lognormal (mean {MEAN_LATENCY_S:g} s, σ {HEAVY_SIGMA:g})"
        return f"constant {MEAN_LATENCY_S:g} s"


@dataclass(frozen=True)
class Served:
    """What the server saw of one run."""

    requests: int
    completed: int
    seconds: float  # first request received -> last completion sent
    max_in_flight: int
    in_flight_seconds: float
    prompts: frozenset[str] = field(repr=False)

    @property
    def mean_in_flight(self) -> float:
        return self.in_flight_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Measured:
    case: Case
    bare: list[Served]
    asset: list[Served]
    asset_runs: list[Run]

    @staticmethod
    def _median(runs: list[Served]) -> float:
        return statistics.median(r.rate for r in runs)

    @property
    def bare_rate(self) -> float:
        return self._median(self.bare)

    @property
    def asset_rate(self) -> float:
        return self._median(self.asset)

    @property
    def ratio(self) -> float:
        return self.asset_rate / self.bare_rate


@dataclass(frozen=True)
class Memory:
    case: Case
    rows: int
    run: Run
    served: Served


@dataclass
class Result:
    cases: list[Measured]
    memory: list[Memory]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    date: str = ""

    @property
    def met(self) -> bool:
        return all(m.ratio >= GOAL for m in self.cases)


# -- data ----------------------------------------------------------------------


def partition_name(rows: int) -> str:
    return f"step-{rows}"


def question(subset: str, i: int) -> str:
    """A distinct, short, text-only question per row (the prompt digest differs per row)."""
    a, b = 3 + i % 97, 5 + (i * 7) % 89
    return (f"[{subset} #{i}] A rectangle has sides {a} cm and {b} cm. What is its area? "
            f"Options: A) {a * b} B) {a + b} C) {2 * (a + b)} D) {a * b + 1}")


def _rows(schema: pa.Schema, subset: str, start: int, stop: int) -> pa.Table:
    """Rows `start..stop` of a partition: subset, id and question set, every other column null
    (no trace, no caption, no image)."""
    n = stop - start
    columns = {
        "subset": pa.array([subset] * n, pa.string()),
        "id": pa.array([f"{subset}-{i:07d}" for i in range(start, stop)], pa.string()),
        "question": pa.array([question(subset, i) for i in range(start, stop)], pa.string()),
        "original_question": pa.array([question(subset, i) for i in range(start, stop)], pa.string()),
        "answer": pa.array(["A"] * n, pa.string()),
    }
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema}, schema=schema)


def build_lake(root: Path, sizes: Sequence[int], names: Sequence[str] | None = None,
               shards: int = 1) -> Lake:
    """A source whose subsets are the partitions (one row each: only their names matter), and
    `collected`, `cleaned` and `deduplicated` partitions of `sizes` rows written straight into
    the lake (the teacher reads `deduplicated`); named `names` (default `step-<rows>`); with
    `shards` > 1 each subset's rows are written into its shards, as `collected` does with
    MMFR_SHARDS (the runs then need MMFR_SHARDS=`shards`)."""
    subsets = list(names) if names is not None else [partition_name(n) for n in sizes]
    source = write_sample(root / "source", subsets=subsets, rows_per_subset=1, image_size=32)
    lake = Lake(root, source)
    for table, schema in (("collected", COLLECTED_SCHEMA), ("cleaned", CLEANED_SCHEMA),
                          ("deduplicated", DEDUPLICATED_SCHEMA)):  # no duplicates: all rows
        location = DeltaLocation(f"{lake.lake}/{table}")
        for n, subset in zip(sizes, subsets):
            with open_writer(location, schema, subset, shards=shards) as writer:
                for start in range(0, n, WRITE_ROWS):
                    writer.write(_rows(schema, subset, start, min(n, start + WRITE_ROWS)))
                writer.commit()
    return lake


class StepLake(Lake):
    """`Lake` with the teacher's endpoint and a response cache in the environment."""

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake.root, lake.source)
        self.extra: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


# -- the two clients -------------------------------------------------------------


def request_bodies(subset: str, rows: int, url: str, concurrency: int) -> list[dict]:
    """The bodies the asset sends for the partition's rows: the same endpoint resource (from
    the same environment variables), prompt, `render`, `request` and `build_body`."""
    endpoint = endpoint_class_for_role(ROLE, {
        f"MMFR_{ROLE.upper()}_BASE_URL": url, f"MMFR_{ROLE.upper()}_MAX_CONCURRENCY": str(concurrency),
    })()
    settings = endpoint.settings()
    step = CotTeacher(CotTeacherConfig())
    prompt = load_prompt(step.prompt)
    bodies = []
    for i in range(rows):
        row = {"subset": subset, "id": f"{subset}-{i:07d}", "question": question(subset, i),
               step.dataset_column: None}
        text = step.render(row, prompt)
        bodies.append(build_body(settings, endpoint.request(text, system=prompt.system or None)))
    return bodies


async def _bare(url: str, bodies: Sequence[dict], concurrency: int) -> int:
    todo = iter(bodies)
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for body in todo:  # one shared iterator: each worker takes the next body
            async with session.post(f"{url}/chat/completions", json=body) as response:
                reply = await response.json()
                if response.status == 200 and reply.get("choices"):
                    ok += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def bare_client(url: str, bodies: Sequence[dict], concurrency: int) -> int:
    """Send `bodies` keeping exactly `concurrency` in flight; the number answered."""
    return asyncio.run(_bare(url, bodies, concurrency))


def served(server) -> Served:
    stats = server.stats(detail=True)
    first, last = stats["first_request_at"], stats["last_completion_at"]
    return Served(
        requests=stats["requests"], completed=stats["completed"],
        seconds=(last - first) if first is not None and last is not None else 0.0,
        max_in_flight=stats["max_in_flight"], in_flight_seconds=stats["in_flight_seconds"],
        prompts=frozenset(stats["by_prompt"]),
    )


# -- running -------------------------------------------------------------------


def _fresh(server, case: Case) -> None:
    server.reset()  # stats and config back to defaults (the latency RNG re-seeded)
    server.configure(**case.server_config)


def run_asset(lake: StepLake, server, case: Case, rows: int, cache_dir: Path, tag: str) -> tuple[Run, Served]:
    """Materialize `teacher_responses` for the `rows`-row partition through the CLI."""
    _fresh(server, case)
    cache = cache_dir / f"{tag}.sqlite"
    cache.unlink(missing_ok=True)
    prefix = f"MMFR_{ROLE.upper()}_"
    lake.extra = {prefix + "BASE_URL": server.url, prefix + "MAX_CONCURRENCY": str(case.concurrency),
                  "MMFR_LLM_CACHE": str(cache)}
    run = lake.materialize(ASSET, partition_name(rows), measure=True)
    return run, served(server)


def run_bare(server, case: Case, bodies: Sequence[dict]) -> Served:
    _fresh(server, case)
    answered = bare_client(server.url, bodies, case.concurrency)
    if answered != len(bodies):
        raise RuntimeError(f"bare client: {answered} of {len(bodies)} requests answered")
    return served(server)


def cases_for(quick: bool) -> list[Case]:
    rows = {32: 200, 128: 400} if quick else {32: 1_500, 128: 4_000}
    return [Case(latency, c, rows[c]) for latency in ("constant", "lognormal") for c in (32, 128)]


def run(root: Path, *, quick: bool = False, repeats: int | None = None,
        cases: Sequence[Case] | None = None, memory_rows: int | None = None,
        log: Callable[..., None] = print) -> Result:
    """Every case side by side (bare client, then asset, `repeats` times), then the memory
    pair: the heavy-tailed C=128 case's partition and one `MEMORY_FACTOR` times larger."""
    cases = list(cases or cases_for(quick))
    repeats = repeats or (1 if quick else 2)
    memory_case = next((c for c in cases if c.latency == "lognormal" and c.concurrency == 128), cases[-1])
    memory_rows = memory_rows or memory_case.rows
    sizes = sorted({c.rows for c in cases} | {memory_rows, MEMORY_FACTOR * memory_rows})
    load_before = os.getloadavg()
    log(f"model_step: building partitions of {', '.join(f'{n:,}' for n in sizes)} rows")
    lake = StepLake(build_lake(root, sizes))
    server = start_fake_server({}, in_process=False)
    measured: list[Measured] = []
    memory: list[Memory] = []
    with tempfile.TemporaryDirectory(dir=root) as caches:
        cache_dir = Path(caches)
        try:
            for case in cases:
                subset = partition_name(case.rows)
                bodies = request_bodies(subset, case.rows, server.url, case.concurrency)
                expected = frozenset(prompt_digest(b["messages"]) for b in bodies)
                bare, asset, runs = [], [], []
                for k in range(repeats):
                    b = run_bare(server, case, bodies)
                    r, a = run_asset(lake, server, case, case.rows, cache_dir, f"{case.latency}-{case.concurrency}-{k}")
                    for who, s in (("bare client", b), ("asset", a)):
                        if s.prompts != expected:
                            raise RuntimeError(f"{who} sent other prompts than the partition's rows "
                                               f"({len(s.prompts ^ expected)} differ)")
                    bare.append(b)
                    asset.append(a)
                    runs.append(r)
                    log(f"  {case.label}, C={case.concurrency}, {case.rows:,} rows: bare {b.rate:.1f} req/s, "
                        f"asset {a.rate:.1f} req/s ({a.rate / b.rate:.2f}); asset run {r.seconds:.1f} s, "
                        f"peak RSS {r.max_rss_mb or 0:,.0f} MB")
                measured.append(Measured(case, bare, asset, runs))
            for rows in (memory_rows, MEMORY_FACTOR * memory_rows):
                r, a = run_asset(lake, server, memory_case, rows, cache_dir, f"memory-{rows}")
                memory.append(Memory(memory_case, rows, r, a))
                log(f"  memory: {rows:,} rows, {memory_case.label}, C={memory_case.concurrency}: "
                    f"peak RSS {r.max_rss_mb or 0:,.0f} MB, {a.rate:.1f} req/s")
        finally:
            server.stop()
    return Result(measured, memory, load_before, os.getloadavg(), now_utc())


# -- report --------------------------------------------------------------------


def render(result: Result, *, repeats: int) -> list[str]:
    lines = [
        "## Model steps: `teacher_responses` vs a bare streaming client (issue 8)",
        "",
        "`teacher_responses` (the CoT teacher, a declared model step) materialized as users run it "
        "(`dagster asset materialize --select teacher_responses --partition P`, in-process executor, "
        "one subprocess per run, `MMFR_COT_TEACHER_BASE_URL` at the fake OpenAI-compatible server "
        "running in its own process, `MMFR_COT_TEACHER_MAX_CONCURRENCY` = C, a fresh `MMFR_LLM_CACHE` "
        "per run) over a partition whose `cleaned` rows all lack a trace, so every row is sent. "
        "Bare client: asyncio + aiohttp, exactly C requests in flight, posting the same bodies "
        "(the server's per-prompt digests are checked equal). Both rates are the server's: "
        "completions / (last completion sent − first request received), so the asset's start-up "
        "is not counted and both pay their drain at the end; mean in flight is the server's "
        "request-seconds over that window. Rows are text only (no image). "
        + (f"Each case ran bare then asset, {repeats} times, alternating; the table gives medians."
           if repeats > 1 else "Each case ran once: bare client, then asset."),
        "",
        f"Measured {result.date}. Load average (1/5/15 min) before: {load_text(result.load_before)}; after: {load_text(result.load_after)} "
        "(2 shared cores).",
        "",
        "| latency | C | rows | ideal C/L req/s | bare client req/s | asset req/s | asset / bare | asset requests | mean in flight, bare → asset | asset max in flight | asset run (wall, incl. start-up) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in result.cases:
        c = m.case
        a = m.asset[0]
        lines.append(
            f"| {c.label} | {c.concurrency} | {c.rows:,} | {c.concurrency / MEAN_LATENCY_S:.0f} | "
            f"{m.bare_rate:.1f} | {m.asset_rate:.1f} | **{m.ratio:.2f}** | "
            f"{a.requests:,} | {statistics.median(b.mean_in_flight for b in m.bare):.1f} → "
            f"{statistics.median(x.mean_in_flight for x in m.asset):.1f} | {a.max_in_flight} | "
            f"{statistics.median(r.seconds for r in m.asset_runs):.1f} s |"
        )
    if any(len(m.bare) > 1 for m in result.cases):
        lines += ["", "Every run (req/s, bare → asset): " + "; ".join(
            f"{m.case.latency} C={m.case.concurrency}: " + ", ".join(
                f"{b.rate:.0f}→{a.rate:.0f}" for b, a in zip(m.bare, m.asset))
            for m in result.cases) + "."]
    worst = min(result.cases, key=lambda m: m.ratio)
    lines += [
        "",
        f"Goal: asset ≥ {GOAL:.2f} of the bare client in all four: "
        f"{'**met**' if result.met else '**missed**'} (lowest {worst.ratio:.2f}, "
        f"{worst.case.latency} latency at C = {worst.case.concurrency}).",
    ]
    if len(result.memory) == 2:
        small, large = result.memory
        ratio = (large.run.max_rss_mb or 0) / (small.run.max_rss_mb or 1)
        lines += [
            "",
            "Peak memory in partition size (peak RSS of the `dagster asset materialize` process, "
            "`/usr/bin/time -v`; it includes the Dagster CLI and the code location, ~0.45 GB):",
            "",
            "| rows | latency | C | peak RSS | asset req/s | wall |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
            *(f"| {m.rows:,} | {m.case.label} | {m.case.concurrency} | {m.run.max_rss_mb or 0:,.0f} MB | "
              f"{m.served.rate:.1f} | {m.run.seconds:.1f} s |" for m in result.memory),
            "",
            f"Peak RSS at {MEMORY_FACTOR}× the rows: {ratio:.2f}× "
            f"({'flat' if ratio <= 1.15 else 'NOT flat'}: goal ≤ 1.15×).",
        ]
    return lines

