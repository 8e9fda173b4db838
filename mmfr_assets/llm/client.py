"""The session that sends an endpoint's requests: fast, bounded, fault tolerant, never paying
twice.

How the pipeline uses it: a model step (`model_step/runner.py`) opens one :class:`LLMSession`
per partition (through `LLMEndpoint.open_session`) and holds one :class:`RequestWindow` on it,
which it tops up with :meth:`RequestWindow.submit_many` whenever a request finishes (keeping
``session.window`` requests outstanding) and empties with :meth:`RequestWindow.completed`.

Why it is shaped this way:

* Dagster assets are synchronous and process a partition as a stream of rows, while
  throughput needs hundreds of requests in flight. So a session runs its own asyncio loop in
  a background thread, at most ``max_concurrency`` requests on the wire (a semaphore, no batch
  barriers), and the window hands requests to it and results back through thread-safe queues.
* The caller's thread does the CPU work that belongs to it (building, canonicalising and
  hashing requests, cache look-ups) and the loop thread does the network I/O and the parsing
  of each reply (to decide whether it must be asked again);
  completed responses are handed to the cache's writer thread, so they are on disk within
  milliseconds even if the consumer is slow or the process is SIGKILLed right after.
* Requests are plain POSTs (``transport.py``), not the openai SDK's; the body and the reply's
  parsing are ``wire.py``'s; retries, backoff, Retry-After and giving up on an endpoint that
  can never answer are ``retries.py``'s, applied here in one place, with one error text per
  failed row.
* Every error text and log line goes through :class:`~.endpoint.Redactor` so the API key
  cannot leak into Dagster metadata, logs or exceptions.

This module does not import Dagster: :class:`~.endpoint.EndpointSettings` is the plain
snapshot the Dagster resource hands over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from .cache import ResponseCache, cache_key
from .endpoint import EndpointSettings, Redactor, normalize_base_url
from .retries import FailFast, backoff_delay, classify_status, parse_retry_after
from .transport import NoReply, error_message, open_transport
from .types import ChatRequest, ChatResult, Choice, LLMDisabledError, LLMStallError
from .usage import UsageStats
from .wire import (MalformedResponse, build_body, parse_completion, payload_from_result, result_from_payload,
                   unusable_reason)

__all__ = [  # the session's own names, and those of its seams that were imported from here before the split
    "EndpointSettings", "FailFast", "LLMSession", "Redactor", "RequestWindow", "backoff_delay", "build_body",
    "classify_status", "normalize_base_url", "parse_completion", "parse_retry_after",
]

logger = logging.getLogger("mmfr_assets.llm")

#: Added to ``timeout_s`` for the hard per-attempt deadline (asyncio.wait_for),
#: which catches servers that trickle bytes and never trip the transport's read timeout.
HARD_DEADLINE_SLACK_S = 5.0
#: How many retry / failure lines a session logs before it only counts them.
LOG_RETRY_LINES = 20
LOG_FAILURE_LINES = 50


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    choices: tuple[Choice, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    error: str = ""
    retryable: bool = False
    permanent: bool = False  # retrying cannot fix it: counts towards FailFast
    retry_after: Optional[float] = None


class LLMSession:
    """A live connection pool to one endpoint plus its cache and usage counters.

    Open it with ``LLMEndpoint.open_session(...)`` (or directly from
    :class:`EndpointSettings`), use it as a context manager, and send requests
    through a :meth:`window_of_requests`.  ``window`` is how many requests a caller
    keeps outstanding (``max_concurrency`` on the wire plus ``buffer`` waiting for a
    slot, so a slot that frees never waits for the caller).  Closing cancels whatever
    is still in flight, stops the loop thread and flushes the cache.
    """

    def __init__(self, settings: EndpointSettings, *, cache: Union[ResponseCache, str, Any, None] = None,
                 log: Any = None, watchdog_s: Optional[float] = None, buffer: Optional[int] = None,
                 rng_seed: Optional[int] = None) -> None:
        if not settings.base_url:
            raise LLMDisabledError(f"LLM endpoint {settings.label!r} is disabled (no base_url)")
        if settings.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.settings = settings
        self.usage = UsageStats()
        for name in ("httpx2", "httpx"):  # one INFO line per HTTP request is noise at 2.3M requests
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self._redact = Redactor(settings.api_key)
        self._log = log if log is not None else logger
        self._owns_cache = cache is not None and not isinstance(cache, ResponseCache)
        self.cache: Optional[ResponseCache] = (
            ResponseCache(cache) if self._owns_cache else cache)  # type: ignore[arg-type]
        hard = settings.timeout_s + HARD_DEADLINE_SLACK_S
        self.watchdog_s = watchdog_s if watchdog_s is not None else (
            max(hard, settings.max_retry_after_s, settings.backoff_max_s) + 60.0)
        self.window = settings.max_concurrency + (buffer if buffer is not None else settings.max_concurrency)
        self._rng = random.Random(rng_seed)
        self._breaker = FailFast(settings.label, settings.fail_fast_after)
        self._last_progress = time.monotonic()
        #: Called from the caller's thread while it waits for a result (every ~0.25 s), e.g. a
        #: step's progress reporter: a step blocked on a slow endpoint still reports.
        self.heartbeat: Optional[Callable[[], None]] = None
        self._log_lines: "queue.SimpleQueue[tuple[str, str]]" = queue.SimpleQueue()
        self._retry_lines = 0
        self._failure_lines = 0
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._run_loop, name=f"llm-session:{settings.label}", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._setup(), self._loop).result(timeout=30)
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            except Exception:
                pass
            self._loop.close()

    async def _setup(self) -> None:
        s = self.settings
        self._sem = asyncio.Semaphore(s.max_concurrency)
        self._transport = open_transport(
            s.transport, normalize_base_url(s.base_url) + "/chat/completions", api_key=s.api_key,
            timeout_s=s.timeout_s, max_connections=s.max_concurrency)

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        transport = getattr(self, "_transport", None)
        if transport is not None:
            try:
                await asyncio.wait_for(transport.close(), timeout=5)
            except BaseException:
                pass

    def close(self) -> None:
        """Cancel in-flight requests, stop the loop thread, flush and close owned caches."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
                try:
                    fut.result(timeout=15)
                except BaseException:
                    pass
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
        finally:
            if self.cache is not None:
                if self._owns_cache:
                    self.cache.close()
                else:
                    self.cache.flush(timeout_s=30)
            self._emit_logs()
            u = self.usage
            self._log.info(self._redact(
                f"[llm {self.settings.label}] session closed: {u.successes} ok, {u.failures} failed, "
                f"{u.cache_hits} cache hits, {u.retries} retries, {u.requests_sent} HTTP requests"))

    def __enter__(self) -> "LLMSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LLMSession({self.settings.label!r}, max_concurrency={self.settings.max_concurrency})"

    # -- the request window -------------------------------------------------
    def window_of_requests(self) -> "RequestWindow":
        """A :class:`RequestWindow` on this session: submit requests as there is room (up to
        :attr:`window` outstanding) and collect results as they complete."""
        if self._closed:
            raise RuntimeError("session is closed")
        return RequestWindow(self)

    # -- internals: caller thread -----------------------------------------
    def _fan_out(self, keys: list[Any], res: ChatResult) -> Iterator[tuple[Any, ChatResult]]:
        yield keys[0], res
        dup = dataclasses.replace(res, cached=True, attempts=0, latency_s=0.0) if res.ok else res
        for key in keys[1:]:
            yield key, dup

    def _cache_lookup(self, cks: Sequence[str]) -> dict[str, ChatResult]:
        """Usable cached results of the cache keys ``cks`` that have one."""
        if self.cache is None or not cks:
            return {}
        found = {}
        for ck, payload in self.cache.get_many(cks).items():
            result = result_from_payload(payload, cache_key=ck, cached=True)
            if result.choices and not unusable_reason(result.choices, self.settings.retry_on_length):
                found[ck] = result  # else cached under a laxer policy (e.g. retry_on_length off): ask again
        return found

    def _wait(self, results: "queue.SimpleQueue[tuple[str, ChatResult]]") -> tuple[str, ChatResult]:
        start = time.monotonic()
        while True:
            try:
                return results.get(timeout=0.25)
            except queue.Empty:
                pass
            self._emit_logs()
            if self.heartbeat is not None:
                self.heartbeat()
            if not self._thread.is_alive():
                raise LLMStallError(f"[llm {self.settings.label}] event loop thread died")
            idle = time.monotonic() - max(self._last_progress, start)
            if idle > self.watchdog_s:
                raise LLMStallError(
                    f"[llm {self.settings.label}] watchdog: no request made progress for {idle:.0f}s "
                    f"(watchdog_s={self.watchdog_s:.0f})")

    def _emit_logs(self) -> None:
        while True:
            try:
                level, line = self._log_lines.get_nowait()
            except queue.Empty:
                return
            getattr(self._log, level)(line)

    # -- internals: loop thread --------------------------------------------
    def _note(self, level: str, line: str) -> None:
        self._log_lines.put((level, self._redact(line, limit=2000)))

    def _start(self, requests: list[tuple[str, dict[str, Any]]],
               results: "queue.SimpleQueue[tuple[str, ChatResult]]", tasks: set) -> None:
        """On the loop thread: a task per request, kept in ``tasks`` (the window's) until done."""
        for ck, body in requests:
            task = self._loop.create_task(self._execute(ck, body, results))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _execute(self, ck: str, body: dict[str, Any],
                       results: "queue.SimpleQueue[tuple[str, ChatResult]]") -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            result = await self._run_with_retries(ck, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must fail the row, not hang the map
            result = ChatResult(ok=False, error=self._redact(f"internal error: {type(exc).__name__}: {exc}"),
                                cache_key=ck)
            self.usage.add(failures=1)
        finally:
            if task is not None:
                self._tasks.discard(task)
        if result.ok and self.cache is not None:
            try:
                self.cache.put(ck, payload_from_result(result), model=result.model)
            except Exception as exc:
                self._note("warning", f"[llm {self.settings.label}] cache write failed: {exc}")
        results.put((ck, result))

    async def _run_with_retries(self, ck: str, body: dict[str, Any]) -> ChatResult:
        s = self.settings
        start: Optional[float] = None
        outcome = _Outcome(ok=False, error="not attempted")
        attempts = 0
        for attempt in range(1, s.max_retries + 2):
            async with self._sem:
                if start is None:
                    start = time.monotonic()
                attempts = attempt
                self.usage.add(requests_sent=1, retries=1 if attempt > 1 else 0)
                outcome = await self._attempt(body)
                self._last_progress = time.monotonic()
            if outcome.ok or not outcome.retryable or attempt > s.max_retries:
                break
            if outcome.retry_after is not None:
                delay = min(outcome.retry_after, s.max_retry_after_s) + self._rng.uniform(0, 0.05)
            else:
                delay = backoff_delay(attempt, s.backoff_base_s, s.backoff_max_s, self._rng)
            if self._retry_lines < LOG_RETRY_LINES:
                self._retry_lines += 1
                self._note("debug", f"[llm {s.label}] attempt {attempt} failed ({outcome.error}); "
                                    f"retrying in {delay:.2f}s")
            await asyncio.sleep(delay)
            self._last_progress = time.monotonic()
        latency = time.monotonic() - (start or time.monotonic())
        self.usage.record_latency(latency)
        if outcome.ok:
            self.usage.add(successes=1, prompt_tokens=outcome.prompt_tokens,
                           completion_tokens=outcome.completion_tokens)
            return ChatResult(ok=True, choices=outcome.choices, attempts=attempts, latency_s=latency,
                              prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
                              model=outcome.model, cache_key=ck)
        self.usage.add(failures=1)
        gave_up = "after" if outcome.retryable else "not retryable,"
        error = self._redact(f"{outcome.error} ({gave_up} {attempts} attempt{'s' if attempts > 1 else ''})")
        self._failure_lines += 1
        if self._failure_lines <= LOG_FAILURE_LINES or self._failure_lines % 1000 == 0:
            self._note("warning", f"[llm {s.label}] request failed #{self._failure_lines}: {error}")
        return ChatResult(ok=False, choices=outcome.choices, error=error, attempts=attempts,
                          latency_s=latency, model=outcome.model, cache_key=ck, permanent=outcome.permanent)

    async def _attempt(self, body: dict[str, Any]) -> _Outcome:
        s = self.settings
        try:
            # The hard deadline catches a server that trickles bytes and never trips the
            # transport's read timeout.
            reply = await asyncio.wait_for(self._transport.post(body), timeout=s.timeout_s + HARD_DEADLINE_SLACK_S)
        except NoReply as exc:
            return _Outcome(ok=False, error=self._redact(str(exc), limit=600), retryable=True)
        except asyncio.TimeoutError:
            return _Outcome(ok=False, error=f"hard deadline of {s.timeout_s + HARD_DEADLINE_SLACK_S:g}s exceeded",
                            retryable=True)
        if reply.status >= 400:
            message = error_message(reply.text)
            retryable, permanent = classify_status(reply.status, message)
            retry_after = parse_retry_after(reply.headers) if reply.status in (429, 503) else None
            return _Outcome(ok=False, error=self._redact(f"HTTP {reply.status}: {message}", limit=600),
                            retryable=retryable, permanent=permanent, retry_after=retry_after)
        try:
            choices, prompt_tokens, completion_tokens, model = parse_completion(reply.text)
        except MalformedResponse as exc:
            return _Outcome(ok=False, error=str(exc), retryable=True)
        reason = unusable_reason(choices, s.retry_on_length)
        if reason is not None:
            return _Outcome(ok=False, choices=choices, model=model, error=reason, retryable=True)
        return _Outcome(ok=True, choices=choices, prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens, model=model)


class RequestWindow:
    """Requests in flight on one session, submitted as the caller has room, collected as they
    finish.

    The caller decides when to submit (keeping ``outstanding`` near the session's ``window``)
    and gets each result exactly once from :meth:`completed`. Identical requests in flight
    are sent once; cache hits come back from :meth:`submit_many` at once.
    """

    def __init__(self, session: LLMSession) -> None:
        self._session = session
        self._results: "queue.SimpleQueue[tuple[str, ChatResult]]" = queue.SimpleQueue()
        self._waiting: dict[str, list[Any]] = {}  # cache key -> caller keys waiting for it
        self._tasks: set[asyncio.Task[Any]] = set()  # touched on the loop thread only
        self.outstanding = 0

    def submit_many(self, pairs: Sequence[tuple[Any, ChatRequest]]) -> list[tuple[Any, ChatResult]]:
        """Start ``(key, request)`` pairs; each result comes from :meth:`completed` under its
        key, except cached results, which are returned here (and never from :meth:`completed`).

        One cache query and one hand-over to the loop thread for all of them: each is a release
        of the GIL, which the caller then waits to get back while the loop thread runs (up to
        the interpreter's switch interval). Per request, that wait was longer than the work
        itself (cProfile at 128 requests in flight: 0.5 ms per one-key look-up).
        """
        s = self._session
        fresh: dict[str, tuple[dict[str, Any], list[Any]]] = {}  # cache key -> body, caller keys
        for key, request in pairs:
            body = build_body(s.settings, request)
            ck = cache_key(body)
            if ck in self._waiting:  # identical request already in flight
                s.usage.add(cache_hits=1)
                self._waiting[ck].append(key)
                self.outstanding += 1
            elif ck in fresh:
                fresh[ck][1].append(key)
            else:
                fresh[ck] = (body, [key])
        hits = s._cache_lookup(list(fresh))
        cached: list[tuple[Any, ChatResult]] = []
        start: list[tuple[str, dict[str, Any]]] = []
        for ck, (body, keys) in fresh.items():
            hit = hits.get(ck)
            if hit is not None:
                s.usage.add(cache_hits=len(keys))
                cached.extend(s._fan_out(keys, hit))
                continue
            s.usage.add(cache_misses=1, cache_hits=len(keys) - 1)
            self._waiting[ck] = keys
            self.outstanding += len(keys)
            start.append((ck, body))
        if start:
            s._loop.call_soon_threadsafe(s._start, start, self._results, self._tasks)
        return cached

    def completed(self, *, block: bool) -> list[tuple[Any, ChatResult]]:
        """Results finished since the last call; with ``block``, waits for at least one while
        any is outstanding (the session's watchdog bounds the wait)."""
        s = self._session
        done: list[tuple[Any, ChatResult]] = []
        while True:
            try:
                ck, res = self._results.get_nowait()
            except queue.Empty:
                if done or not block or self.outstanding == 0:
                    break
                ck, res = s._wait(self._results)
            keys = self._waiting.pop(ck)
            self.outstanding -= len(keys)
            done.extend(s._fan_out(keys, res))
            s._breaker.record(res)
        s._emit_logs()
        s._breaker.check()
        return done

    def cancel(self) -> None:
        """Cancel whatever is still in flight (its results are never collected)."""
        try:
            self._session._loop.call_soon_threadsafe(self._cancel_tasks)
        except RuntimeError:  # the session is closed: its loop cancelled everything already
            pass
        self._session._emit_logs()

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

