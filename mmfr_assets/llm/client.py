"""The shared chat client: fast, bounded, fault tolerant, never paying twice.

Why it is shaped this way:

* Dagster assets are synchronous and process a partition as a stream of rows,
  while throughput needs hundreds of requests in flight.  So an
  :class:`LLMSession` runs its own asyncio loop in a background thread and
  exposes a synchronous :meth:`LLMSession.map` that keeps up to
  ``max_concurrency`` requests in flight continuously (a sliding window, no
  batch barriers), reads the input lazily and buffers at most
  ``max_concurrency + buffer`` rows, so memory does not grow with input size.
* The caller's thread does the CPU work that belongs to it (iterating the
  input, canonicalising and hashing requests, cache look-ups) and the loop
  thread does only network I/O; completed responses are handed to the cache's
  writer thread, so they are on disk within milliseconds even if the consumer
  is slow or the process is SIGKILLed right after.
* Requests are plain POSTs (``transport.py``), not the openai SDK's: retries,
  backoff, Retry-After and the treatment of 200-responses that are useless
  (malformed JSON, empty content, ``finish_reason == "length"``) are decided here,
  in one place, with one error text per failed row.
* Every error text and log line goes through :class:`Redactor` so the API key
  cannot leak into Dagster metadata, logs or exceptions.

This module does not import Dagster: :class:`EndpointSettings` is the plain
snapshot the Dagster resource hands over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import queue
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import urlsplit, urlunsplit

from .cache import ResponseCache, cache_key
from .types import ChatRequest, ChatResult, Choice, LLMDisabledError, LLMEndpointError, LLMStallError
from .transport import NoReply, error_message, open_transport
from .usage import UsageStats

logger = logging.getLogger("mmfr_assets.llm")

K = TypeVar("K")

#: Added to ``timeout_s`` for the hard per-attempt deadline (asyncio.wait_for),
#: which catches servers that trickle bytes and never trip the transport's read timeout.
HARD_DEADLINE_SLACK_S = 5.0
#: How many retry / failure lines a session logs before it only counts them.
LOG_RETRY_LINES = 20
LOG_FAILURE_LINES = 50


@dataclass(frozen=True)
class EndpointSettings:
    """Everything the client needs about one endpoint (a snapshot of the resource)."""

    base_url: str
    model: str
    api_key: Optional[str] = field(default=None, repr=False)
    name: str = ""
    timeout_s: float = 600.0
    max_concurrency: int = 32
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0
    retry_on_length: bool = True
    transport: str = "aiohttp"
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    n: int = 1
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    fail_fast_after: int = 10

    @property
    def label(self) -> str:
        return self.name or self.model


# ---------------------------------------------------------------------------
# pure helpers


def normalize_base_url(url: str) -> str:
    """Append ``/v1`` when the URL has no path (every OpenAI-compatible server serves there)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1")
    return urlunsplit(parts)


def build_body(settings: EndpointSettings, request: ChatRequest) -> dict[str, Any]:
    """The JSON body sent for ``request``; also what the cache key is computed from."""
    body: dict[str, Any] = {"model": settings.model, "messages": [dict(m) for m in request.messages]}
    params = {
        "temperature": _pick(request.temperature, settings.temperature),
        "top_p": _pick(request.top_p, settings.top_p),
        "max_tokens": _pick(request.max_tokens, settings.max_tokens),
        "seed": _pick(request.seed, settings.seed),
        "n": _pick(request.n, settings.n),
    }
    body.update({k: v for k, v in params.items() if v is not None})
    extra = dict(settings.extra_body or {})
    extra.update(request.extra_body or {})
    for k, v in extra.items():
        if k not in ("model", "messages"):
            body[k] = v
    return body


def _pick(a: Any, b: Any) -> Any:
    return a if a is not None else b


class Redactor:
    """Removes secrets (and any bearer token) from text that will be logged or stored."""

    _BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")

    def __init__(self, *secrets: Optional[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: Any, limit: int = 1000) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "***")
        out = self._BEARER.sub(r"\1***", out)
        out = " ".join(out.split())
        return out if len(out) <= limit else out[: limit - 3] + "..."

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


class MalformedResponse(ValueError):
    """A 200 response whose body is not a usable chat completion."""


def parse_completion(text: str) -> tuple[tuple[Choice, ...], int, int, str]:
    """``(choices, prompt_tokens, completion_tokens, model)`` from a response body.

    Reasoning comes from ``reasoning_content`` (vLLM) or ``reasoning`` (newer
    vLLM / other servers); when absent but the content holds ``…</think>`` (a
    reasoning model served without a reasoning parser), it is split out.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedResponse(f"malformed JSON body ({len(text)} chars): {exc}") from None
    if not isinstance(data, dict):
        raise MalformedResponse(f"response body is {type(data).__name__}, not an object")
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise MalformedResponse("response has no choices")
    choices = []
    for raw in sorted(raw_choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        if not isinstance(raw, dict):
            raise MalformedResponse("choice is not an object")
        msg = raw.get("message")
        if not isinstance(msg, dict):
            raise MalformedResponse("choice has no message")
        content = _text(msg.get("content"))
        reasoning = _text(msg.get("reasoning_content")) or _text(msg.get("reasoning"))
        if not reasoning and "</think>" in content:
            head, _, tail = content.partition("</think>")
            reasoning, content = head.replace("<think>", "", 1).strip(), tail.strip()
        choices.append(Choice(content=content, reasoning=reasoning, finish_reason=raw.get("finish_reason")))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return (tuple(choices), _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
            str(data.get("model") or ""))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def unusable_reason(choices: Iterable[Choice], retry_on_length: bool) -> Optional[str]:
    """Why a well-formed response must be retried anyway, or None if it is usable."""
    for c in choices:
        if not c.content.strip() and not c.reasoning.strip():
            return "empty content"
        if retry_on_length and c.finish_reason == "length":
            return "finish_reason=length (output truncated at max_tokens)"
    return None


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: ``d/2 + U(0, d/2)``, ``d = min(max, base*2**(attempt-1))``."""
    d = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return d / 2 + rng.uniform(0, d / 2)


