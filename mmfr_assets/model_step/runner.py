"""Running a declared `ModelStep` over a partition: one request window for the whole
partition, rows written back in input order, in bounded memory.

Why not `LLMSession.map` per batch: every batch then waits for its slowest request while the
other slots idle (measured 0.76 of a bare client at heavy-tailed latencies). Here rows stream
into a single `RequestWindow` that is topped up whenever a request finishes; finished rows wait
in a reorder buffer until every earlier row is done, so the output keeps the input's order
(what `OrderedRows` joins rely on). The buffer is bounded (`reorder_limit` rows): past it,
reading pauses until the oldest row finishes.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from mmfr_assets.llm.client import LLMSession, RequestWindow
from mmfr_assets.llm.types import ChatRequest, ChatResult
from mmfr_assets.model_step.collector import steady_collector
from mmfr_assets.model_step.declaration import ModelStep, Parsed, Retry
from mmfr_assets.progress import Counts, Reporter
from mmfr_assets.prompts import Prompt

#: Finished rows are parsed together once this many are ready, or once the oldest has waited
#: `PARSE_WAIT_S`.
PARSE_BATCH = 64
PARSE_WAIT_S = 0.5

#: Requests are handed to the session this many at a time (or fewer when the window fills).
SUBMIT_BATCH = 16

#: Columns the runner adds to every model step's table: which prompt made the row, how many
#: attempts it took and what it cost (null / 0 for rows sent to no model).
PROVENANCE_SCHEMA = pa.schema(
    [
        ("prompt_version", pa.string()),
        ("attempts", pa.int32()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


def table_schema(step: ModelStep | type[ModelStep]) -> pa.Schema:
    """The step's table: subset, id, its own columns, then the runner's provenance."""
    return pa.schema(
        [("subset", pa.string()), ("id", pa.string()), *step.output_schema, *PROVENANCE_SCHEMA]
    )


def no_endpoint_reason(role: str) -> str:
    """Why a row that needed the model was not sent: the one wording of the table's reason
    column, the log, the metadata and the `model_ran` check."""
    return f"no {role} endpoint configured (MMFR_{role.upper()}_BASE_URL unset)"


def skipped(step: ModelStep, row: Mapping[str, Any], reason: str) -> Parsed:
    """The row of `row` that needed the model and was not sent (`reason`): the step's
    `without_model` columns, the reason in its `reason_column` (after what is there, `; `
    between) and `skipped_status` in its `status_column` where the step declares one."""
    columns = dict(step.without_model(row).columns)
    before = columns.get(step.reason_column)
    columns[step.reason_column] = f"{before}; {reason}" if before else reason
    if step.skipped_status is not None:
        columns[step.status_column] = step.skipped_status
    return Parsed(columns)


def check_declaration(step: ModelStep | type[ModelStep]) -> None:
    """Fail at definition time, naming the step, where its declaration does not hold together
    (a reason or status column the table does not have, a joined column its step does not write)."""
    names = set(step.output_schema.names)
    reason = getattr(step, "reason_column", None)
    if reason not in names:
        raise TypeError(f"{step.asset}: reason_column {reason!r} is not one of its output columns {sorted(names)}")
    if step.skipped_status is not None and step.status_column not in names:
        raise TypeError(f"{step.asset}: skipped_status needs a status_column among its output columns")
    if step.status_column is not None and step.status_column not in names:
        raise TypeError(f"{step.asset}: status_column {step.status_column!r} is not one of its output columns")
    for join in step.joins:
        join.check()


@dataclass
class StepStats:
    """What happened to the partition's rows, for metadata and the failure-rate check."""

    rows: int = 0
    finished: int = 0  # rows whose output is decided (written or waiting for an earlier row)
    sent: int = 0  # rows that needed the model and were sent
    not_sent: int = 0  # rows that needed the model but had no endpoint
    failed: int = 0  # rows whose `Parsed.failure` is set
    failures: Counter = field(default_factory=Counter)  # failure text (first 80 chars) -> rows
    retried_rows: int = 0
    reasks: int = 0  # times a row was asked again (parse said Retry)
    attempts: Counter = field(default_factory=Counter)  # attempts -> rows (sent rows only)
    statuses: Counter = field(default_factory=Counter)  # status_column value -> rows


