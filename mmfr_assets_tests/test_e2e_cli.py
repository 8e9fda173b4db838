"""End to end through the `mmfr` command: runs land in the instance, funnel printed, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets_tests.dagster_process import dagster_env

pytestmark = pytest.mark.e2e
MMFR = str(Path(sys.executable).parent / "mmfr")


def _mmfr(env, *args):
    return subprocess.run([MMFR, *args], env=env, capture_output=True, text=True, timeout=600)


def test_mmfr_run_records_runs_in_the_shared_instance_and_prints_the_funnel(tmp_path, real_sample):
    env = dagster_env(tmp_path / "home", real_sample, tmp_path / "lake")
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  difficulty_filtered:\n    config:\n      max_pass_rate: 0.75\n")
    done = _mmfr(env, "run", "--subsets", "FineVision-geo170k(qa),BMMR", "--max-samples", "6",
                 "--config", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "== FineVision-geo170k(qa)" in done.stdout and "difficulty_too_easy" in done.stdout
    # the plan heads the output, planned vs actual ends it (issue 28)
    assert done.stdout.startswith("mmfr plan: 2 subset(s)") and "| requests planned" in done.stdout
    assert "(no endpoint: skipped)" in done.stdout and (tmp_path / "lake" / "_plan.json").exists()
    lake = tmp_path / "lake"
    assert count_rows(DeltaLocation(str(lake / "collected")), {"subset": "BMMR"}) == 6
    # BMMR's first 6 rows: pass rates 1, .75, 0, 1, 1, .5, all consistent -> 3 kept at <= 0.75
    assert count_rows(DeltaLocation(str(lake / "difficulty_filtered")), {"subset": "BMMR"}) == 3
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_run_records()
        assert len(runs) == 2 and all(r.dagster_run.is_success for r in runs)
        assert {r.dagster_run.tags["dagster/partition"] for r in runs} == {
            "FineVision-geo170k(qa)", "BMMR"
        }


def test_mmfr_run_until_stops_after_the_named_asset_in_the_target_order(tmp_path, real_sample):
    """`--until` stops after the named asset; `--target 123k` puts the whole command in the
    student-first order (issue 33): the funnel it prints shows `distilled`'s skips, and the
    materializations record that order's code versions, not the paper's."""
    from mmfr_assets.code_versions import code_versions

    env = dagster_env(tmp_path / "home", real_sample, tmp_path / "lake")
    done = _mmfr(env, "run", "--subsets", "BMMR", "--until", "distilled", "--max-samples", "6",
                 "--target", "123k", "--max-concurrent-runs", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert count_rows(DeltaLocation(str(tmp_path / "lake" / "cleaned")), {"subset": "BMMR"}) == 6
    assert not (tmp_path / "lake" / "quality_filtered").exists()
    # BMMR's first 6 rows: pass rates 1, .75, 0, 1, 1, .5: only the 0 can pass the 123K rule
    assert count_rows(DeltaLocation(str(tmp_path / "lake" / "distilled")), {"subset": "BMMR"}) == 1
    assert "teacher_skipped_easy" in done.stdout, done.stdout[-3000:]
    expected = code_versions("123k")
    assert expected["distilled"] != code_versions("all")["distilled"]
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        for name in ("distilled", "teacher_responses", "student_rollouts"):
            [record] = instance.fetch_materializations(dg.AssetKey(name), limit=1).records
            assert record.asset_materialization.tags["dagster/code_version"] == expected[name], name


def test_mmfr_run_fails_loudly(tmp_path, real_sample):
    env = dagster_env(tmp_path / "home", real_sample, tmp_path / "lake")
    unknown = _mmfr(env, "run", "--subsets", "NoSuchSubset")
    assert unknown.returncode != 0 and "unknown subset" in unknown.stderr
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the lake should be")
    env["MMFR_LAKE"] = str(blocked)
    failed = _mmfr(env, "run", "--subsets", "BMMR", "--max-samples", "2")
    assert failed.returncode == 1 and "FAILED" in failed.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("ops:\n  collected:\n    config:\n      no_such_field: 1\n")
    env["MMFR_LAKE"] = str(tmp_path / "lake")
    invalid = _mmfr(env, "run", "--subsets", "BMMR", "--config", str(bad))
    assert invalid.returncode == 2 and "invalid run config" in invalid.stderr
