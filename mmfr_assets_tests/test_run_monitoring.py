"""Run monitoring: a run whose worker died or hung is marked failed within a bounded time, so
its queue slot and pool slots come back.

A real `dagster-daemon` on a temporary DAGSTER_HOME whose dagster.yaml is the repo's with only
the two time settings shortened (poll every second, 120 s maximum runtime instead of a day):
- a run launched through the queue (daemon -> code server -> run worker subprocess, the default
  run launcher) whose worker is SIGKILLed: the code server that launched it sees the worker gone
  and fails the run, and run retries (on in the repo's instance) launch it again; a run that
  fails at its step (a real failure) is not retried;
- a run launched the same way whose worker hangs (SIGSTOP: alive, never answers): monitoring
  fails it once it exceeds the maximum runtime;
- a run executing in-process, as `mmfr run` executes (`dagster asset materialize` here), SIGKILLed:
  no code server watches it, monitoring fails it once it exceeds the maximum runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from mmfr_assets_tests.dagster_process import BIN, REPO_ROOT, create_instance_storage, stop

pytestmark = pytest.mark.e2e

MAX_RUNTIME = 120  # the test instance's run_monitoring.max_runtime_seconds: longer than a worker
# takes to start its step on a loaded machine, so the step runs before the bound is reached


def test_repo_instance_bounds_dead_and_hung_runs():
    """The shipped instance config turns monitoring on with a bounded runtime and poll."""
    for path in (REPO_ROOT / "dagster.yaml", REPO_ROOT / "deploy" / "dagster-postgres.yaml"):
        monitoring = yaml.safe_load(path.read_text())["run_monitoring"]
        assert monitoring["enabled"] is True, path
        assert 0 < monitoring["max_runtime_seconds"] <= 7 * 86400, path
        assert 0 < monitoring["poll_interval_seconds"] <= 120, path
        assert 0 < monitoring["start_timeout_seconds"], path
        assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 300, path


@contextmanager
def daemon(env: dict[str, str], log_path: Path, workspace: Path):
    """`dagster-daemon run` on the test code location (its own process group, stopped after)."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)


def _instance_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, max_runtime_seconds=MAX_RUNTIME)
    config["run_retries"].update(max_retries=1)  # one retry of the killed run, not of the retry
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    create_instance_storage(home)  # the daemon and `dagster job launch` start together
    return home


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


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


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


def test_dead_and_hung_run_workers_are_marked_failed(tmp_path):
    home = _instance_home(tmp_path)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "mmfr_assets_tests.no_hang_defs", "working_directory": str(REPO_ROOT)}}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
    env.update(DAGSTER_HOME=str(home), MMFR_LAKE=str(tmp_path / "lake"),
               MMFR_TEST_PID_DIR=str(pid_dir), PYTHONPATH=str(REPO_ROOT))
    launch = [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "waits_job"]
    leftovers: list[int] = []  # processes to end whatever happens
    in_process = None
    try:
        with daemon(env, tmp_path / "daemon.log", workspace) as _:
            # Two runs through the queue: the daemon launches each in a worker subprocess.
            _launch(launch, env)
            killed_run, step_pid = _wait_for_pid_file(pid_dir, 300)
            leftovers.append(step_pid)
            # The step runs in a subprocess of the run worker (multiprocess executor): kill the
            # run worker itself.
            os.kill(_parent(step_pid), signal.SIGKILL)
            status, messages, tags = _finished(home, killed_run, MAX_RUNTIME + 120)
            assert status == "FAILURE"
            # Seen by the code server that launched the worker, before any runtime bound.
            assert f"Run execution process for {killed_run} was terminated by signal 9" in messages
            assert "maximum runtime" not in messages
            # Run retries: a lost worker is launched again (it would resume from the cache) ...
            assert tags["dagster/will_retry"] == "true"
            retry = _retry_of(home, killed_run, 120)
            retry_run, retry_pid = _wait_for_pid_file(pid_dir, 300)
            leftovers.append(retry_pid)
            assert retry_run == retry
            # ... a run that failed for a real reason (its step raised) is not.
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

            for run_id in (hung_run, inline_run):
                status, messages = _wait_for_end(home, run_id, MAX_RUNTIME + 120)
                assert status == "FAILURE", run_id
                assert f"maximum runtime of {MAX_RUNTIME} seconds" in messages, messages[-2000:]
    finally:
        for pid in leftovers:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if in_process is not None:
            stop(in_process)
