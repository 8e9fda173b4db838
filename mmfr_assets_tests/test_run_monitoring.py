"""Run monitoring and run retries: a run whose worker died or hung is marked failed within a
bounded time, so its queue slot and pool slots come back; a lost worker is retried and costs
only the requests it had in flight (issue 19's "Test that proves it").

One cluster on one machine, with the parts a cluster uses: PostgreSQL instance storage
(deploy/dagster-postgres.yaml with only the time settings changed: poll every second, 600 s
maximum runtime), the lake on the S3 server the object-store tests run (moto), the response
cache on PostgreSQL, a webserver and a `dagster-daemon` launching every run as its own process
(daemon -> code server -> run worker, as pods would be):
- a backfill of 2 subsets x 4 shards (MMFR_SHARDS=4) up to `teacher_responses` against the
  fake teacher at a fixed latency; one run's worker is SIGKILLed in the middle of
  `teacher_responses`: the code server sees the worker gone and fails the run, run retries
  launch it again, the retry repeats no request that had finished (counted at the server:
  the prompts received twice are at most the requests in flight at the kill: the one on the
  wire, the teacher's concurrency, and a reply whose cache write the kill may have cut),
  every source row is in each table exactly once, and every other shard's run succeeded once;
- a run that fails at its step (a real failure) is not retried;
- a run launched the same way whose worker hangs (SIGSTOP: alive, never answers): monitoring
  fails it once it exceeds the maximum runtime;
- a run executing in-process, as `mmfr run` executes (`dagster asset materialize` here), SIGKILLed:
  no code server watches it, monitoring fails it once it exceeds the maximum runtime.
The last two are bounded by their own `dagster/max_runtime` tag (the per-run override
dagster.yaml documents), a few seconds, set once their step is known to be running (hung or
dead): the instance's bound stays long enough for the backfill's runs on a loaded machine, and
no run is cut while it still starts; the test waits for monitoring's verdict, not for a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from mmfr_assets.lake.shards import shard_of
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401 (fixtures)
from mmfr_assets_tests.dagster_process import (
    BIN, LAUNCH_PARTITION_BACKFILL, REPO_ROOT, daemon, dagster_env, graphql, stop, wait_for_daemons,
    webserver,
)
from mmfr_assets_tests.test_object_store import CREDENTIALS, NO_CLOUD, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.e2e

MAX_RUNTIME = 600  # the test instance's run_monitoring.max_runtime_seconds: longer than a worker
# takes to start its step on a loaded machine, so the step runs before the bound is reached (at
# 120 s a backfill's shard run, its teacher step waiting on the pool of 1, was stopped at the
# bound once at load 11); no run of the test waits for it (the hung runs carry their own)
RUN_MAX_RUNTIME = 3  # the hung and the killed run's own bound (tag dagster/max_runtime), set
# once their step started: already exceeded or nearly, so monitoring fails them at its next polls


def test_repo_instance_bounds_dead_and_hung_runs():
    """The shipped instance config turns monitoring on with a bounded runtime and poll."""
    for path in (REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "dagster-postgres.yaml"):
        monitoring = yaml.safe_load(path.read_text())["run_monitoring"]
        assert monitoring["enabled"] is True, path
        assert 0 < monitoring["max_runtime_seconds"] <= 7 * 86400, path
        assert 0 < monitoring["poll_interval_seconds"] <= 120, path
        assert 0 < monitoring["start_timeout_seconds"], path
        assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 300, path


def _wait_for_pid_file(pid_dir: Path, timeout: float, process=None) -> tuple[str, int]:
    """(run id, pid) of the `waits` worker that has not been seen before."""
    deadline = time.monotonic() + timeout
    while True:
        for f in pid_dir.glob("waits.*"):
            _, run_id, pid = f.name.split(".")
            f.rename(f.with_name("seen." + f.name))
            return run_id, int(pid)
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run's process exited: {process.returncode}")
        assert time.monotonic() < deadline, "the run's worker never started its step"
        time.sleep(0.5)


def _launch(command: list[str], env: dict[str, str]) -> None:
    """`dagster job launch`, its output in the failure message if it fails."""
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=300, capture_output=True,
                          text=True)
    assert done.returncode == 0, f"exit {done.returncode}: {(done.stdout + done.stderr)[-3000:]}"


def _wait_for_end(home: Path, run_id: str, timeout: float) -> tuple[str, str]:
    """The run's final status and the messages of its events, once it is finished."""
    return _finished(home, run_id, timeout)[:2]


