"""Runs of `mmfr run` whose process died without saying so (SIGKILL, out of memory, a closed
terminal) stay STARTED in the instance and keep the pool slots their steps held, so the next run
of a step in that pool waits for its endpoint forever.

`mmfr run` executes in process, where the daemon's run monitoring cannot see a worker to check.
So every such run carries its host and process id in tags, and the next `mmfr run` on that host
marks the runs whose process is gone as failed and frees their slots before it starts.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

PID_TAG = "mmfr/pid"
HOST_TAG = "mmfr/host"


def run_tags() -> dict[str, str]:
    """Tags naming this process, for every run `mmfr run` executes."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's unfinished `mmfr run` runs whose process is gone as failed and free the
    pool slots they hold; returns their run ids."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={HOST_TAG: socket.gethostname()},
        )
    )
    failed = []
    for record in records:
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        instance.report_run_failed(
            run, f"the `mmfr run` process (pid {pid}) ended without finishing this run")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed
