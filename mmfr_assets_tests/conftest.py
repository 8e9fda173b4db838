"""Shared fixtures: the bundled sample (generated once per session), the real published rows,
and a fresh lake per test. No test reaches a remote host: the hub is switched off."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Imported before any test runs: dagster's first import runs `file -b` (its vendored croniter
# calls platform.architecture()), which the process guard would blame on whichever unmarked
# test happened to import it first (test_verify's agreement test, when run alone).
import dagster  # noqa: F401,E402

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# A fresh datasets cache per session: no stale copies of reused tmp paths, no ~/.cache growth.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="mmfr-hf-cache-")
os.environ.setdefault("DAGSTER_HOME", "")  # tests pass instances explicitly
os.environ.pop("MMFR_TARGET", None)  # the paper's order; a test of another sets it itself

# The fake OpenAI-compatible server (one per test process) and its fixtures; the `process`
# marker's enforcement (`make test-fast` runs the tests without it).
pytest_plugins = ["mmfr_assets_tests.conftest_llm", "mmfr_assets_tests.process_guard"]

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_SAMPLE = Path(
    os.environ.get("MMFR_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "real_sample")
)


#: The tests that take minutes (`make test`'s durations, docs/development.md), run first.
#: `pytest -n 2` hands tests out in collection order, so a long test collected late starts late
#: and the other worker idles while it ends the session (test_run_monitoring.py, collected at
#: 721 of 911, is handed out with a fifth of the suite left). First in the order, they open the first
#: worker's first batch (xdist hands each worker a run of consecutive tests, then the rest one
#: batch at a time as they finish), so the other worker takes what follows, and what is left to
#: hand out at the end is short tests for both.
LONG_FIRST = (
    "mmfr_assets_tests/test_run_monitoring.py::test_lost_dead_and_hung_run_workers",
    "mmfr_assets_tests/test_selection_from_scratch.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {item.nodeid: n for n, prefix in enumerate(LONG_FIRST)
            for item in items if item.nodeid.startswith(prefix)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(LONG_FIRST)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory) -> Path:
    from mmfr_devkit.sample.generate import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "sample")


@pytest.fixture(scope="session")
def real_sample() -> Path:
    if not (REAL_SAMPLE / "README.md").exists():
        pytest.fail(f"the real published sample is expected at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture
def lake(tmp_path):
    from mmfr_assets.lake.resource import LakeResource

    return LakeResource(uri=str(tmp_path / "lake"))


@pytest.fixture
def postgres_database():
    """A fresh database on the server of MMFR_TEST_POSTGRES_URL (a role with CREATEDB), as the
    DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads; dropped afterwards."""
    url = os.environ.get("MMFR_TEST_POSTGRES_URL")
    required = os.environ.get("MMFR_REQUIRE_POSTGRES") == "1"
    how = (
        "set MMFR_TEST_POSTGRES_URL=postgresql://USER:PASSWORD@127.0.0.1:5432/postgres (a role "
        "with CREATEDB); as root, `eval \"$(bash deploy/local-postgres.sh)\"` starts one"
    )
    if not url:
        if required:
            pytest.fail(f"MMFR_REQUIRE_POSTGRES=1 but no PostgreSQL server is configured: {how}")
        pytest.skip(f"no PostgreSQL server configured: {how}")
    import psycopg2

    from mmfr_assets_tests.dagster_process import fresh_postgres_database

    try:
        psycopg2.connect(url, connect_timeout=10).close()
    except psycopg2.OperationalError as error:
        if required:
            pytest.fail(f"MMFR_REQUIRE_POSTGRES=1 but PostgreSQL is unreachable: {error}")
        pytest.skip(f"PostgreSQL at MMFR_TEST_POSTGRES_URL is unreachable: {error}")
    with fresh_postgres_database(url) as values:
        yield values
