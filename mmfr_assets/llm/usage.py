"""Usage accounting for a session, in constant memory.

A 2.3M-row run must not keep one latency per request, so latencies go into a
log-bucketed histogram (about 2% relative error on p50/p95) that is mergeable
across sessions and endpoints.  Counters are updated from the client's event
loop thread and the caller's thread, hence the lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

_BUCKET_BASE = 1.02       # bucket i covers [MIN * BASE**i, MIN * BASE**(i+1))
_BUCKET_MIN_S = 1e-4


@dataclass
class UsageStats:
    """Counters for one session (or several, merged).

    - ``requests_sent``: HTTP attempts sent, retries included (what the endpoint saw);
    - ``successes`` / ``failures``: requests answered over the network / given up on;
    - ``retries``: attempts beyond the first;
    - ``cache_hits``: answered from the cache or by an identical in-flight request;
    - ``cache_misses``: requests that had to go to the network;
    - ``prompt_tokens`` / ``completion_tokens``: as reported by the server (successes);
    - latency: wall time per network request, first attempt to final outcome.
    """

    requests_sent: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _latency_buckets: dict[int, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Increment counters by name, e.g. ``add(retries=1, requests_sent=1)``."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def record_latency(self, seconds: float) -> None:
        idx = _bucket(seconds)
        with self._lock:
            self._latency_buckets[idx] = self._latency_buckets.get(idx, 0) + 1

    def latency_quantile(self, q: float) -> float:
        """Approximate latency quantile in seconds (0.0 when nothing was recorded)."""
        with self._lock:
            items = sorted(self._latency_buckets.items())
        total = sum(c for _, c in items)
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for idx, count in items:
            seen += count
            if seen >= rank:
                return _bucket_mid(idx)
        return _bucket_mid(items[-1][0])

    @property
    def latency_p50_s(self) -> float:
        return self.latency_quantile(0.50)

    @property
    def latency_p95_s(self) -> float:
        return self.latency_quantile(0.95)

    def merge(self, other: "UsageStats") -> "UsageStats":
        """Add ``other`` into ``self`` in place; returns ``self``."""
        snap = other.copy()
        with self._lock:
            for name in _COUNTERS:
                setattr(self, name, getattr(self, name) + getattr(snap, name))
            for idx, count in snap._latency_buckets.items():
                self._latency_buckets[idx] = self._latency_buckets.get(idx, 0) + count
        return self

    def __add__(self, other: "UsageStats") -> "UsageStats":
        return self.copy().merge(other)

    def copy(self) -> "UsageStats":
        with self._lock:
            out = UsageStats(**{name: getattr(self, name) for name in _COUNTERS})
            out._latency_buckets = dict(self._latency_buckets)
        return out

    def to_metadata(self, prefix: str = "llm_") -> dict[str, Any]:
        """Plain ints/floats, usable directly as Dagster output metadata."""
        snap = self.copy()
        looked_up = snap.cache_hits + snap.cache_misses
        out: dict[str, Any] = {name: getattr(snap, name) for name in _COUNTERS}
        out["cache_hit_rate"] = round(snap.cache_hits / looked_up, 4) if looked_up else 0.0
        out["latency_p50_s"] = round(snap.latency_p50_s, 4)
        out["latency_p95_s"] = round(snap.latency_p95_s, 4)
        return {f"{prefix}{k}": v for k, v in out.items()}


_COUNTERS = ("requests_sent", "successes", "failures", "retries", "cache_hits", "cache_misses",
             "prompt_tokens", "completion_tokens")


def _bucket(seconds: float) -> int:
    if seconds <= _BUCKET_MIN_S:
        return 0
    return int(math.log(seconds / _BUCKET_MIN_S, _BUCKET_BASE)) + 1


def _bucket_mid(idx: int) -> float:
    if idx == 0:
        return _BUCKET_MIN_S
    lo = _BUCKET_MIN_S * _BUCKET_BASE ** (idx - 1)
    return lo * math.sqrt(_BUCKET_BASE)