@dataclass
class _Job:
    """One input row on its way through the model."""

    row: dict[str, Any]
    asks: list[tuple[ChatRequest, int]] = field(default_factory=list)  # (request, samples) per ask
    attempt: int = 0
    replies: dict[int, ChatResult] = field(default_factory=dict)
    expected: int = 0
    layout: list[tuple[int, int]] = field(default_factory=list)  # (samples, requests) per ask
    out: Parsed | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Runner:
    def __init__(
        self,
        step: ModelStep,
        *,
        session: LLMSession | None,
        prompt: Prompt,
        build_request: Callable[[str, bytes | None], ChatRequest] | None,
        images: Callable[[str], bytes | None] | None,
        supports_n: bool,
        base_seed: int | None,
        reorder_limit: int,
        stats: StepStats,
        progress: Reporter | None = None,
    ) -> None:
        self.step = step
        self.session = session
        self.prompt = prompt
        self.build_request = build_request
        self.images = images
        self.supports_n = supports_n
        self.base_seed = base_seed
        self.skip_reason = no_endpoint_reason(step.role)
        self.reorder_limit = reorder_limit
        self.window: RequestWindow | None = session.window_of_requests() if session else None
        self.capacity = session.window if session else 0
        self.jobs: deque[_Job] = deque()  # in input order; finished ones leave from the left
        self.by_key: dict[int, _Job] = {}
        self.ready: list[_Job] = []  # every reply in, not parsed yet
        self.ready_since = 0.0  # when the oldest of them became ready
        self.outbox: list[tuple[tuple[int, int], ChatRequest]] = []  # requests not submitted yet
        self.next_key = 0
        self.stats = stats
        self.names = [f.name for f in step.output_schema]
        self.tick: Callable[[], None] = progress.tick if progress is not None else _nothing
        if progress is not None:
            progress.watch(self.counts)

    def counts(self) -> Counts:
        """The progress counters: rows decided, and the endpoint's side where there is one."""
        stats, usage = self.stats, self.session.usage if self.session is not None else None
        return Counts(
            done=stats.finished, failed=stats.failed, reasked=stats.reasks,
            tokens=usage.completion_tokens if usage is not None else None,
            # outstanding beyond max_concurrency wait for a slot, on this side of the wire
            in_flight=min(self.window.outstanding, self.session.settings.max_concurrency)
            if self.window is not None else None,
            cache_hits=usage.cache_hits if usage is not None else None,
        )

    # -- requests ------------------------------------------------------------
    def _seeds(self, attempt: int, samples: int) -> list[int | None]:
        """Seeds of one attempt's requests of an ask drawing `samples`: deterministic (a re-run
        asks the same requests and is answered by the cache), distinct per sample and per attempt."""
        base = self.base_seed if self.base_seed is not None else 0
        if self.supports_n or samples == 1:
            first = self.base_seed if attempt == 1 else base + (attempt - 1) * max(samples, 1)
            return [first]
        return [base + (attempt - 1) * samples + k for k in range(samples)]

    def _send(self, job: _Job) -> None:
        job.attempt += 1
        job.replies.clear()
        job.layout = []
        k = 0
        for ask, samples in job.asks:
            seeds = self._seeds(job.attempt, samples)
            per_request = samples if len(seeds) == 1 else 1
            job.layout.append((samples, len(seeds)))
            for seed in seeds:
                request = ask
                overrides: dict[str, Any] = {}
                if seed is not None:
                    overrides["seed"] = seed
                if per_request > 1:
                    overrides["n"] = per_request
                if overrides:
                    request = dataclasses.replace(request, **overrides)
                key = self.next_key
                self.next_key += 1
                self.by_key[key] = job
                self.outbox.append(((key, k), request))
                k += 1
        job.expected = k

    def _flush(self) -> None:
        """Submit the requests waiting in the outbox, all at once (one cache query, one
        hand-over to the session's loop: see `RequestWindow.submit_many`)."""
        if self.outbox and self.window is not None:
            pairs, self.outbox = self.outbox, []
            for job_key, hit in self.window.submit_many(pairs):
                self._on_result(job_key, hit)

    def _on_result(self, job_key: tuple[int, int], result: ChatResult) -> None:
        key, k = job_key
        job = self.by_key.pop(key)
        job.replies[k] = result
        if not result.cached:
            job.prompt_tokens += result.prompt_tokens
            job.completion_tokens += result.completion_tokens
        if len(job.replies) == job.expected:
            if not self.ready:
                self.ready_since = time.monotonic()
            self.ready.append(job)

    def _replies(self, job: _Job) -> list[ChatResult]:
        """One reply per sample, ask after ask (a request with `n` split into its samples)."""
        ordered = [job.replies[i] for i in range(job.expected)]
        replies: list[ChatResult] = []
        start = 0
        for samples, requests in job.layout:
            if requests == 1 and samples > 1:
                replies += [ordered[start].sample(i) for i in range(samples)]
            else:
                replies += ordered[start:start + requests]
            start += requests
        return replies

    def _parse_ready(self) -> None:
        """Parse every row whose replies are all in, in one `parse_many` call (asking again
        those that say Retry, which may complete at once from the cache: hence the loop)."""
        while self.ready:
            jobs, self.ready = self.ready, []
            outcomes = self.step.parse_many([(job.row, self._replies(job), job.attempt) for job in jobs])
            for job, outcome in zip(jobs, outcomes):
                if isinstance(outcome, Retry):
                    if job.attempt < self.step.max_attempts:
                        self.stats.reasks += 1
                        self._send(job)
                        continue
                    outcome = outcome.fallback
                self._finish(job, outcome)
            self._flush()

    def _finish(self, job: _Job, out: Parsed) -> None:
        job.out = out
        job.asks = []  # the image's data URL is the bulk of a job: drop it now
        stats = self.stats
        stats.finished += 1
        if out.failure is not None:
            stats.failed += 1
            stats.failures[out.failure[:80]] += 1
        if job.attempt:
            stats.attempts[job.attempt] += 1
            stats.retried_rows += job.attempt > 1
        if self.step.status_column:
            stats.statuses[out.columns.get(self.step.status_column)] += 1
        self.step.finished(out)

    def _collect(self, block: bool) -> None:
        if block:
            self._flush()  # never wait with requests unsent
        for job_key, result in self.window.completed(block=block):
            self._on_result(job_key, result)
        self.tick()

    def _parse_due(self) -> bool:
        """Whether the finished rows are worth a `parse_many` call now: a call costs ~2 ms
        whatever its size (measured for the teacher's trace checks: 1.9 ms for 1 row, 3.4 ms
        for 32), so rows wait for `PARSE_BATCH` companions, or `PARSE_WAIT_S` at most (a slow
        endpoint's rows, and the retries their checks ask for, are not held back)."""
        if not self.ready:
            return False
        return len(self.ready) >= PARSE_BATCH or time.monotonic() - self.ready_since >= PARSE_WAIT_S

    def _wait_for_room(self) -> None:
        """Block until the window has room for another request. Requests wait in the outbox
        until there are `SUBMIT_BATCH` of them or they would fill the window, then go together;
        parsing happens here, while the window is full and the endpoint busy, never between a
        completion and the request that replaces it."""
        if len(self.outbox) >= SUBMIT_BATCH:
            self._flush()
        while self.window.outstanding + len(self.outbox) >= self.capacity:
            self._flush()
            if self._parse_due():
                self._parse_ready()
            if self.window.outstanding >= self.capacity:
                self._collect(block=True)

    # -- rows ------------------------------------------------------------------
    def add_batch(self, batch: pl.DataFrame) -> Iterator[dict[str, Any]]:
        """Queue a batch's rows (sending those that need the model); yields finished rows."""
        batch = self.step.prepare(batch)
        needs = self.step.needs(batch).to_list()
        if len(needs) != batch.height:
            raise RuntimeError(f"{self.step.asset}: needs() gave {len(needs)} values for {batch.height} rows")
        for row, needed in zip(batch.iter_rows(named=True), needs):
            self.stats.rows += 1
            job = _Job(row=row)
            self.jobs.append(job)
            if not needed:
                self._finish(job, self.step.without_model(row))
            elif self.window is None:
                self.stats.not_sent += 1
                self._finish(job, skipped(self.step, row, self.skip_reason))
            else:
                self.stats.sent += 1
                asks = self.step.asks(row, self.prompt)
                image = (self.images(row["id"]) if self.images is not None and any(a.image for a in asks)
                         else None)
                job.asks = [(self.build_request(a.text, image if a.image else None), a.samples) for a in asks]
                self._send(job)
                if len(self.ready) >= PARSE_BATCH:  # a re-run: answers straight from the cache
                    self._parse_ready()
                self._wait_for_room()
            yield from self._drain()
            self.tick()
            while len(self.jobs) >= self.reorder_limit:
                self._parse_ready()
                if self.jobs[0].out is None:
                    self._collect(block=True)
                yield from self._drain()
        self._flush()  # before the next batch is read

    def finish(self) -> Iterator[dict[str, Any]]:
        self._flush()
        while self.ready or (self.window is not None and self.window.outstanding):
            self._parse_ready()
            if self.window is not None and self.window.outstanding:
                self._collect(block=True)
            yield from self._drain()
        yield from self._drain()
        if self.jobs:
            raise RuntimeError(f"{self.step.asset}: {len(self.jobs)} rows never finished")

    def _drain(self) -> Iterator[dict[str, Any]]:
        if self.window is not None:
            self._collect(block=False)
        while self.jobs and self.jobs[0].out is not None:
            job = self.jobs.popleft()
            sent = job.attempt > 0
            yield {
                "subset": job.row["subset"],
                "id": job.row["id"],
                **{name: job.out.columns.get(name) for name in self.names},
                "prompt_version": self.prompt.version if sent else None,
                "attempts": job.attempt,
                "prompt_tokens": job.prompt_tokens,
                "completion_tokens": job.completion_tokens,
            }

    def cancel(self) -> None:
        if self.window is not None:
            self.window.cancel()


