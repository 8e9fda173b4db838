"""How many requests one step process may keep in flight, so an endpoint's total holds across runs.

`max_concurrency` of an endpoint role is the endpoint's *total*: what all the runs using it may
keep in flight together. Every step that uses the role holds a slot of the Dagster pool named
after it (`pool=role`), so at most `slots` steps run at once across every run of the instance
(the pool's limit). A step therefore keeps `max(1, total // slots)` requests in flight:
`slots × per_step <= total` whenever `slots <= total` (rounding down, never up; when a pool has
more slots than the endpoint's total, each step still sends one request at a time and the
endpoint may see `slots` requests, which the step's log and metadata say).

Several base URLs for one role (`MMFR_COT_TEACHER_BASE_URL=http://a/v1,http://b/v1`, each
replica with the same `max_concurrency` total) split the pool's slots between them: a run
chooses its URL by a stable function of its partition key (where the key has a `shard`
dimension, shard `i` of a subset goes to URL `(i + h(subset)) mod U`, h a hash of the
subset's name; else a hash of the key), and each step keeps `max(1, total // ceil(slots / U))`
in flight. That holds each URL's total as long as the steps running at once are spread evenly
over the URLs, which they are when the pool's limit is a multiple of U and the running runs
are consecutive shards of one subset; in the worst case (every running step chose the same URL)
one URL sees up to `slots × per_step`, at most U times its total, and queues the excess (vLLM
holds requests beyond `max_num_seqs`).

Everything here is pure except :func:`pool_slots`, which reads the instance.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

__all__ = ["EndpointBound", "PoolSlots", "endpoint_bound", "pool_slots", "split_base_urls",
           "url_index", "per_step_concurrency"]


def split_base_urls(base_url: Optional[str]) -> list[str]:
    """The base URLs of one role: a comma-separated list (one URL is the usual case)."""
    return [u.strip() for u in (base_url or "").split(",") if u.strip()]


def per_step_concurrency(total: int, steps_sharing: int) -> int:
    """Requests in flight for one of `steps_sharing` steps that share an endpoint of `total`:
    `total // steps_sharing`, at least 1 (so `steps_sharing × result <= total` whenever
    `steps_sharing <= total`)."""
    if total < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {total}")
    return max(1, total // max(1, steps_sharing))


_DIGITS = re.compile(r"\d+")


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def url_index(partition_key: Any, n_urls: int) -> int:
    """Which of `n_urls` base URLs a run of `partition_key` uses: stable across runs and
    processes. A key with a `shard` dimension: `(shard + h(subset)) mod n_urls`, with `h` a
    SHA-256 of the subset name, so a subset's consecutive shards land on different URLs and
    the same shard of different subsets does not always land on the same one (with fewer
    shards than URLs, `shard mod n_urls` alone would leave URLs unused); any other key (a
    subset name) a SHA-256 of the key."""
    if n_urls <= 1:
        return 0
    by_dimension = getattr(partition_key, "keys_by_dimension", None)
    if by_dimension and "shard" in by_dimension:
        shard, subset = str(by_dimension["shard"]), str(by_dimension.get("subset", ""))
    else:
        shard, sep, subset = str(partition_key or "").partition("|")  # `<shard>|<subset>`
        if not sep:
            return _stable_hash(shard) % n_urls  # a subset name
    digits = _DIGITS.findall(shard)
    if not digits:
        return _stable_hash(str(partition_key)) % n_urls
    return (int(digits[-1]) + _stable_hash(subset)) % n_urls


@dataclass(frozen=True)
class PoolSlots:
    """The limit of one pool as the instance reports it (None: unlimited or unknown)."""

    pool: str
    limit: Optional[int]
    source: str  # where the figure comes from, for the log line

    @property
    def slots(self) -> int:
        return self.limit if self.limit and self.limit > 0 else 1


def pool_slots(instance: Any, pool: str) -> PoolSlots:
    """The slot limit of `pool` on `instance` (a `DagsterInstance`), read at run time.

    `event_log_storage.get_concurrency_info(pool).limit` is the pool's limit, or the
    instance's `concurrency.pools.default_limit` when the pool's row is not made yet; None
    when the pool is unlimited (no limit and no default). Storages without pools (or any
    error reading them) count as unlimited: the step then keeps `max_concurrency` in flight,
    which is bounded per process only (as before pools), and says so."""
    storage = getattr(instance, "event_log_storage", None)
    if storage is None or not getattr(storage, "supports_global_concurrency_limits", False):
        return PoolSlots(pool, None, "the instance's storage has no pools")
    try:
        info = storage.get_concurrency_info(pool)
    except Exception as error:  # noqa: BLE001 - a figure for the log, never a reason to fail
        return PoolSlots(pool, None, f"reading pool {pool!r} failed: {type(error).__name__}")
    if info.limit is None:
        return PoolSlots(pool, None, f"pool {pool!r} has no limit")
    where = "the instance's pools.default_limit" if info.using_default_limit else "its limit"
    plural = "s" if info.limit != 1 else ""
    return PoolSlots(pool, int(info.limit), f"pool {pool!r}: {info.limit} slot{plural} ({where})")


@dataclass(frozen=True)
class EndpointBound:
    """The URL and the in-flight requests of one step, and why (for the log and metadata)."""

    url: str
    url_number: int  # 0-based index into the role's URLs
    urls: int
    total: int
    slots: PoolSlots
    steps_sharing: int
    per_step: int

    @property
    def bounded(self) -> bool:
        """The pool caps how many steps share the endpoint (else the total is per process)."""
        return self.slots.limit is not None

    @property
    def worst_case_in_flight(self) -> int:
        """What one URL can see at most: every step holding a slot sending to it."""
        return self.slots.slots * self.per_step if self.bounded else self.per_step

    def explain(self) -> str:
        """One sentence: the figure and how it was derived (no URL: it may hold credentials)."""
        url = f"URL {self.url_number + 1} of {self.urls}, " if self.urls > 1 else ""
        if not self.bounded:
            return (f"{self.per_step} requests in flight ({url}max_concurrency {self.total}; "
                    f"{self.slots.source}: not bounded across runs, each step keeps "
                    f"{self.total})")
        steps = f"{self.steps_sharing} step{'s' if self.steps_sharing != 1 else ''}"
        share = (f"{self.slots.slots} slots over {self.urls} URLs = {steps} per URL"
                 if self.urls > 1 else f"{steps} at once")
        text = (f"{self.per_step} requests in flight ({url}max_concurrency {self.total} per endpoint "
                f"// {share}; {self.slots.source})")
        if self.steps_sharing > self.total:
            text += (f"; more steps than the total: the endpoint may see {self.steps_sharing} "
                     f"requests at once")
        return text


def endpoint_bound(base_urls: Sequence[str], total: int, slots: PoolSlots,
                   partition_key: Any) -> EndpointBound:
    """The URL and per-step concurrency of a run of `partition_key` (see the module doc)."""
    if not base_urls:
        raise ValueError("no base URL")
    n = len(base_urls)
    index = url_index(partition_key, n)
    sharing = math.ceil(slots.slots / n) if slots.limit is not None else 1
    return EndpointBound(url=base_urls[index], url_number=index, urls=n, total=total, slots=slots,
                         steps_sharing=sharing, per_step=per_step_concurrency(total, sharing))