def _finished(home: Path, run_id: str, timeout: float) -> tuple[str, str, dict[str, str]]:
    """The run's final status, the messages of its events and its tags, once it is finished
    (and, with run retries on, once the retry daemon has said whether it will retry it)."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            run = instance.get_run_by_id(run_id)
            if run.is_finished and (run.status.value != "FAILURE" or "dagster/will_retry" in run.tags):
                messages = "\n".join(e.message or "" for e in instance.all_logs(run_id))
                return run.status.value, messages, dict(run.tags)
            assert time.monotonic() < deadline, f"run {run_id} still {run.status} after {timeout}s"
            time.sleep(1)


def _latest_run_of(home: Path, job_name: str) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(filters=dg.RunsFilter(job_name=job_name), limit=1)[0].run_id


def _retry_of(home: Path, run_id: str, timeout: float) -> str:
    """The id of the run the retry daemon launched for `run_id`."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            retries = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
            if retries:
                return retries[0].run_id
            assert time.monotonic() < deadline, f"no retry of {run_id} after {timeout}s"
            time.sleep(1)


POSTGRES_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
SHARDS = 4
# What the backfill materializes: the line up to the teacher, every table a shard writes.
BACKFILL = ["collected", "question_reviews", "extracted_answers", "cleaned", "dedup_signatures",
            "deduplicated", "teacher_responses"]
TEACHER_LATENCY = 1.0  # seconds per request, fixed
TEACHER_CONCURRENCY = 1  # MMFR_COT_TEACHER_MAX_CONCURRENCY: requests on the wire at once
# A reply is durable in the response cache within its writer's 20 ms batch plus one PostgreSQL
# commit (mmfr_assets/llm/cache.py); one answered closer than this before the kill may be lost.
CACHE_COMMIT_WINDOW_S = 0.25
SET_POOL_LIMIT = """
mutation SetPool($pool: String!, $limit: Int!) { setConcurrencyLimit(concurrencyKey: $pool, limit: $limit) }
"""
ALL_POOLS = "{ assetNodes { pools } }"


def _postgres_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load(POSTGRES_YAML.read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, max_runtime_seconds=MAX_RUNTIME)
    config["run_retries"].update(max_retries=1)  # one retry of the killed run, not of the retry
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _events(instance, run_id: str):
    return [e for e in instance.all_logs(run_id) if e.dagster_event is not None]


def _step_started(instance, run_id: str, step: str) -> bool:
    return any(e.dagster_event.event_type_value == "STEP_START" and e.dagster_event.step_key == step
               for e in _events(instance, run_id))


def _worker_pid(instance, run_id: str) -> int:
    """The run worker's pid, from its executor's first event."""
    for e in _events(instance, run_id):
        message = e.message or ""
        if message.startswith("Executing steps") and "(pid: " in message:
            return int(message.rsplit("(pid: ", 1)[1].split(")")[0])
    raise AssertionError(f"run {run_id} has no worker pid")