def run_model_step(
    step: ModelStep,
    batches: Iterable[pl.DataFrame],
    *,
    session: LLMSession | None,
    prompt: Prompt,
    build_request: Callable[[str, bytes | None], ChatRequest] | None = None,
    images: Callable[[str], bytes | None] | None = None,
    supports_n: bool = True,
    base_seed: int | None = None,
    reorder_limit: int = 8192,
    write_rows: int = 1024,
    stats: StepStats | None = None,
    progress: Reporter | None = None,
) -> Iterator[pl.DataFrame]:
    """The step's table rows for `batches` (upstream rows in order), as frames of about
    `write_rows` rows in the same order, one output row per input row.

    `session` None: no endpoint; rows that need the model are written `skipped`, with
    `no_endpoint_reason(step.role)`. `build_request(text, image)` turns a rendered prompt into a request
    (the endpoint's `request` with the prompt's system turn); `images(id)` gives a row's image
    bytes when the step sends images. `stats`, when given, is filled as rows finish.
    `progress` is ticked as rows finish and while the endpoint is waited on (the session's
    heartbeat), so a step blocked on a slow endpoint still reports.
    Raises what the session raises (`LLMEndpointError` on a broken endpoint, `LLMStallError`);
    finished responses are in the cache by then.
    """
    if session is not None and build_request is None:
        raise ValueError("build_request is required with a session")
    runner = _Runner(
        step, session=session, prompt=prompt, build_request=build_request, images=images,
        supports_n=supports_n, base_seed=base_seed,
        reorder_limit=max(reorder_limit, 1), stats=stats if stats is not None else StepStats(),
        progress=progress,
    )
    schema = table_schema(step)
    out: list[dict[str, Any]] = []
    if session is not None and progress is not None:
        session.heartbeat = progress.tick
    try:
        with steady_collector():
            for batch in batches:
                for row in runner.add_batch(batch):
                    out.append(row)
                    if len(out) >= write_rows:
                        yield _frame(out, schema)
                        out = []
            for row in runner.finish():
                out.append(row)
            if out:
                yield _frame(out, schema)
    finally:
        runner.cancel()
        if session is not None and progress is not None:
            session.heartbeat = None


def _nothing() -> None:
    pass


def _frame(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_pylist(list(rows), schema=schema))
