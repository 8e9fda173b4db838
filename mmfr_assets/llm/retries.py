"""When a failed request is asked again, how long the session waits first, and when it gives
up on the endpoint altogether.

Why in one place: a transient fault (5xx, 429, a dropped connection, a truncated or empty
reply) is retried with backoff or the server's Retry-After; a fault that retrying cannot fix
(the body says "not supported", "does not exist", any other 4xx) is not, and `FailFast` stops
the session once such faults repeat, instead of failing every row of a partition for days.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from typing import Mapping, Optional

from .types import ChatResult, LLMEndpointError


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
