"""Several subsets materializing at once into the same Delta tables, one of them killed.

Each table is shared by every subset (one partition each), so parallel runs commit to the same
Delta logs. What must hold: no partition is lost, duplicated or half-written; a run killed with
SIGKILL in the middle of writing leaves its partition's previous version readable and whole,
the other runs land, and running the killed subset again repairs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter, count_rows
from mmfr_assets.lineage import LINE
from mmfr_assets_tests.dagster_process import BIN, REPO_ROOT, assert_accounted, dagster_env, lake_snapshot

MMFR = str(BIN / "mmfr")
VICTIM = "FineVision-geo170k(qa)"  # the run we kill; a name that needs quoting on disk
OTHERS = ["BMMR", "LLaVA-CoT"]
SUBSETS = [VICTIM, *OTHERS]
ROWS = 1000  # rows per subset in the generated source
BEFORE_ROWS = 40  # the previous version of every partition (--max-samples)
OTHER_ROWS = 300  # what the parallel runs of the other subsets collect


def race_first_commits(location: DeltaLocation, subsets: list[str]) -> tuple[list, dict]:
    """One writer thread per subset on a table that does not exist yet, all committing at the
    same moment; returns the errors and the version each writer's commit() reported."""
    schema = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])
    barrier = threading.Barrier(len(subsets))
    errors: list[str] = []
    versions: dict[str, int] = {}

    def write(subset: str) -> None:
        try:
            with PartitionWriter(location, schema, {"subset": subset}) as writer:
                writer.write(pa.table({"id": [f"{subset}-{i}" for i in range(50)], "x": list(range(50))}))
                barrier.wait(timeout=60)
                versions[subset] = writer.commit()
        except Exception as error:  # noqa: BLE001 - collected for the assertion message
            errors.append(f"{subset}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=write, args=(s,)) for s in subsets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors, versions


def _files_at(location: DeltaLocation, version: int, subset: str) -> set[str]:
    table = DeltaTable(location.uri, version=version, storage_options=dict(location.storage_options) or None)
    folder = f"/subset={quote(subset, safe='')}/"
    return {uri for uri in table.file_uris() if folder in uri}


def assert_race_landed(location: DeltaLocation, subsets: list[str], errors: list, versions: dict):
    assert not errors, errors
    for s in subsets:
        assert count_rows(location, {"subset": s}) == 50
    # Each writer reports the version that holds its own commit (the `delta_version` metadata
    # of a materialization), not the snapshot it started from.
    assert len(set(versions.values())) == len(subsets), versions
    for subset, version in versions.items():
        assert version > 0 and _files_at(location, version, subset), (subset, version)
        assert not _files_at(location, version - 1, subset), (subset, version)


def test_concurrent_first_commits_create_the_table_once_and_report_their_own_version(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    subsets = [f"s({i})" for i in range(6)]
    errors, versions = race_first_commits(location, subsets)
    assert_race_landed(location, subsets, errors, versions)


# -- whole runs, in parallel processes ------------------------------------------------------------


def _mmfr(env, *args, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [MMFR, "run", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **popen,
    )


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{process.args}: {err[-3000:]}"
    return out


def _referenced(lake: Path, table: str) -> set[str]:
    root = f"{lake / table}/"
    return {uri.removeprefix(root) for uri in DeltaLocation(str(lake / table)).table().file_uris()}


def _on_disk(lake: Path, table: str, subset: str) -> set[str]:
    folder = f"subset={quote(subset, safe='')}"
    return {f"{folder}/{p.name}" for p in (lake / table / folder).glob("*.parquet")}


@pytest.mark.e2e
def test_parallel_runs_land_and_a_run_killed_mid_write_leaves_its_previous_version(tmp_path):
    from mmfr_devkit.sample.generate import write_sample

    source = write_sample(tmp_path / "source", subsets=SUBSETS, rows_per_subset=ROWS, image_size=32)
    lake = tmp_path / "lake"
    # The repo's instance, with room in every pool for the three runs: what is tested here is
    # three processes committing to the same tables and one killed mid-write, not pool queues
    # (test_endpoint_pools). With one slot a pool, a run was once seen waiting for ever on a
    # free slot under heavy load (its step enqueued, never assigned: Dagster's in-process claim).
    instance_yaml = tmp_path / "dagster.yaml"
    instance_yaml.write_text((REPO_ROOT / "dagster.yaml").read_text().replace("default_limit: 1", "default_limit: 3"))
    assert "default_limit: 3" in instance_yaml.read_text()
    env = dagster_env(tmp_path / "home", source, lake, instance_yaml=instance_yaml)

    # The previous version of every partition: a small run of each subset, one after another.
    _finish(_mmfr(env, "--subsets", ",".join(SUBSETS), "--max-samples", str(BEFORE_ROWS)))
    before = lake_snapshot(lake, SUBSETS)
    assert_accounted(before, SUBSETS)
    assert all(len(before["ids"][("collected", s)]) == BEFORE_ROWS for s in SUBSETS)
    victim_files = _on_disk(lake, "collected", VICTIM)

    # Now all three subsets at once, in three processes, each committing to the same tables.
    # The victim collects every row one row per batch so that its write lasts long enough to
    # be caught with its parquet file open and the commit not yet made.
    slow = tmp_path / "slow.yaml"
    slow.write_text("ops:\n  collected:\n    config: {batch_size: 1}\n")
    victim = _mmfr(env, "--subsets", VICTIM, "--config", str(slow))
    others = [_mmfr(env, "--subsets", s, "--max-samples", str(OTHER_ROWS)) for s in OTHERS]
    deadline = time.monotonic() + 300
    while not (_on_disk(lake, "collected", VICTIM) - victim_files):
        assert victim.poll() is None, f"the victim ended before it was killed: {victim.communicate()}"
        assert time.monotonic() < deadline, "the victim never started writing"
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)  # `mmfr run` executes in-process: this is the writer
    assert victim.wait(timeout=60) == -signal.SIGKILL
    others_still_running = sum(p.poll() is None for p in others)
    for p in others:
        _finish(p)

    after = lake_snapshot(lake, SUBSETS)
    assert_accounted(after, SUBSETS)
    # The killed partition: every table still serves exactly its previous version...
    for table in LINE:
        assert after["ids"][(table, VICTIM)] == before["ids"][(table, VICTIM)], table
    assert {k: v for k, v in after["drops"].items() if k[1] == VICTIM} == {
        k: v for k, v in before["drops"].items() if k[1] == VICTIM
    }
    # ...although the kill left a half-written file behind, which no table version references.
    orphans = _on_disk(lake, "collected", VICTIM) - _referenced(lake, "collected")
    assert orphans, "the victim was not killed mid-write"
    # The other partitions landed whole.
    for s in OTHERS:
        assert len(after["ids"][("collected", s)]) == OTHER_ROWS
    assert any(after["drops"].get(k) for k in after["drops"] if k[1] in OTHERS)

    # Running the killed subset again repairs it, and touches nothing else.
    _finish(_mmfr(env, "--subsets", VICTIM))
    repaired = lake_snapshot(lake, SUBSETS)
    assert_accounted(repaired, SUBSETS)
    assert len(repaired["ids"][("collected", VICTIM)]) == ROWS
    for table in LINE:
        for s in OTHERS:
            assert repaired["ids"][(table, s)] == after["ids"][(table, s)]
    # Orphans stay unreferenced (vacuum removes them); readers never see them.
    assert not orphans & _referenced(lake, "collected")

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        records = instance.get_run_records()
    by_subset: dict[str, list] = {}
    for r in records:
        by_subset.setdefault(r.dagster_run.tags["dagster/partition"], []).append(r.dagster_run)
    # 1 small run each, 1 parallel run each, plus the re-run of the victim.
    assert {s: len(runs) for s, runs in by_subset.items()} == {VICTIM: 3, **{s: 2 for s in OTHERS}}
    # An in-process run killed with SIGKILL cannot report its end: the next `mmfr run` on this
    # host finds its process gone, marks it failed and frees its pool slots; every other run
    # succeeded.
    killed = [r for r in by_subset[VICTIM] if r.status == dg.DagsterRunStatus.FAILURE]
    assert len(killed) == 1 and all(r.is_finished for runs in by_subset.values() for r in runs)
    assert all(r.is_success for runs in by_subset.values() for r in runs if r not in killed)
    print(json.dumps({"others_running_at_kill": others_still_running, "orphans": len(orphans)}))
