"""Waiting on a condition instead of sleeping a fixed time: a fixed sleep is either too short
on a loaded machine (a flaky test) or longer than needed everywhere (a slow one)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 60.0, poll_s: float = 0.02) -> T:
    """`condition()`'s first truthy value, polled every `poll_s`; AssertionError naming `what`
    after `timeout_s` (a deadline against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
