"""No step process may hang or abort when a step fails while partition reads are mid-stream.

Many step processes through the multiprocess executor (`dagster asset materialize`, the path
the daemon's runs take) on a 20,000-row partition: some steps fail after a few batches with
their upstream scan, an `OrderedRows` and a `PartitionImages` half-read (the code location is
`no_hang_defs.py`), others read to the end. Every step process must exit, the failing steps
must be reported failed and the others succeeded; no process may abort (SIGABRT at interpreter
exit). Each process is bounded by the run's timeout; a process still alive at the end is hung.

Before the readers were closed deterministically, step processes were seen hanging at exit in
pyarrow's thread-pool shutdown with a read left half-consumed (apache/arrow#45214, #50482).
Measured on a machine loaded ~15 on 2 cores (not the CI budget): with the fix 14 of 14 and 12
of 12 step processes exited (375 s), 0 hung, 0 aborted; without it, one run had 1 of the first
2 step processes hung (gdb: main thread in `arrow::internal::ThreadPool::Shutdown` under
`exit`), which stalls the whole multiprocess executor, and another ran out of its 240 s before
any hang showed (the hang is probabilistic: 8 of 14 in the issue's measurement).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from mmfr_assets.collection.assets import COLLECTED_SCHEMA
from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter
from mmfr_assets_tests.dagster_process import BIN, REPO_ROOT

pytestmark = pytest.mark.e2e

ROWS = 20_000
FAILING, SUCCEEDING = 10, 4
STEPS = [f"fails_{k:02d}" for k in range(FAILING)] + [f"reads_{k:02d}" for k in range(SUCCEEDING)]
TIMEOUT = 600  # seconds for the whole run; only reached when a step process hangs


def write_text_partition(lake: Path, subset: str, rows: int, batch: int = 256) -> None:
    """A `collected` partition of `rows` text rows (small stand-in image bytes), in 256-row
    row groups as `collected` writes them: cheap to generate, long enough to be mid-read."""
    words = " ".join(f"w{i}" for i in range(200))
    with PartitionWriter(DeltaLocation(str(lake / "collected")), COLLECTED_SCHEMA,
                         {"subset": subset}) as writer:
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            columns = {f.name: pa.nulls(n, f.type) for f in COLLECTED_SCHEMA}
            columns.update(
                subset=pa.array([subset] * n),
                id=pa.array([str(k) for k in range(start, start + n)]),
                question=pa.array([f"question {start + k}: {words}" for k in range(n)]),
                answer=pa.array([str(k) for k in range(n)]),
                image_bytes=pa.array([bytes(1024)] * n, pa.binary()),
            )
            writer.write(pa.table(columns, schema=COLLECTED_SCHEMA))
        writer.commit()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_failing_and_succeeding_steps_all_exit(tmp_path):
    import dagster as dg

    lake, home, pid_dir = tmp_path / "lake", tmp_path / "home", tmp_path / "pids"
    home.mkdir()
    pid_dir.mkdir()
    write_text_partition(lake, "A", ROWS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
    env.update(
        DAGSTER_HOME=str(home), MMFR_LAKE=str(lake), MMFR_TEST_SUBSETS="A",
        MMFR_TEST_FAILING=str(FAILING), MMFR_TEST_SUCCEEDING=str(SUCCEEDING),
        MMFR_TEST_PID_DIR=str(pid_dir), PYTHONPATH=str(REPO_ROOT),
        PYTHONFAULTHANDLER="1",  # an abort prints "Fatal Python error: Aborted"
    )
    log = tmp_path / "materialize.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "mmfr_assets_tests.no_hang_defs",
             "--select", ",".join(STEPS), "--partition", "A"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = None
        # Step processes still alive now never exited: hung. Then end the whole group.
        steps = {f.name.rsplit(".", 1)[0]: int(f.name.rsplit(".", 1)[1]) for f in pid_dir.iterdir()}
        hung = sorted(name for name, pid in steps.items() if _alive(pid))
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in steps.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
    output = log.read_text(errors="replace")
    aborted = output.count("Fatal Python error: Aborted")
    tail = output[-4000:]

    assert hung == [], (
        f"{len(hung)} of the {len(steps)} step processes started hung: {hung}\n{tail}"
    )
    assert returncode is not None, f"the run did not end within {TIMEOUT}s\n{tail}"
    assert len(steps) == FAILING + SUCCEEDING, tail
    assert aborted == 0 and "terminate called" not in output, f"{aborted} aborted\n{tail}"
    assert returncode == 1, f"exit code {returncode} (1: the failing steps failed the run)\n{tail}"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_run_records()
        events = instance.all_logs(run.dagster_run.run_id)
    failed = sorted(e.step_key for e in events if e.is_dagster_event and e.dagster_event.is_step_failure)
    succeeded = sorted(e.step_key for e in events if e.is_dagster_event and e.dagster_event.is_step_success)
    assert failed == sorted(n for n in steps if n.startswith("fails_"))
    assert succeeded == sorted(n for n in steps if n.startswith("reads_"))
    assert "InjectedFault" in output
    # No step process crashed after reporting its result (the executor logs that as a crash).
    assert "unexpectedly exited" not in output, tail
