"""Real Dagster processes for end-to-end tests: a webserver and a daemon on loopback, and the
GraphQL calls the UI makes to them (launch a partition backfill, follow it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_env(
    home: Path, source: Path, lake: Path | str, *, instance_yaml: Path | None = None, **extra: str
) -> dict[str, str]:
    """Environment for a Dagster process on a fresh instance of this repo's dagster.yaml (or of
    `instance_yaml`, e.g. deploy/dagster-postgres.yaml, linked in as DAGSTER_HOME/dagster.yaml)."""
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(instance_yaml or REPO_ROOT / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
    env.update(
        DAGSTER_HOME=str(home), MMFR_SOURCE=str(source), MMFR_LAKE=str(lake),
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra,
    )
    return env


def create_instance_storage(home: Path) -> None:
    """Create the instance's tables before two Dagster processes start on a fresh DAGSTER_HOME.

    Dagster creates a SQLite instance's schema on first open, unguarded: a daemon and a
    `dagster job launch` started together both create the tables and stamp alembic's version,
    and one fails ("Version table 'alembic_version' has more than one head present", then a
    SQLite OperationalError; exit 1, seen in CI on 2 cores and 1 start in 4 here)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # run storage
        instance.event_log_storage.get_asset_records([])  # event log storage
        instance.schedule_storage  # noqa: B018 - opening it creates its tables


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _log_tail(log_path: Path, chars: int = 3000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@contextmanager
def webserver(env: dict[str, str], log_path: Path, timeout: float = 180,
              workspace: str | Path = "workspace.yaml"):
    """Start `dagster-webserver -w workspace.yaml` (or `workspace`) on a free loopback port; yields its URL
    once the code location has loaded, and stops it (and its code server) afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
             "-p", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"webserver exited: {_log_tail(log_path)}")
                try:
                    entries = graphql(url, LOCATION_STATUS, timeout=5)["workspaceOrError"][
                        "locationEntries"
                    ]
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        errors = [e["locationOrLoadError"] for e in entries
                                  if e["locationOrLoadError"]["__typename"] == "PythonError"]
                        assert not errors, f"code location failed to load: {errors}"
                        break
                except (OSError, KeyError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"webserver not ready: {_log_tail(log_path)}")
                time.sleep(0.5)
            yield url
        finally:
            stop(process)


@contextmanager
def daemon(env: dict[str, str], log_path: Path, workspace: str | Path = "workspace.yaml"):
    """Start `dagster-daemon run -w workspace.yaml` (or `workspace`; run queue, backfills, run monitoring) in its
    own process group; yields the process at once (it loads the code location in the
    background: see `wait_for_daemons`), and stops it with its code server and any run worker
    it launched afterwards."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)


@contextmanager
def code_server(env: dict[str, str], log_path: Path, workspace_path: Path, timeout: float = 180):
    """Serve the code location once (`dagster code-server start`, as docs/operating.md advises
    for long backfills and the Helm chart's user deployment does) on a free loopback port;
    yields a workspace file with its `grpc_server` entry for the webserver and the daemon, which
    then launch runs through it instead of starting (and every 60 s replacing) their own."""
    port = free_port()
    workspace_path.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
        f"      location_name: mmfr_assets\n")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "code-server", "start", "-m", "mmfr_assets.definitions",
             "-h", "127.0.0.1", "-p", str(port), "--location-name", "mmfr_assets"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until(lambda: subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
            env=env, capture_output=True).returncode == 0, process, "code server not serving", log_path, timeout, 1.0)
        yield workspace_path
    finally:
        stop(process)


def _wait_until(ready, process: subprocess.Popen, failure: str, log_path: Path, timeout: float,
                interval: float) -> None:
    """Poll `ready()` every `interval` s until it holds; `failure` and the log's tail if the
    server exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{failure}: {_log_tail(log_path)}")
        time.sleep(interval)


DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""


def wait_for_daemons(
    url: str,
    daemon_process: subprocess.Popen | None = None,
    log_path: Path | None = None,
    required: Iterable[str] = ("BACKFILL", "QUEUED_RUN_COORDINATOR"),
    timeout: float = 180,
) -> None:
    """Wait until the webserver at `url` reports the `required` daemons healthy (heartbeats)."""
    required = set(required)
    deadline = time.monotonic() + timeout
    while True:
        if daemon_process is not None and daemon_process.poll() is not None:
            raise AssertionError(f"dagster-daemon exited: {_log_tail(log_path) if log_path else ''}")
        statuses = graphql(url, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        if required <= healthy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"daemons not healthy after {timeout}s: {statuses}\n"
                f"{_log_tail(log_path) if log_path else ''}"
            )
        time.sleep(1)


# The mutation and the parameters the UI's "Materialize" > partitions dialog sends for assets
# of one partitions definition (ui-core LaunchAssetChoosePartitionsDialog.tsx, "pure" asset
# backfill: asset selection + partition names, no partition set).
LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def launch_partition_backfill(
    url: str,
    assets: Sequence[str],
    partitions: Sequence[str],
    *,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
    title: str | None = None,
) -> str:
    """Launch an asset backfill over `partitions` of `assets` as the UI does; returns its id."""
    all_tags = {"dagster/from_ui": "true", **(tags or {})}
    params: dict = {
        "assetSelection": [{"path": [a]} for a in assets],
        "partitionNames": list(partitions),
        "fromFailure": False,
        "tags": [{"key": k, "value": v} for k, v in all_tags.items()],
    }
    if run_config is not None:
        params["runConfigData"] = run_config
    if title is not None:
        params["title"] = title
    result = graphql(url, LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})[
        "launchPartitionBackfill"
    ]
    assert result["__typename"] == "LaunchBackfillSuccess", f"backfill not launched: {result}"
    return result["backfillId"]


BACKFILL_STATUS = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions partitionNames
      error { message }
      runs { id status tags { key value } }
    }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}
"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def wait_for_backfill(
    url: str, backfill_id: str, timeout: float = 600, logs: Sequence[Path] = ()
) -> dict:
    """Poll `partitionBackfillOrError` until the backfill reaches a final status; returns it.
    A run of the backfill that failed ends the wait at once, with the logs' tails."""
    deadline = time.monotonic() + timeout
    while True:
        backfill = graphql(url, BACKFILL_STATUS, {"backfillId": backfill_id})[
            "partitionBackfillOrError"
        ]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] in BACKFILL_DONE:
            return backfill
        failed = [r for r in backfill["runs"] if r["status"] in ("FAILURE", "CANCELED")]
        timed_out = time.monotonic() > deadline
        if failed or timed_out:
            tails = "\n".join(f"--- {p.name}\n{_log_tail(p, 6000)}" for p in logs)
            why = f"runs failed: {failed}" if failed else f"not done after {timeout}s"
            raise AssertionError(f"backfill {backfill_id}: {why}: {backfill}\n{tails}")
        time.sleep(2)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process started with `start_new_session=True` and everything in its group (code
    servers, run workers): SIGTERM, then SIGKILL for whatever is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # Children (code servers, run workers) may outlive the leader: end the whole group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