def result_from_payload(payload: Mapping[str, Any], *, cache_key: str, cached: bool, **extra: Any) -> ChatResult:
    """Rebuild a :class:`ChatResult` from a cache payload."""
    choices = tuple(Choice(content=c.get("content", ""), reasoning=c.get("reasoning", ""),
                           finish_reason=c.get("finish_reason")) for c in payload.get("choices", ()))
    return ChatResult(ok=True, choices=choices, cached=cached, model=payload.get("model", ""),
                      prompt_tokens=payload.get("prompt_tokens", 0),
                      completion_tokens=payload.get("completion_tokens", 0), cache_key=cache_key, **extra)


def payload_from_result(result: ChatResult) -> dict[str, Any]:
    return {
        # spelled out: dataclasses.asdict deep-copies through generic machinery, per reply
        "choices": [{"content": c.content, "reasoning": c.reasoning, "finish_reason": c.finish_reason}
                    for c in result.choices],
        "model": result.model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
    }


#: Words of an error body that say the request can never succeed, whatever the status code:
#: llama.cpp answers an image sent to a text-only model with HTTP 500 "image input is not
#: supported", vLLM an unknown model with 404 "does not exist".
_PERMANENT_WORDS = re.compile(
    r"not supported|unsupported|does not support|not found|does not exist|no such model|unknown model",
    re.I)


def classify_status(status: int, message: str) -> tuple[bool, bool]:
    """``(retryable, permanent)`` for an HTTP error: 408/409/429 and 5xx are transient unless
    the body says the request can never succeed; any other 4xx fails the same way again."""
    if status in (408, 409, 429):
        return True, False
    if _PERMANENT_WORDS.search(message or ""):
        return False, True
    if status >= 500:
        return True, False
    return False, True


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


# ---------------------------------------------------------------------------
# the session


class LLMSession:
    """A live connection pool to one endpoint plus its cache and usage counters.

    Open it with ``LLMEndpoint.open_session(...)`` (or directly from
    :class:`EndpointSettings`), use it as a context manager, and feed it rows
    through :meth:`map`.  Closing cancels whatever is still in flight, stops
    the loop thread and flushes the cache.
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

    # -- public API --------------------------------------------------------
    def complete(self, request: ChatRequest) -> ChatResult:
        """Run a single request (cache, retries and all) and return its result."""
        results = self.map([(0, request)])
        try:
            return next(results)[1]
        finally:
            results.close()

    def map(self, requests: Iterable[tuple[K, ChatRequest]]) -> Iterator[tuple[K, ChatResult]]:
        """Run ``(key, request)`` pairs; yield ``(key, result)`` as results complete.

        The input is read lazily: at most ``window`` (``max_concurrency`` +
        buffer) requests are outstanding at once, and a new one is sent as soon
        as one finishes, so the endpoint sees ``max_concurrency`` in flight for
        the whole iterable.  Results come in completion order.  Every input
        pair yields exactly one result; failed rows come back with
        ``ok=False`` and an error text, they do not raise.  Raises
        :class:`LLMStallError` if nothing at all happens for ``watchdog_s``,
        and :class:`LLMEndpointError` when the endpoint keeps refusing requests
        for a reason retrying cannot fix.  Breaking out of the loop cancels what
        is still in flight.
        """
        window = self.window_of_requests()
        it = iter(requests)
        exhausted = False
        try:
            while True:
                yield from window.completed(block=False)
                if exhausted and window.outstanding == 0:
                    return
                if not exhausted and window.outstanding < self.window:
                    try:
                        key, request = next(it)
                    except StopIteration:
                        exhausted = True
                        continue
                    hit = window.submit(key, request)
                    if hit is not None:
                        yield key, hit
                    continue
                yield from window.completed(block=True)
        finally:
            window.cancel()

    def window_of_requests(self) -> "RequestWindow":
        """A :class:`RequestWindow` on this session: submit requests one by one and collect
        results as they complete (what :meth:`map` and the model-step runner are built on)."""
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

    def submit(self, key: Any, request: ChatRequest) -> Optional[ChatResult]:
        """One request (see :meth:`submit_many`): its cached result, or None."""
        hits = self.submit_many([(key, request)])
        return hits[0][1] if hits else None

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


class FailFast:
    """Stops a session whose endpoint can never answer (a wrong model name, an input the
    model does not support, a bad key): after ``limit`` consecutive results that failed with
    the same non-retryable error on distinct requests, :meth:`check` raises
    :class:`LLMEndpointError` with that error. Any success resets it. Finished results are in
    the cache already, so a fixed endpoint resumes where this stopped."""

    _NUMBERS = re.compile(r"\d+")

    def __init__(self, label: str, limit: int) -> None:
        self._label = label
        self._limit = limit
        self._signature: Optional[str] = None
        self._error = ""
        self._count = 0

    def record(self, result: ChatResult) -> None:
        if result.ok or not result.permanent:
            self._signature, self._count = None, 0
            return
        signature = self._NUMBERS.sub("#", result.error or "")
        if signature == self._signature:
            self._count += 1
        else:
            self._signature, self._error, self._count = signature, result.error or "", 1

    def check(self) -> None:
        if self._limit > 0 and self._count >= self._limit:
            raise LLMEndpointError(
                f"[llm {self._label}] stopped: {self._count} requests in a row failed with the same "
                f"error that retrying cannot fix: {self._error}")
