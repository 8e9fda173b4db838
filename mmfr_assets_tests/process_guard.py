"""The `process` marker, enforced: a test that starts a process or a server carries it, so
`make test-fast` (`-m "not process"`) is the edit-test loop and skips exactly those.

What counts: a subprocess (`subprocess.*`, the Dagster CLI, webserver, daemon, llama.cpp, the
math-verify workers, a browser), a fork or `multiprocessing` process, and a listening socket
(the fake OpenAI server, an S3 stand-in, any HTTP server). PostgreSQL is a server the test
needs running. Marked by hand (`@pytest.mark.process`, `pytestmark`), and automatically for
tests that use a fixture that provides such a server (`PROCESS_FIXTURES`) or carry `e2e`.

Enforced rather than trusted: while an unmarked test sets up and runs, the calls that start a
process or a server raise, and the test fails with its node id even if the code under test
catches the error. (Teardown is not guarded: stopping a fixture's server is no new process.)
"""

from __future__ import annotations

import multiprocessing.process
import os
import socket
import subprocess

import pytest

#: Fixtures that start (or need) a server: a test using one is marked `process`.
PROCESS_FIXTURES = frozenset({"fake_llm_server", "llamacpp_server", "postgres_database", "s3_endpoint"})

_VIOLATIONS = pytest.StashKey[list]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Before `-m` deselects (tryfirst): mark the tests whose fixtures start servers."""
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.process)


def _refuse(item: pytest.Item, what: str):
    def blocked(*args, **kwargs):
        message = (f"{item.nodeid} starts {what} but is not marked `process` "
                   "(add @pytest.mark.process: make test-fast must not run it)")
        item.stash.setdefault(_VIOLATIONS, []).append(message)
        raise RuntimeError(message)

    return blocked


def _forbid(item: pytest.Item) -> pytest.MonkeyPatch:
    patch = pytest.MonkeyPatch()
    patch.setattr(subprocess.Popen, "_execute_child", _refuse(item, "a subprocess"))
    patch.setattr(multiprocessing.process.BaseProcess, "start", _refuse(item, "a multiprocessing process"))
    patch.setattr(socket.socket, "listen", _refuse(item, "a server (a listening socket)"))
    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            patch.setattr(os, name, _refuse(item, f"a process (os.{name})"))
    return patch


def _guarded(item: pytest.Item):
    if item.get_closest_marker("process"):
        return (yield)
    patch = _forbid(item)
    try:
        result = yield
    finally:
        patch.undo()
    violations = item.stash.get(_VIOLATIONS, [])
    if violations:
        pytest.fail(violations[0], pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded(item))