@contextmanager
def fresh_postgres_database(url: str, prefix: str = "mmfr_test"):
    """A new database on the PostgreSQL server of `url` (a role with CREATEDB), dropped afterwards:
    yields the DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads, plus "_dsn" and "_url"
    (the new database's, e.g. for MMFR_LLM_CACHE). Raises psycopg2.OperationalError if the
    server is unreachable."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2
    from psycopg2.extensions import make_dsn, parse_dsn

    admin = psycopg2.connect(url, connect_timeout=10)
    admin.autocommit = True
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        dsn = parse_dsn(url)
        try:
            yield {
                "DAGSTER_PG_HOST": dsn.get("host", "127.0.0.1"),
                "DAGSTER_PG_PORT": str(dsn.get("port", 5432)),
                "DAGSTER_PG_USER": dsn["user"],
                "DAGSTER_PG_PASSWORD": dsn.get("password", ""),
                "DAGSTER_PG_DB": name,
                "_dsn": make_dsn(url, dbname=name),
                "_url": urlunsplit(urlsplit(url)._replace(path=f"/{name}")),
            }
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@contextmanager
def s3_server(log_path: Path, environ: dict[str, str] | None = None, timeout: float = 60):
    """moto's S3 server (`moto_server`, installed with `moto[server]`) on a free loopback port,
    in its own process group; yields its endpoint URL once it answers, stops it afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(environ or {})},
        )
    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return True
        except OSError:
            return False

    try:
        _wait_until(answers, process, "moto server did not start", log_path, timeout, 0.2)
        yield endpoint
    finally:
        stop(process)


# -- reading the lake back ----------------------------------------------------------------------


def lake_snapshot(
    lake_uri: str | Path, subsets: Sequence[str], storage_options: dict[str, str] | None = None
) -> dict:
    """What the committed tables hold for `subsets`: the ids of every (table, subset) partition
    and the drops of every (stage, subset, filter, reason), as comparable plain values."""
    from mmfr_assets.lake.delta import DeltaLocation, read_partition
    from mmfr_assets.lineage import LINE

    options = storage_options or {}
    ids: dict[tuple[str, str], list[str]] = {}
    for table in LINE:
        location = DeltaLocation(f"{str(lake_uri).rstrip('/')}/{table}", options)
        for subset in subsets:
            ids[(table, subset)] = sorted(
                i
                for batch in read_partition(location, {"subset": subset}, columns=["id"])
                for i in batch["id"].to_pylist()
            )
    drops: dict[tuple[str, str, str, str], int] = {}
    rejected: dict[tuple[str, str], list[str]] = {}
    table = DeltaLocation(f"{str(lake_uri).rstrip('/')}/rejections", options).table()
    if table is not None:
        rows = table.to_pyarrow_dataset().to_table(
            columns=["stage", "subset", "id", "filter", "reason"]
        ).to_pylist()
        for row in rows:
            if row["subset"] in subsets:
                key = (row["stage"], row["subset"], row["filter"], row["reason"])
                drops[key] = drops.get(key, 0) + 1
                rejected.setdefault((row["stage"], row["subset"]), []).append(row["id"])
    return {"ids": ids, "drops": drops, "rejected": {k: sorted(v) for k, v in rejected.items()}}


def assert_accounted(snapshot: dict, subsets: Sequence[str]) -> None:
    """No partition lost, duplicated or half-written: ids are unique in every partition, and each
    stage's input (the upstream partition) is exactly its kept rows plus its rejections."""
    from mmfr_assets.lineage import LINE

    ids, rejected = snapshot["ids"], snapshot["rejected"]
    for (table, subset), values in ids.items():
        assert len(values) == len(set(values)), f"duplicate ids in {table}/{subset}"
    for subset in subsets:
        for upstream, stage in zip(LINE, LINE[1:]):
            kept, dropped = ids[(stage, subset)], rejected.get((stage, subset), [])
            assert sorted(kept + dropped) == ids[(upstream, subset)], (
                f"{stage}/{subset}: {len(ids[(upstream, subset)])} rows in, "
                f"{len(kept)} kept + {len(dropped)} rejected"
            )
