"""Progress of a long step while it runs: rows done of rows to do, rates over the last minute,
an ETA.

Why: a teacher step over 200,000 rows runs for days, and a step that says nothing until its
session closes cannot be told from a hung one. A `Reporter` samples a step's counters (at most
once a second, one clock read per call otherwise) and writes one line every `INTERVAL_S` into
the run's log (the UI's run view), e.g. `teacher_responses BMMR: 1,200 / 20,000 rows (6%),
31 rows/s, 18,400 tok/s, 64 in flight, 3 failed, ETA 10m05s`. Listeners in the same process
(`mmfr run`'s bars, `listening`) get every sample.

The arithmetic (`RateWindow`, `Snapshot.line`) is pure and the clock injected, so it is
tested without waiting.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

#: Seconds between two log lines of one step. The issue's bounds: a line at least every 30 s
#: (a step is never silent longer) and at most every 5 s (the run view stays readable).
#: Tests lower it.
INTERVAL_S = 10.0
#: Rates are over this last stretch of time: recent enough to follow a slowing endpoint,
#: long enough to smooth one slow batch.
WINDOW_S = 60.0
#: The window keeps one sample per this many seconds at most (bounded memory, cheap ticks).
SAMPLE_S = 1.0


@dataclass(frozen=True)
class Counts:
    """A step's counters so far. None: not applicable to this step (a CPU stage has no tokens,
    no requests in flight, no cache)."""

    done: int = 0
    tokens: int | None = None  # completion tokens the endpoint wrote (cache hits add none)
    in_flight: int | None = None
    cache_hits: int | None = None
    failed: int | None = None
    reasked: int | None = None


class RateWindow:
    """Cumulative (rows, tokens) sampled over time; their rates over the last `span_s`.

    One sample is kept from before the window's start, so a rate always covers the whole span
    once the step has run that long (and the time since its start before)."""

    def __init__(self, span_s: float | None = None, sample_s: float | None = None) -> None:
        self.span_s = WINDOW_S if span_s is None else span_s
        self.sample_s = SAMPLE_S if sample_s is None else sample_s
        self._samples: deque[tuple[float, int, int]] = deque()

    def add(self, now: float, done: int, tokens: int) -> None:
        """Record the totals at `now` (a sample closer than `sample_s` to the last replaces it)."""
        samples = self._samples
        if len(samples) >= 2 and now - samples[-2][0] < self.sample_s:
            samples[-1] = (now, done, tokens)
        else:
            samples.append((now, done, tokens))
        while len(samples) > 2 and samples[1][0] <= now - self.span_s:
            samples.popleft()

    def rates(self) -> tuple[float, float]:
        """(rows/s, tokens/s) between the oldest and the newest sample; 0 before two samples."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, d0, k0), (t1, d1, k1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return 0.0, 0.0
        return (d1 - d0) / span, (k1 - k0) / span


Event = Literal["start", "sample", "line", "end"]


@dataclass(frozen=True)
class Snapshot:
    """What a step has done at one moment, as a listener or the log gets it."""

    step: str
    label: str  # the partition (subset, or a subset's shard)
    total: int | None  # rows to do; None when not known beforehand
    counts: Counts
    rows_per_s: float
    tokens_per_s: float
    elapsed_s: float
    event: Event

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the last minute's rate; None when the total is unknown or nothing
        finished in that minute."""
        if self.total is None or self.rows_per_s <= 0:
            return None
        return max(self.total - self.counts.done, 0) / self.rows_per_s

    def line(self) -> str:
        """`teacher_responses BMMR: 1,200 / 20,000 rows (6%), 31 rows/s, 18,400 tok/s,
        64 in flight, 12 cache hits, 3 failed, 2 re-asked, ETA 10m05s`."""
        return f"{self.step} {self.label}: " + ", ".join(self.parts())

    def parts(self) -> list[str]:
        """The line's figures, rows done first (a bar shows that one itself)."""
        c = self.counts
        if self.total is not None:
            share = c.done / self.total if self.total else 1.0
            parts = [f"{c.done:,} / {self.total:,} rows ({share:.0%})"]
        else:
            parts = [f"{c.done:,} rows"]
        parts.append(f"{rate(self.rows_per_s)} rows/s")
        if c.tokens is not None:
            parts.append(f"{rate(self.tokens_per_s)} tok/s")
        for value, what in ((c.in_flight, "in flight"), (c.cache_hits, "cache hits"),
                            (c.failed, "failed"), (c.reasked, "re-asked")):
            if value is not None:
                parts.append(f"{value:,} {what}")
        if self.event == "end":
            parts.append(f"done in {duration(self.elapsed_s)}")
        elif self.total is None:
            parts.append("ETA unknown (rows to do not known)")
        else:
            eta = self.eta_s
            parts.append(f"ETA {duration(eta)}" if eta is not None else "ETA unknown (no row finished in the last minute)")
        return parts


