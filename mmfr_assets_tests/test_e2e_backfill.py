"""A backfill launched the way the UI launches it, run by the real daemon, on SQLite and on
PostgreSQL instance storage.

`dagster-webserver` and `dagster-daemon` run on the project's workspace.yaml and dagster.yaml
(or deploy/dagster-postgres.yaml) with a fresh DAGSTER_HOME. The subsets are partitions as soon
as the UI loads, before anything ran; the backfill goes through the `launchPartitionBackfill`
mutation with the parameters of the UI's partition dialog; the run queue of dagster.yaml runs
the partitions side by side; every partition of every asset must end materialized with its
funnel metadata, matching what the lake's Delta tables hold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets.lineage import LINE, NODES
from mmfr_assets_tests.dagster_process import (
    REPO_ROOT,
    assert_accounted,
    daemon,
    dagster_env,
    graphql,
    lake_snapshot,
    launch_partition_backfill,
    wait_for_backfill,
    wait_for_daemons,
    webserver,
)

pytestmark = pytest.mark.e2e

POSTGRES_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # the UI's launchpad run config
BACKFILL_TAG_LIMIT = 3  # dagster.yaml: concurrency.runs.tag_concurrency_limits dagster/backfill

ASSET_STATE = """
query AssetState($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeysByDimension { partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      }
    }
  }
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on PathMetadataEntry { path }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}
"""

CHECK_EXECUTIONS = """
query Checks($key: AssetKeyInput!) {
  assetCheckExecutions(assetKey: $key, checkName: "rows_accounted_for", limit: 100) {
    partition status runId
  }
}
"""

ALL_ASSETS = "{ assetNodes { assetKey { path } pools isPartitioned } }"
SET_POOL_LIMIT = """
mutation SetPool($pool: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $pool, limit: $limit) }
"""

BACKFILL_RUN_TIMES = """
query Runs($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    ... on PartitionBackfill { runs { id status startTime endTime } }
  }
}
"""


def _source_subsets(source: Path) -> list[str]:
    front = source.joinpath("README.md").read_text().split("---")[1]
    return [c["config_name"] for c in yaml.safe_load(front)["configs"]]


def _max_overlap(runs: list[dict]) -> int:
    events = sorted(
        [(r["startTime"], 1) for r in runs] + [(r["endTime"], -1) for r in runs],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _backfill_end_to_end(
    tmp_path: Path, source: Path, subsets: list[str], *, set_pools: bool = False,
    run_config: dict | None = None, **instance
) -> None:
    lake = tmp_path / "lake"
    env = dagster_env(tmp_path / "home", source, lake, **instance)
    daemon_log, webserver_log = tmp_path / "daemon.log", tmp_path / "webserver.log"
    # Webserver first: it creates the fresh instance's storage before the daemon opens it (two
    # processes initializing one SQLite instance at once can both stamp its schema version).
    with webserver(env, webserver_log) as url, daemon(env, daemon_log) as daemon_process:
        # What a user who only started the UI sees: every subset is a partition of every
        # asset, nothing materialized yet.
        nodes = graphql(url, ALL_ASSETS)["assetNodes"]
        assets = [n["assetKey"]["path"][-1] for n in nodes if n["isPartitioned"]]  # not `report`
        assert set(LINE) <= set(assets)
        if set_pools:
            # The deployment step for a PostgreSQL instance (docs/operating.md): give every pool
            # of the code location its limit before the first runs, as Deployment > Concurrency
            # in the UI does. Left to first use, two runs initializing one pool at once fail one
            # of them on PostgreSQL and leak its slots (Dagster 1.13.27).
            for pool in sorted({p for n in nodes for p in n["pools"]}):
                assert graphql(url, SET_POOL_LIMIT, {"pool": pool, "limit": 1})["setConcurrencyLimit"]
        for name in assets:
            node = graphql(url, ASSET_STATE, {"key": {"path": [name]}, "partitions": []})[
                "assetNodeOrError"
            ]
            keys = node["partitionKeysByDimension"][0]["partitionKeys"]
            assert sorted(keys) == sorted(_source_subsets(source)), name
            assert node["assetPartitionStatuses"]["materializedPartitions"] == []

        # "Materialize all" in the asset graph, a few subsets picked in the partition dialog.
        backfill_id = launch_partition_backfill(
            url, assets, subsets, title="e2e: every asset, some subsets", run_config=run_config
        )
        wait_for_daemons(url, daemon_process, daemon_log)
        backfill = wait_for_backfill(url, backfill_id, timeout=600, logs=[daemon_log])

        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert sorted(backfill["partitionNames"]) == sorted(subsets)
        runs = backfill["runs"]
        assert all(r["status"] == "SUCCESS" for r in runs), runs
        # One run per subset (the whole chain of assets in one run), tagged for the run queue.
        partitions = sorted(
            next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition") for r in runs
        )
        assert partitions == sorted(subsets)
        assert all({"key": "dagster/backfill", "value": backfill_id} in r["tags"] for r in runs)
        # The run queue let the subsets run side by side, within the backfill's limit.
        timed = graphql(url, BACKFILL_RUN_TIMES, {"backfillId": backfill_id})[
            "partitionBackfillOrError"
        ]["runs"]
        assert 2 <= _max_overlap(timed) <= BACKFILL_TAG_LIMIT, timed

        rows = {
            (name, s): count_rows(DeltaLocation(str(lake / name)), {"subset": s})
            for name in LINE
            for s in subsets
        }
        snapshot = lake_snapshot(lake, subsets)
        upstream_of = dict(zip(LINE[1:], LINE))
        filters_of = {n: NODES[n].filters for n in LINE}
        for name in assets:
            state = graphql(url, ASSET_STATE, {"key": {"path": [name]}, "partitions": subsets})
            statuses = state["assetNodeOrError"]["assetPartitionStatuses"]
            assert sorted(statuses["materializedPartitions"]) == sorted(subsets), name
            assert statuses["failedPartitions"] == []
            materializations = state["assetOrError"]["assetMaterializations"]
            assert sorted(m["partition"] for m in materializations) == sorted(subsets), name
            for m in materializations:
                subset = m["partition"]
                meta = {e["label"]: e.get("intValue", e.get("path")) for e in m["metadataEntries"]}
                meta.update({e["label"]: json.loads(e["jsonString"])
                             for e in m["metadataEntries"] if "jsonString" in e})
                where = f"{name}/{subset}"
                assert isinstance(meta.get("dagster/row_count"), int), where
                if name not in filters_of:
                    continue  # a helper table (teacher outputs): rows out is all we check
                # Rows out as the UI shows them = rows the committed Delta partition holds.
                assert meta["dagster/row_count"] == rows[(name, subset)], where
                assert meta["dagster/uri"] == str(lake / name), where
                upstream = upstream_of.get(name, name)  # `collected` reads the source: drops none
                assert meta["rows_in"] == rows[(upstream, subset)], where
                dropped_total = 0
                for f in filters_of[name]:
                    by_filter = 0
                    for reason in f.reasons:
                        # Every declared reason is reported, zero or not, and equals the rows
                        # the rejections table holds for it.
                        assert meta["dropped"][reason] == snapshot["drops"].get(
                            (name, subset, f.name, reason), 0
                        ), f"{where} dropped/{reason}"
                        by_filter += meta["dropped"][reason]
                    dropped_total += by_filter
                assert meta["rows_in"] == meta["dagster/row_count"] + dropped_total, where
            if name not in filters_of:
                continue
            # The blocking accounting check passed for every partition.
            checks = graphql(url, CHECK_EXECUTIONS, {"key": {"path": [name]}})[
                "assetCheckExecutions"
            ]
            assert sorted((c["runId"], c["status"]) for c in checks) == sorted(
                (r["id"], "SUCCEEDED") for r in runs
            ), name
        assert all(rows[("collected", s)] == 10 for s in subsets)  # the real sample's rows
        # The real sample drops rows somewhere: the metadata above was not all zeros.
        assert any(snapshot["drops"].values())
    assert_accounted(lake_snapshot(lake, subsets), subsets)


def test_ui_backfill_materializes_every_partition_on_sqlite(tmp_path, real_sample):
    # Two subsets (one with the parentheses real subset names have) are enough to see runs side
    # by side; each run is ~20 step processes, so a third cost ~3 of the suite's ~15 minutes.
    _backfill_end_to_end(tmp_path, real_sample, ["BMMR", "FineVision-geo170k(qa)"])


# -- PostgreSQL instance storage --------------------------------------------------------------


def test_postgres_instance_yaml_is_the_repo_instance_on_postgres():
    """deploy/dagster-postgres.yaml = dagster.yaml (run queue, pools, telemetry) + storage
    whose every connection setting comes from the environment."""
    local = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    deploy = yaml.safe_load(POSTGRES_YAML.read_text())
    storage = deploy.pop("storage")
    assert deploy == local
    settings = dict(storage["postgres"]["postgres_db"])
    assert settings.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres brings
    assert settings == {
        key: {"env": f"DAGSTER_PG_{suffix}"}
        for key, suffix in [("hostname", "HOST"), ("port", "PORT"), ("username", "USER"),
                            ("password", "PASSWORD"), ("db_name", "DB")]
    }


def test_ui_backfill_materializes_every_partition_on_postgres(
    tmp_path, real_sample, postgres_database
):
    import psycopg2

    dsn = postgres_database.pop("_dsn")
    postgres_database.pop("_url")
    # What differs from the SQLite test is the instance storage, so each run executes its steps
    # in its own worker process (the `in_process` executor, as `mmfr run` and the run-monitoring
    # test's backfill do): the default multiprocess executor, one process per step, is the
    # SQLite test's; here it would only repeat ~40 step process starts (half of this test).
    _backfill_end_to_end(
        tmp_path, real_sample, ["WeMath2-Pro", "FineVision-ai2d_merged"], set_pools=True,
        run_config=IN_PROCESS, instance_yaml=POSTGRES_YAML, **postgres_database,
    )
    # The runs, their events and the backfill live in PostgreSQL, not in SQLite files.
    with psycopg2.connect(dsn, connect_timeout=10) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == 2
        cursor.execute(
            "SELECT count(*), count(DISTINCT asset_key) FROM event_logs"
            " WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
        materializations, assets = cursor.fetchone()
        assert materializations == 2 * assets and assets >= len(LINE)
        cursor.execute("SELECT count(*) FROM bulk_actions")
        assert cursor.fetchone()[0] == 1
    home = tmp_path / "home"
    assert not list(home.rglob("*.db")), "SQLite storage was used"
