"""Pools keep parallel runs of many subsets within each endpoint's limit, across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from mmfr_devkit.fake_server import start_fake_server
from mmfr_assets_tests.dagster_process import dagster_env

pytestmark = pytest.mark.e2e
MAX_CONCURRENCY = 3


def _source_without_traces(real_sample: Path, out: Path, subsets: list[str]) -> Path:
    """Two real subsets whose published traces were dropped: every row needs the teacher.
    Each holds other real rows (BMMR's, Euclid30K's): copies of one subset's rows would be
    near-duplicates across subsets, which `deduplicated` drops before the teacher."""
    lines = ["---", "configs:"]
    for subset, real in zip(subsets, ("BMMR", "Euclid30K"), strict=True):
        (out / subset).mkdir(parents=True)
        rows = pl.read_parquet(real_sample / real / "train-00000-of-00001.parquet")
        rows = rows.with_columns(
            pl.lit(None, pl.String).alias("qwen3vl_235b_thinking_response"),
            pl.col("question") + f" (subset {subset})",  # distinct requests, no shared cache hits
        )
        rows.write_parquet(out / subset / "train-00000-of-00001.parquet")
        lines += [f'- config_name: "{subset}"', "  data_files:", "  - split: train",
                  f'    path: "{subset}/train-*.parquet"']
    (out / "README.md").write_text("\n".join(lines + ["---", ""]))
    return out


def test_parallel_runs_share_each_endpoint_within_its_pool(tmp_path, real_sample):
    subsets = ["A", "B(x)"]
    source = _source_without_traces(real_sample, tmp_path / "source", subsets)
    cot, caption = start_fake_server({"latency_s": 0.4}), start_fake_server({"latency_s": 0.4})
    try:
        env = dagster_env(tmp_path / "home", source, tmp_path / "lake",
                          MMFR_LLM_CACHE=str(tmp_path / "cache.sqlite"),
                          MMFR_COT_TEACHER_BASE_URL=cot.url, MMFR_COT_TEACHER_MODEL="m",
                          MMFR_COT_TEACHER_MAX_CONCURRENCY=str(MAX_CONCURRENCY))
        mmfr = str(Path(sys.executable).parent / "mmfr")
        # the fake teacher answers at random: its traces would be asked again for the answer check
        config = tmp_path / "run.yaml"
        config.write_text("ops:\n  teacher_responses:\n    config: {check_answer: false}\n")
        runs = [
            subprocess.Popen([mmfr, "run", "--subsets", s, "--until", "teacher_responses",
                              "--config", str(config)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for s in subsets
        ]
        outputs = [r.communicate(timeout=300)[0].decode() for r in runs]
        assert all(r.returncode == 0 for r in runs), outputs
        stats = cot.stats()
        assert stats["requests"] == 20  # 10 rows per subset, each asked once
        # pool `cot_teacher` (default limit 1): the two runs' steps never overlap
        assert stats["max_in_flight"] == MAX_CONCURRENCY
        assert caption.stats()["requests"] == 0  # captions are published: nothing to ask
        responses = pl.read_delta(str(tmp_path / "lake" / "teacher_responses"))
        assert responses["response_origin"].to_list() == ["generated"] * 20
    finally:
        cot.stop()
        caption.stop()