def for_partition(context, step: str, total: int | None) -> Reporter:
    """The reporter of `step` on the partition of an asset's `context`, logging to its run."""
    from mmfr_assets.partitions import key_label

    return Reporter(step, key_label(context.partition_key), total, context.log.info)


def rate(value: float) -> str:
    """A rate with the digits that matter: `18,400`, `31`, `2.5`, `0.04`."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def duration(seconds: float) -> str:
    """`45s`, `10m05s`, `2h03m`, `3d04h`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


Listener = Callable[[Snapshot], None]
_listeners: list[Listener] = []


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Every `Reporter` of this process sends `listener` its snapshots while the block runs
    (`mmfr run` executes its runs in-process and draws them as bars)."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def deliver(snapshot: Snapshot) -> None:
    """`snapshot` to every listener of this process (a `Reporter`'s, or one relayed from a
    worker process of `mmfr run`)."""
    for listener in list(_listeners):
        listener(snapshot)


class Reporter:
    """Samples one step's counters as it calls `tick()` and reports them.

    `tick()` costs one clock read until a sample is due (every `SAMPLE_S`): it is called per row
    and from the endpoint's wait loop, so a step blocked on a slow endpoint still reports.
    `sample` gives the counters (set here or by `watch`); `log` gets a line every `interval_s`.
    """

    def __init__(self, step: str, label: str, total: int | None, log: Callable[[str], None], *,
                 sample: Callable[[], Counts] | None = None, clock: Callable[[], float] = time.monotonic,
                 interval_s: float | None = None) -> None:
        self.step, self.label, self.total = step, label, total
        self.log = log
        self.clock = clock
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.window = RateWindow()
        self._sample = sample or Counts
        self._start = clock()
        self._next_sample = self._start
        self._next_line = self._start + self.interval_s
        self._ended = False
        self._publish(self._snapshot(self._start, "start"))

    def watch(self, sample: Callable[[], Counts]) -> None:
        """Read the counters from `sample` from now on."""
        self._sample = sample

    def update(self, counts: Counts) -> None:
        """Report `counts` (a stage that counts per batch) and tick."""
        self._sample = lambda: counts
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        if now < self._next_sample:
            return
        self._next_sample = now + SAMPLE_S
        event: Event = "sample"
        if now >= self._next_line:
            self._next_line = now + self.interval_s
            event = "line"
        snapshot = self._snapshot(now, event)
        if event == "line":
            self.log(snapshot.line())
        self._publish(snapshot)

    def finish(self) -> Snapshot:
        """The last snapshot (to listeners; the step logs its own summary). Once."""
        snapshot = self._snapshot(self.clock(), "end")
        if not self._ended:
            self._ended = True
            self._publish(snapshot)
        return snapshot

    def close(self) -> None:
        """`finish`, for `contextlib.closing`."""
        self.finish()

    def _snapshot(self, now: float, event: Event) -> Snapshot:
        counts = self._sample()
        self.window.add(now, counts.done, counts.tokens or 0)
        rows_per_s, tokens_per_s = self.window.rates()
        return Snapshot(self.step, self.label, self.total, counts, rows_per_s, tokens_per_s,
                        now - self._start, event)

    @staticmethod
    def _publish(snapshot: Snapshot) -> None:
        deliver(snapshot)
