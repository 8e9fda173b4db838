"""`mmfr run`'s runs side by side (cli/run_plan.py's `run_units`, cli/run_pool.py's `schedule`):
what each run waits for, at most N at once, a failure stopping its subset only. Pure: a toy
graph with the line's asset names, runs as functions in threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from mmfr_assets.cli.run_plan import is_chain, run_units
from mmfr_assets.cli.run_pool import Outcome, schedule


def _graph():
    @dg.asset
    def collected(): ...

    @dg.asset(deps=[collected])
    def cleaned(): ...

    @dg.asset(deps=[cleaned])
    def dedup_signatures(): ...

    @dg.asset(deps=[cleaned, dedup_signatures])
    def deduplicated(): ...

    @dg.asset(deps=[deduplicated])
    def teacher_responses(): ...

    @dg.asset(deps=[deduplicated])
    def teacher_captions(): ...

    defs = dg.Definitions(assets=[collected, cleaned, dedup_signatures, deduplicated,
                                  teacher_responses, teacher_captions])
    graph = defs.resolve_asset_graph()
    return graph, list(graph.get_all_asset_keys())


def _names(unit):
    return {k.path[-1] for k in unit.assets}


def test_shard_runs_wait_for_their_subset_and_dedup_for_better_ranked_signatures():
    graph, selection = _graph()
    units = run_units(graph, selection, ["A", "B"], 4)
    assert len(units) == 2 * (1 + 4 + 4) and not is_chain(units)
    a, b = units[:9], units[9:]
    assert [_names(u) for u in a[:2]] == [{"collected"}, {"cleaned", "dedup_signatures"}]
    assert all(u.needs == {a[0].index} and not u.after for u in a[1:5])  # shards of one stage at once
    assert all(u.needs == {u.index for u in a[:5]} for u in a[5:])  # dedup reads every shard
    assert all(not u.after for u in a) and all(u.after == {u.index for u in a[1:5]} for u in b[5:])
    assert {tuple(sorted(u.key.values())) for u in a[1:5]} == {(str(k), "A") for k in range(4)}
    # B ranked first (deduplicated's subset_order): A's dedup runs after B's signatures instead
    ranked = run_units(graph, selection, ["A", "B"], 4, subset_order=["B"])
    assert all(u.after == {u.index for u in ranked[10:14]} for u in ranked[5:9])
    assert all(not u.after for u in ranked[9:])


def test_unsharded_subsets_go_one_after_another_through_dedup_but_not_before_it():
    graph, selection = _graph()
    assert is_chain(run_units(graph, selection, ["A", "B", "C"], 1))
    early = [k for k in selection if k.path[-1] in ("collected", "cleaned")]
    assert not is_chain(run_units(graph, early, ["A", "B", "C"], 1))


def _submitter(runs, *, fail=(), barrier=None):
    """Runs as threads: `fail` names the unit indices that fail; the shard runs of subset A's
    first phase meet at `barrier` (it breaks, failing the test, unless they run at once)."""
    pool = ThreadPoolExecutor(16)
    active, peak, lock = [0], [0], threading.Lock()

    def execute(unit):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            runs.append(unit.index)
        try:
            if barrier is not None and unit.subset == "A" and _names(unit) == {"cleaned", "dedup_signatures"}:
                barrier.wait()
            return Outcome(f"run-{unit.index}", unit.index not in fail, {}, None)
        finally:
            with lock:
                active[0] -= 1

    return pool, (lambda unit: pool.submit(execute, unit)), peak


def test_at_most_n_at_once_and_the_shards_of_a_stage_together():
    graph, selection = _graph()
    units = run_units(graph, selection, ["A", "B"], 4)
    runs: list[int] = []
    pool, submit, peak = _submitter(runs, barrier=threading.Barrier(4, timeout=30))
    with pool:
        summary = schedule(units, submit, max_runs=4)
    assert sorted(runs) == list(range(18)) and peak[0] <= 4 and summary.most_at_once == 4
    assert len(summary.launched) == 18
    position = {index: n for n, index in enumerate(runs)}
    for unit in units:  # nothing started before what it waits for
        assert all(position[i] < position[unit.index] for i in unit.needs | unit.after)


def test_a_failed_run_stops_its_subset_not_the_others():
    graph, selection = _graph()
    units = run_units(graph, selection, ["A", "B"], 2)  # A: 0 collected, 1-2 early, 3-4 late
    runs: list[int] = []
    pool, submit, _ = _submitter(runs, fail={1})
    ended = []
    with pool:
        summary = schedule(units, submit, max_runs=1, on_end=ended.append)
    assert runs == [0, 1, 5, 6, 7, 8, 9]  # one at a time, in plan order; A's after its failure: none
    assert [launch.unit.index for launch in summary.launches if launch.outcome is None] == [2, 3, 4]
    assert [launch.outcome.success for launch in summary.launched] == [True, False] + [True] * 5
    assert len(ended) == len(units)


@pytest.mark.parametrize("max_runs", [1, 3])
def test_a_dead_worker_is_a_failed_run(max_runs):
    graph, selection = _graph()
    units = run_units(graph, selection, ["A"], 1)

    def submit(unit):
        raise RuntimeError("the pool is broken")

    summary = schedule(units, submit, max_runs)
    assert [launch.outcome.success for launch in summary.launches] == [False]
    assert "worker process died" in summary.launches[0].outcome.run_id


def test_one_at_a_time_a_run_waits_for_nothing_but_what_it_needs():
    """`mmfr run`'s one-at-a-time path runs each unit inside `submit`: the wait for a run slot
    is measured before it, not over the run itself (`make run` reported its whole time as
    waited)."""
    from concurrent.futures import Future

    graph, selection = _graph()
    units = run_units(graph, selection, ["A", "B"], 1)
    now = [0.0]

    def submit(unit):
        now[0] += 10.0  # each run takes 10 s of the clock
        future = Future()
        future.set_result(Outcome("run", True, {}, None))
        return future

    summary = schedule(units, submit, max_runs=1, clock=lambda: now[0])
    assert len(summary.launched) == len(units) and summary.seconds == 10.0 * len(units)
    assert summary.slot_wait_s == 0 and summary.longest_wait_s == 0
