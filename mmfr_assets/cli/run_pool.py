"""`mmfr run`'s runs side by side: up to N Dagster runs at once, each in a worker process.

Why: with `MMFR_SHARDS` = K a subset is 1 + 2K runs, and one after another their fixed cost
(a run's and a step's events, the Delta commits) made 110 real rows in eleven subsets take ~9x
the unsharded time; the shards of one stage, the teachers of different shards and the early
stages of different subsets do not wait for each other. N defaults to the instance's run queue
limit (`concurrency.runs.max_concurrent_runs`, the limit a backfill from the UI gets), and the
endpoints stay bounded by the Dagster pools (`pool=role`): a step of any run waits for its
pool's slot, as in a backfill.

The order is `run_plan.run_units`: what a run needs (the earlier runs of its subset, which must
have succeeded) and what it runs after (the signatures of better-ranked subsets). A failed or
refused run stops every run of its subset not started yet, as it stopped the rest of its subset
when runs went one after another; runs already going finish.

Workers are spawned (never forked: the parent holds Dagster's threads), each builds the
definitions and opens the instance once, and runs one Dagster run at a time with
`execute_in_process`; their steps' progress comes back over a queue to the parent's bars or
lines. The scheduling (`schedule`) is pure over an executor, and tested with threads.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from mmfr_assets.cli.run_plan import Unit

BLOCKED = "Step blocked by limit for pool"  # Dagster's engine event while a step waits for a slot


@dataclass(frozen=True)
class Outcome:
    """What one Dagster run did (picklable: it comes back from a worker)."""

    run_id: str
    success: bool
    status: dict[str, str]  # per funnel stage, `run.stage_status`
    refusal: str | None  # the InputError's line when input was refused inside the run
    pool_wait_s: float = 0.0  # seconds its steps waited for pool slots


@dataclass(frozen=True)
class Launch:
    """One unit as it went: its outcome (None: not run, stopped by a failure of its subset),
    the seconds it waited for a free run slot once what it waits for had ended."""

    unit: Unit
    outcome: Outcome | None
    waited_s: float = 0.0


@dataclass
class Summary:
    launches: list[Launch] = field(default_factory=list)
    most_at_once: int = 0
    seconds: float = 0.0

    @property
    def launched(self) -> list[Launch]:
        return [launch for launch in self.launches if launch.outcome is not None]

    @property
    def slot_wait_s(self) -> float:
        return sum(launch.waited_s for launch in self.launched)

    @property
    def longest_wait_s(self) -> float:
        return max((launch.waited_s for launch in self.launched), default=0.0)

    @property
    def pool_wait_s(self) -> float:
        return sum(launch.outcome.pool_wait_s for launch in self.launched)


def schedule(units: Sequence[Unit], submit: Callable[[Unit], Future], max_runs: int,
             on_start: Callable[[Unit], None] = lambda unit: None,
             on_end: Callable[[Launch], None] = lambda launch: None,
             clock: Callable[[], float] = time.monotonic) -> Summary:
    """Run `units` (in `run_units` order) through `submit`, at most `max_runs` at once, each once
    what it needs has succeeded and what it runs after has ended; a failure stops its subset's
    units not yet started. `on_start`/`on_end` are called in this thread, in the order things
    happen."""
    started_at = clock()
    ended: dict[int, Outcome | None] = {}
    ready_at: dict[int, float] = {}
    running: dict[Future, tuple[Unit, float]] = {}
    stopped: set[str] = set()  # subsets a failure stopped
    summary = Summary()
    todo = list(units)
    while todo or running:
        now = clock()
        for unit in list(todo):
            if unit.subset in stopped:
                todo.remove(unit)
                ended[unit.index] = None
                launch = Launch(unit, None)
                summary.launches.append(launch)
                on_end(launch)
            elif unit.index not in ready_at and all(i in ended for i in unit.needs | unit.after):
                ready_at[unit.index] = now
        for unit in [u for u in todo if u.index in ready_at]:
            if len(running) >= max_runs:
                break
            todo.remove(unit)
            waited = clock() - ready_at[unit.index]  # before submit: one at a time, it runs the unit
            on_start(unit)
            try:
                future = submit(unit)
            except Exception as error:  # a broken pool (a worker killed): this run fails
                future = Future()
                future.set_exception(error)
            running[future] = (unit, waited)
        summary.most_at_once = max(summary.most_at_once, len(running))
        if not running:
            if todo:  # nothing runs and nothing can start: a unit needs one that never ran
                raise RuntimeError(f"mmfr run: runs {[u.index for u in todo]} wait for runs that never ran")
            break
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            unit, waited = running.pop(future)
            try:
                outcome = future.result()
            except Exception as error:  # the worker died (SIGKILL, out of memory): a failed run
                outcome = Outcome(f"(its worker process died: {type(error).__name__})", False, {}, None)
            ended[unit.index] = outcome
            if not outcome.success:
                stopped.add(unit.subset)
            launch = Launch(unit, outcome, waited)
            summary.launches.append(launch)
            on_end(launch)
    summary.seconds = clock() - started_at
    return summary


# ---------------------------------------------------------------------------
# the worker processes

_worker: dict[str, Any] = {}


def _start_worker(run_config: dict, snapshots, target: str | None = None) -> None:
    """A worker's initializer: the definitions, the job, the instance (closed at its exit) and
    a progress listener sending every snapshot to the parent."""
    from mmfr_assets import progress
    from mmfr_assets.cli.inputs import open_instance
    from mmfr_assets.definitions import build_definitions

    stack = contextlib.ExitStack()
    atexit.register(stack.close)
    instance = stack.enter_context(open_instance())
    stack.enter_context(progress.listening(snapshots.put))
    defs = build_definitions(target=target)  # `mmfr run --target`'s order (None: MMFR_TARGET)
    _worker.update(job=defs.resolve_implicit_global_asset_job_def(), instance=instance, run_config=run_config)


def execute_unit(unit: Unit, job=None, instance=None, run_config=None) -> Outcome:
    """One Dagster run of `unit`, in this process (a worker's, or `mmfr run`'s own when runs go
    one at a time)."""
    import dagster as dg

    from mmfr_assets.cli.orphan_runs import run_tags
    from mmfr_assets.cli.run import _refusal, stage_status

    job = job or _worker["job"]
    instance = instance or _worker["instance"]
    run_config = _worker["run_config"] if run_config is None else run_config
    key = unit.key if isinstance(unit.key, str) else dg.MultiPartitionKey(unit.key)
    result = job.execute_in_process(
        run_config=run_config, instance=instance, partition_key=key, asset_selection=list(unit.assets),
        raise_on_error=False, tags={"mmfr/command": "run", **run_tags()},
    )
    return Outcome(result.run_id, result.success, stage_status(result), _refusal(result),
                   pool_wait_s(instance, result.run_id))


def pool_wait_s(instance, run_id: str) -> float:
    """Seconds the run's steps waited for pool slots: from each step's first "blocked by limit
    for pool" event to its start (Dagster's engine events)."""
    import dagster as dg

    blocked: dict[str, float] = {}
    waited = 0.0
    records = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.STEP_START}).records
    for record in records:
        entry = record.event_log_entry
        if not entry.step_key:
            continue
        if entry.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT:
            if (entry.dagster_event.message or "").startswith(BLOCKED):
                blocked.setdefault(entry.step_key, entry.timestamp)
        elif entry.step_key in blocked:
            waited += entry.timestamp - blocked.pop(entry.step_key)
    return waited


@contextlib.contextmanager
def worker_pool(workers: int, run_config: dict, target: str | None = None):
    """`workers` spawned worker processes and a thread handing their progress snapshots to this
    process's listeners (`mmfr_assets.progress`); the workers end with the block."""
    from mmfr_assets import progress

    context = multiprocessing.get_context("spawn")
    snapshots = context.Queue()

    def relay() -> None:
        while (snapshot := snapshots.get()) is not None:
            progress.deliver(snapshot)

    relaying = threading.Thread(target=relay, name="mmfr-run-progress", daemon=True)
    relaying.start()
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(run_config, snapshots, target)) as executor:
            yield executor
    finally:
        snapshots.put(None)
        relaying.join(timeout=10)
        snapshots.close()


def submitter(executor: Executor) -> Callable[[Unit], Future]:
    return lambda unit: executor.submit(execute_unit, unit)
