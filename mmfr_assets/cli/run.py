"""`mmfr run`: materialize the graph for subsets through Dagster, on the instance of
`DAGSTER_HOME` (its runs and metadata appear in the UI of the same instance): one run per
subset, or with `MMFR_SHARDS` > 1 the runs of `cli/run_plan.py`; then the funnel, the runs it
made and how long they took, and the plan against what happened."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from concurrent.futures import Future

import dagster as dg

from mmfr_assets.cli.inputs import (
    build_partition_keys, lake_of, open_instance, parse_subsets, run_config_of, validate_run_config,
)
from mmfr_assets.cli.orphan_runs import fail_orphaned_runs, run_tags
from mmfr_assets.cli.plan import after_run, before_run
from mmfr_assets.errors import InputError
from mmfr_assets.lineage import LINE, NAME, STEP_SHOWN_IN, funnel_stages

# Exit codes (docs/running.md, "Exit codes").
EXIT_OK, EXIT_RUN_FAILED, EXIT_INPUT_REFUSED = 0, 1, 2


def add_parser(commands) -> None:
    """`mmfr run`'s arguments."""
    parser = commands.add_parser("run", help="materialize the asset graph for subsets")
    parser.add_argument("--subsets", default="all", help="'all' or a comma-separated list")
    parser.add_argument(
        "--until", metavar="ASSET", help=f"stop after this asset and its upstream ({', '.join(LINE)}, ...)"
    )
    parser.add_argument("--max-samples", type=int, help="collect the first N rows only")
    parser.add_argument("--config", help="YAML Dagster run config (asset config, resources)")
    parser.add_argument("--target", help="all (default: MMFR_TARGET, else all: the paper's order), 586k or "
                        "123k: the student first, the teachers only for rows whose pass rate can still pass "
                        "that recipe (docs/running.md)")
    parser.add_argument(
        "--max-concurrent-runs", type=int, metavar="N",
        help="Dagster runs at once, each in a worker process (default: the instance's run queue "
             "limit, concurrency.runs.max_concurrent_runs); 1 runs them one after another in this process",
    )
    parser.set_defaults(handler=run)



def run(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.cli.progress_view import showing_progress
    from mmfr_assets.cli.run_plan import is_chain, run_units
    from mmfr_assets.cli.run_pool import execute_unit, schedule, submitter, worker_pool
    from mmfr_assets.reporting.funnel import funnel_lines
    from mmfr_assets.settings import shard_count

    # Everything the user gave is checked before anything runs.
    if args.max_samples is not None and args.max_samples <= 0:
        raise InputError(
            f"--max-samples must be a positive number of rows, got {args.max_samples} "
            "(leave it out to collect every row)"
        )
    if args.max_concurrent_runs is not None and args.max_concurrent_runs <= 0:
        raise InputError(f"--max-concurrent-runs must be 1 or more, got {args.max_concurrent_runs}")
    run_config = run_config_of(args.config, args.max_samples)
    defs = build_definitions(target=args.target)
    job = defs.resolve_implicit_global_asset_job_def()
    validate_run_config(job, run_config, f"--config {args.config}" if args.config else "run config")
    subsets = parse_subsets(args.subsets, build_partition_keys(defs))
    selection = None
    if args.until:
        names = sorted(key.path[-1] for key in defs.resolve_all_asset_keys())
        if args.until not in names:
            raise InputError(f"--until: unknown asset {args.until!r}; assets: {', '.join(names)}")
        selection = list(
            dg.AssetSelection.assets(args.until).upstream().resolve(defs.resolve_asset_graph())
        )
        if not defs.resolve_asset_graph().get(dg.AssetKey(args.until)).partitions_def:
            # the runs hold per-subset assets only: an empty selection would be the whole job
            raise InputError(f"--until {args.until}: not a per-subset asset; materialize it from the UI "
                             f"or with `dagster asset materialize --select {args.until}`")
    planned = before_run(defs, subsets, run_config, selection, args.target)  # the plan heads the output (issue 28)
    # Per-subset runs hold the partitioned assets only; the unpartitioned `report` (over all
    # subsets) is materialized on its own (`make run`, or from the UI).
    graph = defs.resolve_asset_graph()
    selection = [k for k in (selection or graph.get_all_asset_keys()) if graph.get(k).partitions_def]
    units = run_units(graph, selection, subsets, shard_count(), subset_order_of(run_config))
    with open_instance() as instance, showing_progress():
        for run_id in fail_orphaned_runs(instance):
            print(f"mmfr: run {run_id} had died without finishing: marked failed, its pool slots freed",
                  file=sys.stderr)
        max_runs = max_concurrent_runs(instance, args.max_concurrent_runs)
        side_by_side = max_runs > 1 and not is_chain(units)
        with (worker_pool(min(max_runs, len(units)), run_config, args.target) if side_by_side
              else contextlib.nullcontext()) as executor:
            if executor is not None:
                submit = submitter(executor)
            else:  # one run at a time, in this process, as before runs went side by side
                max_runs = 1

                def submit(unit):
                    future = Future()
                    future.set_result(execute_unit(unit, job, instance, run_config))
                    return future
            report = Report(subsets, args.until)
            summary = schedule(units, submit, max_runs, on_start=report.started, on_end=report.ended)
    print("\n".join(funnel_lines(lake_of(defs), subsets, report.status)))
    print(runs_line(summary, shard_count()))
    after_run(planned, defs)
    if report.failed:
        print(f"mmfr: failed subsets: {', '.join(report.failed)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    if report.refused:  # each refusal was printed as its one line above
        return EXIT_INPUT_REFUSED
    return EXIT_OK


class Report:
    """What `mmfr run` prints as its runs start and end, and the status it gathers: a subset's
    first line when its first run starts, a failed or refused run's line when it ends."""

    def __init__(self, subsets: list[str], until: str | None) -> None:
        self.until = until
        self.status: dict[str, dict[str, str]] = {subset: {} for subset in subsets}
        self.shown: set[str] = set()
        self.failed: list[str] = []
        self.refused: list[str] = []

    def started(self, unit) -> None:
        if unit.subset not in self.shown:
            print(f"mmfr: materializing {unit.subset} ({self.until or 'all assets'})", flush=True)
            self.shown.add(unit.subset)

    def ended(self, launch) -> None:
        from mmfr_assets.partitions import key_label

        outcome, subset = launch.outcome, launch.unit.subset
        if outcome is None:  # stopped by a failure of its subset
            return
        # each shard's stages merged into one status (`merge_status`)
        for stage, state in outcome.status.items():
            self.status[subset][stage] = merge_status(self.status[subset].get(stage, "not run"), state)
        if outcome.success:
            return
        if outcome.refusal is not None:
            self.refused.append(subset)
            print(f"mmfr: input refused: {outcome.refusal}", file=sys.stderr)
        else:
            self.failed.append(subset)
            key = launch.unit.key
            label = key_label(key if isinstance(key, str) else dg.MultiPartitionKey(key))
            print(f"mmfr: run {outcome.run_id} for {label} FAILED", file=sys.stderr)


def runs_line(summary, shards: int) -> str:
    """How many Dagster runs `mmfr run` launched, how many went at once, how long they took and
    waited: for a free run slot (`--max-concurrent-runs`) once what they wait for had ended,
    and their steps for the pools' slots (the endpoints' bounds)."""
    runs = len(summary.launched)
    shape = "one per subset" if shards == 1 else f"collected, then each of {shards} shards per subset"
    at_once = "one after another" if summary.most_at_once <= 1 else f"up to {summary.most_at_once} at once"
    stopped = len(summary.launches) - runs
    return (f"mmfr: launched {runs} Dagster run{'s' if runs != 1 else ''} ({shape}), {at_once}, in "
            f"{summary.seconds:.0f} s; waited {summary.slot_wait_s:.0f} s in all for a free run slot "
            f"(longest {summary.longest_wait_s:.0f} s), their steps {summary.pool_wait_s:.0f} s for "
            f"pool slots" + (f"; {stopped} not run (a failed run stopped its subset)" if stopped else ""))


def max_concurrent_runs(instance: dg.DagsterInstance, asked: int | None) -> int:
    """Runs at once: `--max-concurrent-runs`, else the instance's run queue limit; one on an
    ephemeral instance (no DAGSTER_HOME), which worker processes could not share."""
    if instance.is_ephemeral:
        if asked and asked > 1:
            print("mmfr: DAGSTER_HOME is not set: runs go one after another (worker processes "
                  "cannot share an ephemeral instance)", file=sys.stderr)
        return 1
    if asked:
        return asked
    queue = instance.get_concurrency_config().run_queue_config
    limit = queue.max_concurrent_runs if queue is not None else 1
    return (os.cpu_count() or 1) if limit < 0 else max(1, limit)  # -1: no limit, one per CPU


def subset_order_of(run_config: dict) -> list[str]:
    """`deduplicated`'s `subset_order` in the run config (the rank its kept-row rule uses)."""
    ops = (run_config or {}).get("ops") or {}
    return list((((ops.get(NAME.deduplicated) or {}).get("config")) or {}).get("subset_order") or [])


def _refusal(result: dg.ExecuteInProcessResult) -> str | None:
    """The line of the `InputError` that failed a step of `result`, if one did: input refused
    inside a run (a source that cannot be read, duplicate ids) is exit 2, not a failed run."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        seen = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if error.cls_name == "InputError":
                line = error.message.strip().splitlines()[0] if error.message.strip() else ""
                prefix = "mmfr_assets.errors.InputError: "
                return line[len(prefix):] if line.startswith(prefix) else line
            error = error.cause or error.context
    return None


def stage_status(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Per funnel stage, how this run left it: `ok`, `failed`, `refused`, `not run` (not
    selected, or stopped upstream), `ok, check failed: <checks>`, or for a model step whose
    rows needed an endpoint that is not configured `skipped: no endpoint (N rows needed
    <role>)`; model steps off the funnel's line appear only when skipped or failed."""
    done = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    failed = {e.step_key for e in result.get_step_failure_events()}
    from mmfr_assets.model_step.asset import MODEL_RAN_CHECK

    checks: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for evaluation in result.get_asset_check_evaluations():
        name = evaluation.asset_key.path[-1]
        if evaluation.check_name == MODEL_RAN_CHECK:
            if not evaluation.passed:  # rows needed the model, no endpoint: said instead of a count
                meta = {k: v.value for k, v in evaluation.metadata.items()}
                needed = meta.get("rows_needing_model", "?")
                skipped[name] = (f"skipped: no endpoint ({needed} row{'' if needed == '1' else 's'} "
                                 f"needed {meta.get('role', 'the model')})")
        elif not evaluation.passed:
            checks.setdefault(name, []).append(evaluation.check_name)
    refused = _refusal(result) is not None
    status = {}
    for stage in funnel_stages():
        if stage in skipped:
            status[stage] = skipped[stage]
        elif stage in done:
            status[stage] = f"ok, check failed: {', '.join(checks[stage])}" if stage in checks else "ok"
        elif stage in failed:
            status[stage] = "refused" if refused else "failed"
        else:
            status[stage] = "not run"
    # Model steps off the funnel's line (the reviews, the teachers): noted under the stage that
    # applies them when they did not run or failed.
    for step in STEP_SHOWN_IN:
        if step not in status and (step in skipped or step in failed):
            status[step] = skipped.get(step) or ("refused" if refused else "failed")
    return status


_SKIPPED = re.compile(r"skipped: no endpoint \((\d+) rows? needed (.+)\)$")
_CHECK_FAILED = "ok, check failed: "


def _severity(state: str) -> int:
    if state in ("failed", "refused"):
        return 4
    if state.startswith("skipped"):
        return 3
    if state.startswith(_CHECK_FAILED):
        return 2
    return 1 if state == "ok" else 0  # "not run"


def merge_status(earlier: str, later: str) -> str:
    """One stage's status over a subset's shard runs (`stage_status` of each): the worst
    wins (failed/refused, skipped, a failed check, ok, not run), skipped rows are summed, failed
    checks united, so a shard that needed no endpoint never hides another that was skipped."""
    if _severity(later) != _severity(earlier):
        return later if _severity(later) > _severity(earlier) else earlier
    skipped = [_SKIPPED.match(s) for s in (earlier, later)]
    if all(skipped) and skipped[0].group(2) == skipped[1].group(2):
        needed = int(skipped[0].group(1)) + int(skipped[1].group(1))
        return f"skipped: no endpoint ({needed} row{'' if needed == 1 else 's'} needed {skipped[0].group(2)})"
    if earlier.startswith(_CHECK_FAILED) and later.startswith(_CHECK_FAILED):
        checks = earlier[len(_CHECK_FAILED):].split(", ") + later[len(_CHECK_FAILED):].split(", ")
        return _CHECK_FAILED + ", ".join(dict.fromkeys(checks))
    return later
