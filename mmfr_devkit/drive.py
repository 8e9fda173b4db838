"""Sending a list (or a stream) of requests through a session, for tests and benchmarks.

Why here and not on `LLMSession`: the pipeline has one request path, the `RequestWindow` its
model-step runner tops up (`mmfr_assets/model_step/runner.py`). Tests and the client benchmark
want the same window driven the simplest way, reading the input lazily and keeping
``session.window`` requests outstanding, which is this loop over the window's public API.
"""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from mmfr_assets.llm.client import LLMSession
from mmfr_assets.llm.types import ChatRequest, ChatResult

K = TypeVar("K")


def run_requests(session: LLMSession, requests: Iterable[tuple[K, ChatRequest]]) -> Iterator[tuple[K, ChatResult]]:
    """Run ``(key, request)`` pairs; yield ``(key, result)`` as results complete.

    The input is read lazily: at most ``session.window`` requests are outstanding at once,
    and a new one is submitted as soon as one finishes, so the endpoint sees
    ``max_concurrency`` in flight for the whole iterable. Results come in completion order,
    one per input pair; failed rows come back with ``ok=False`` and an error text. The window
    raises `LLMStallError` when nothing happens for the session's ``watchdog_s`` and
    `LLMEndpointError` when the endpoint keeps refusing for a reason retrying cannot fix.
    Breaking out of the loop cancels what is still in flight.
    """
    window = session.window_of_requests()
    it = iter(requests)
    exhausted = False
    try:
        while True:
            yield from window.completed(block=False)
            if exhausted and window.outstanding == 0:
                return
            if not exhausted and window.outstanding < session.window:
                try:
                    pair = next(it)
                except StopIteration:
                    exhausted = True
                    continue
                yield from window.submit_many([pair])
                continue
            yield from window.completed(block=True)
    finally:
        window.cancel()


def complete(session: LLMSession, request: ChatRequest) -> ChatResult:
    """Run a single request (cache, retries and all) and return its result."""
    results = run_requests(session, [(0, request)])
    try:
        return next(results)[1]
    finally:
        results.close()