def _with_descendants(pid: int) -> list[int]:
    """`pid` and every process under it (the forkserver and the step process)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, frontier = [pid], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _lost_shard_worker(url: str, home: Path, lake: str, options: dict, subsets: list[str], fake) -> None:
    """The backfill of `subsets` x 4 shards; one shard's worker killed mid-teacher (module doc)."""
    import dagster as dg
    import polars as pl

    # Every pool set before the first run (docs/operating.md): the teacher's to 1, so one shard
    # at a time is in teacher_responses; the endpoint-less steps' pools do not hold runs back.
    for pool in sorted({p for n in graphql(url, ALL_POOLS)["assetNodes"] for p in n["pools"]}):
        limit = 1 if pool == "cot_teacher" else 4
        assert graphql(url, SET_POOL_LIMIT, {"pool": pool, "limit": limit})["setConcurrencyLimit"]
    launched = graphql(url, LAUNCH_PARTITION_BACKFILL, {"backfillParams": {
        "assetSelection": [{"path": [a]} for a in BACKFILL], "allPartitions": True,
        "fromFailure": False, "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "title": "e2e: 2 subsets x 4 shards",
        # every row asks the teacher (the sample's own traces are not kept); each run's steps in
        # its worker process, as a run pod executes them
        # (and once: no second ask for a trace whose answer differs from the reference)
        "runConfigData": {"ops": {"teacher_responses": {"config": {"regenerate": True,
                                                                   "check_answer": False}}},
                          "execution": {"config": {"in_process": {}}}},
    }})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The first run to start teacher_responses (its pool lets one shard in at a time).
        deadline = time.monotonic() + 1500
        killed = None
        while killed is None:
            for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})):
                if run.status.value == "STARTED" and _step_started(instance, run.run_id, "teacher_responses"):
                    killed = run
            assert time.monotonic() < deadline, "no run reached teacher_responses"
            time.sleep(0.5)
        while fake.stats()["completed"] < 2:
            assert time.monotonic() < deadline, "the teacher never answered"
            time.sleep(0.1)
        finished = {p for p, n in fake.stats(detail=True)["completed_by_prompt"].items() if n}
        time.sleep(2.5)  # the cache commits what finished within a second: these are committed
        assert not instance.get_run_by_id(killed.run_id).is_finished, "the shard ended before the kill"
        killed_at = time.time()
        for pid in _with_descendants(_worker_pid(instance, killed.run_id)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # In flight at the kill, from the server once the worker is dead (it sends nothing more;
        # the server cancels the request it was serving, so that one stays received and never
        # answered): those requests, and a reply answered within the cache's commit window
        # before the kill (its cache write may have died with the worker).
        at_kill = fake.stats(detail=True)
        unanswered = sum(n - at_kill["completed_by_prompt"].get(p, 0) for p, n in at_kill["by_prompt"].items())
        answered_late = (at_kill["last_completion_at"] or 0.0) >= killed_at - CACHE_COMMIT_WINDOW_S
        in_flight = unanswered + answered_late
        status, messages, tags = _finished(home, killed.run_id, MAX_RUNTIME + 120)
        assert status == "FAILURE"
        assert f"Run execution process for {killed.run_id} was terminated by signal 9" in messages
        assert "maximum runtime" not in messages
        assert tags["dagster/will_retry"] == "true"
        retry = _retry_of(home, killed.run_id, 120)

        deadline = time.monotonic() + 1500
        while True:
            backfill = instance.get_backfill(backfill_id)
            if backfill.status.value not in ("REQUESTED", "CANCELING"):
                break
            assert time.monotonic() < deadline, f"backfill still {backfill.status} after 1500s"
            time.sleep(2)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        statuses = {r.run_id: r.status.value for r in runs}
        assert statuses.pop(killed.run_id) == "FAILURE"
        # The retry succeeded, and so did every other run, once: no other shard was disturbed.
        assert statuses.pop(retry) == "SUCCESS"
        assert set(statuses.values()) == {"SUCCESS"}, statuses
        assert [r.run_id for r in runs if r.tags.get("dagster/parent_run_id")] == [retry]
        # Each asset's partition was materialized by one run (the killed run's by its retry):
        # no other shard's work was done twice.
        done = [(a.path[-1], r.tags["dagster/partition"]) for r in runs if r.run_id != killed.run_id
                for a in r.asset_selection]
        assert len(done) == len(set(done)), sorted(done)
        keys = {key for _, key in done}
        assert {k for k in keys if "|" in k} == {f"{k}|{s}" for s in subsets for k in range(SHARDS)}
        assert instance.get_run_by_id(retry).tags["dagster/partition"] == killed.tags["dagster/partition"]

    # The retry repeated no request that had finished: each was received once in all.
    received = fake.stats(detail=True)["by_prompt"]
    assert finished and all(received[p] == 1 for p in finished), {p: received[p] for p in finished}
    # Counted: the prompts received more than once are at most the requests in flight at the
    # kill, and the teacher's concurrency bounds those (plus at most one reply not yet durable).
    repeated = sorted(p for p, n in received.items() if n > 1)
    assert unanswered <= TEACHER_CONCURRENCY, at_kill
    assert len(repeated) <= in_flight, (repeated, unanswered, answered_late)
    assert all(received[p] == 2 for p in repeated), {p: received[p] for p in repeated}

    def rows(table: str) -> pl.DataFrame:
        return pl.read_delta(f"{lake}/{table}", storage_options=options)

    rejected = rows("rejections")
    for subset in subsets:
        ids = {}
        for table in BACKFILL:
            frame = rows(table).filter(pl.col("subset") == subset)
            assert frame["id"].n_unique() == frame.height, f"{table}/{subset}: a row twice"
            assert frame["shard"].to_list() == [str(shard_of(subset, i, SHARDS)) for i in frame["id"]]
            ids[table] = set(frame["id"])
        dropped = {stage: set(rejected.filter((pl.col("subset") == subset) & (pl.col("stage") == stage))["id"])
                   for stage in ("cleaned", "deduplicated")}
        assert len(ids["collected"]) == 40 and len({*map(lambda i: shard_of(subset, i, SHARDS), ids["collected"])}) == SHARDS
        assert ids["question_reviews"] == ids["extracted_answers"] == ids["collected"]
        assert ids["cleaned"] | dropped["cleaned"] == ids["collected"]
        assert not ids["cleaned"] & dropped["cleaned"]
        assert ids["dedup_signatures"] == ids["cleaned"]
        assert ids["deduplicated"] | dropped["deduplicated"] == ids["cleaned"]
        assert ids["teacher_responses"] == ids["deduplicated"]
    teacher = rows("teacher_responses").filter(pl.col("subset").is_in(subsets))
    # every row was sent (regenerate), each answered: the ones in flight at the kill asked again
    assert len(received) == teacher.height


def test_lost_dead_and_hung_run_workers(tmp_path, postgres_database, s3_endpoint, fake_llm, monkeypatch):  # noqa: F811
    import boto3

    from mmfr_devkit.sample import SAMPLE_SUBSETS, write_sample

    subsets = list(SAMPLE_SUBSETS[:2])
    source = write_sample(tmp_path / "source", subsets=subsets)
    for key, value in {**CREDENTIALS, **NO_CLOUD}.items():
        monkeypatch.setenv(key, value)
    for key, value in postgres_database.items():
        if not key.startswith("_"):
            monkeypatch.setenv(key, value)  # this process reads the instance too
    bucket = f"mmfr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    options = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    lake = f"s3://{bucket}/lake"
    fake_llm.configure(latency_s=TEACHER_LATENCY)
    home = _postgres_home(tmp_path)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": "mmfr_assets.definitions", "location_name": "mmfr_assets",
                           "working_directory": str(REPO_ROOT)}},
        {"python_module": {"module_name": "mmfr_assets_tests.no_hang_defs", "location_name": "no_hang",
                           "working_directory": str(REPO_ROOT)}}]}))
    env = dagster_env(
        home, source, lake,
        **{k: v for k, v in postgres_database.items() if not k.startswith("_")},
        **CREDENTIALS, **NO_CLOUD,
        MMFR_LAKE_STORAGE_OPTIONS=json.dumps(options), MMFR_SHARDS=str(SHARDS),
        MMFR_LLM_CACHE=postgres_database["_url"],
        MMFR_COT_TEACHER_BASE_URL=fake_llm.url, MMFR_COT_TEACHER_MODEL="fake-model",
        # one request in flight: the kill lands mid-shard
        MMFR_COT_TEACHER_MAX_CONCURRENCY=str(TEACHER_CONCURRENCY),
        MMFR_TEST_PID_DIR=str(pid_dir), PYTHONPATH=str(REPO_ROOT),
    )
    launch = [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-l", "no_hang", "-j", "waits_job"]
    leftovers: list[int] = []  # processes to end whatever happens
    in_process = None
    try:
        with (webserver(env, tmp_path / "webserver.log", workspace=workspace) as url,
              daemon(env, tmp_path / "daemon.log", workspace) as daemon_process):
            wait_for_daemons(url, daemon_process, tmp_path / "daemon.log",
                             required=("BACKFILL", "QUEUED_RUN_COORDINATOR", "MONITORING"))
            _lost_shard_worker(url, home, lake, options, subsets, fake_llm)
            # A run that failed for a real reason (its step raised) is not retried.
            _launch([*launch[:-1], "breaks_job"], env)
            status, messages, tags = _finished(home, _latest_run_of(home, "breaks_job"), 300)
            assert status == "FAILURE" and "Steps failed: ['breaks']" in messages
            assert tags["dagster/will_retry"] == "false"
            _launch(launch, env)
            hung_run, hung_pid = _wait_for_pid_file(pid_dir, 300)
            leftovers.append(hung_pid)
            os.kill(hung_pid, signal.SIGSTOP)  # its step hangs: the run worker waits for it
            # One run in-process, the way `mmfr run` executes: its process is the worker.
            in_process = subprocess.Popen(
                [str(BIN / "dagster"), "asset", "materialize", "-m",
                 "mmfr_assets_tests.no_hang_defs", "--select", "waits"],
                cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            inline_run, _ = _wait_for_pid_file(pid_dir, 300, in_process)
            os.killpg(in_process.pid, signal.SIGKILL)
            assert in_process.wait(timeout=60) == -signal.SIGKILL

            # Both steps ran and neither run can end by itself now: each gets its own short
            # bound, which run monitoring reads from the run's tags at every poll.
            import dagster as dg

            with dg.DagsterInstance.from_config(str(home)) as instance:
                for run_id in (hung_run, inline_run):
                    assert instance.get_run_by_id(run_id).status.value == "STARTED", run_id
                    instance.add_run_tags(run_id, {"dagster/max_runtime": str(RUN_MAX_RUNTIME)})
            for run_id in (hung_run, inline_run):
                status, messages = _wait_for_end(home, run_id, RUN_MAX_RUNTIME + 300)
                assert status == "FAILURE", run_id
                assert f"maximum runtime of {RUN_MAX_RUNTIME} seconds" in messages, messages[-2000:]
    finally:
        for pid in leftovers:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if in_process is not None:
            stop(in_process)
