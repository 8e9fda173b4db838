"""Shared fixtures for the LLM client tests.

One fake OpenAI-compatible server per test process (so one per xdist worker),
started lazily and reset before each test that uses it.  The test modules
import these fixtures explicitly, so they work whether or not conftest.py also
registers this module (``pytest_plugins = ["mmfr_assets_tests.conftest_llm"]``);
the process-wide singleton keeps it to one server either way.
"""

from __future__ import annotations

import atexit
import socket
import threading
from typing import Any, Callable

import pytest

from mmfr_assets.llm.client import EndpointSettings
from mmfr_devkit.fake_server import FakeServerHandle, start_fake_server

_server: "FakeServerHandle | None" = None
_server_lock = threading.Lock()


def shared_fake_server() -> FakeServerHandle:
    """The process-wide fake server (started on first use, stopped at exit)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = start_fake_server()  # type: ignore[assignment]
            atexit.register(_server.stop)
        return _server


@pytest.fixture(scope="session")
def fake_llm_server() -> FakeServerHandle:
    return shared_fake_server()


@pytest.fixture()
def fake_llm(fake_llm_server: FakeServerHandle) -> FakeServerHandle:
    """The shared fake server with default config and zeroed stats."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


#: Fast-failing client settings for tests: tiny backoff, short timeouts.
FAST: dict[str, Any] = dict(model="fake-model", timeout_s=5.0, max_concurrency=4, max_retries=3,
                            backoff_base_s=0.01, backoff_max_s=0.05, max_retry_after_s=5.0)


@pytest.fixture()
def llm_settings(fake_llm: FakeServerHandle) -> Callable[..., EndpointSettings]:
    """``llm_settings(**overrides)`` -> EndpointSettings pointing at the fake server."""

    def make(**overrides: Any) -> EndpointSettings:
        return EndpointSettings(**{"base_url": fake_llm.url, **FAST, **overrides})

    return make


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory) -> str:
    """Base URL (``…/v1``) of a real llama.cpp server serving SmolLM2-135M-Instruct
    (`mmfr_assets_tests.llamacpp`): started once per test session (per xdist worker), on first
    use, and always stopped at the session's end (the child also exits if this process dies)."""
    from mmfr_assets_tests.llamacpp import start_llamacpp_server

    server = start_llamacpp_server(log_dir=tmp_path_factory.mktemp("llamacpp"))
    try:
        yield server.base_url
    finally:
        server.stop()
