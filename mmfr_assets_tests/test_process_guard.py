"""The `process` marker's enforcement (`process_guard.py`): an unmarked test that starts a
process or a server fails even when the code under test swallows the error; a marked one, or
one using a server fixture, runs; and `-m "not process"` (make test-fast) leaves the marked out."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = '''
import socket, subprocess, sys
import pytest

@pytest.fixture
def fake_llm_server():
    return "a server"

def test_plain():
    assert sum([1, 2]) == 3

def test_unmarked_subprocess():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_unmarked_swallowed():
    try:
        subprocess.run([sys.executable, "-c", "pass"])
    except Exception:
        pass

def test_unmarked_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()

@pytest.fixture
def spawned():
    return subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True).stdout

def test_unmarked_fixture_spawns(spawned):
    pass

@pytest.mark.process
def test_marked_subprocess():
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0

def test_uses_a_server_fixture(fake_llm_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
'''


@pytest.fixture
def inner(pytester):
    pytester.makeconftest('pytest_plugins = ["mmfr_assets_tests.process_guard"]')
    pytester.makeini("[pytest]\nmarkers =\n    process: starts a process\n    e2e: e2e\n")
    pytester.makepyfile(test_inner=INNER)
    return pytester


@pytest.mark.process  # the inner tests start processes (that is what is checked)
def test_unmarked_tests_that_start_processes_fail_and_marked_ones_run(inner):
    result = inner.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    outcomes = {r.nodeid.split("::")[1]: r.outcome
                for r in result.reprec.getreports("pytest_runtest_logreport") if r.when == "call" or r.failed}
    assert outcomes == {
        "test_plain": "passed",
        "test_unmarked_subprocess": "failed",
        "test_unmarked_swallowed": "failed",
        "test_unmarked_server": "failed",
        "test_unmarked_fixture_spawns": "failed",   # an error in setup
        "test_marked_subprocess": "passed",
        "test_uses_a_server_fixture": "passed",
    }
    assert "not marked `process`" in result.stdout.str()


@pytest.mark.process
def test_not_process_selects_what_starts_nothing(inner):
    result = inner.runpytest("-p", "no:cacheprovider", "-p", "no:xdist", "-m", "not process", "--collect-only", "-q")
    collected = {line.split("::")[1] for line in result.stdout.lines if "::" in line}
    assert collected == {"test_plain", "test_unmarked_subprocess", "test_unmarked_swallowed",
                         "test_unmarked_server", "test_unmarked_fixture_spawns"}
