"""Shared fixtures: the bundled sample (generated once per session), the real published rows,
and a fresh lake per test. No test reaches a remote host: the hub is switched off."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# A fresh datasets cache per session: no stale copies of reused tmp paths, no ~/.cache growth.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="mmfr-hf-cache-")
os.environ.setdefault("DAGSTER_HOME", "")  # tests pass instances explicitly

# The fake OpenAI-compatible server (one per test process) and its fixtures.
pytest_plugins = ["mmfr_assets_tests.conftest_llm"]

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_SAMPLE = Path(
    os.environ.get("MMFR_REAL_SAMPLE", REPO_ROOT.parent / "shared" / "real_sample")
)


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory) -> Path:
    from mmfr_assets.sample.generate import write_sample

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
