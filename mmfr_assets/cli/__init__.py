"""`mmfr`: run the asset graph headlessly, print funnels, write the bundled sample.

`mmfr run` materializes through Dagster (one run per subset partition) on the instance of
`DAGSTER_HOME`, so its runs and metadata appear in the UI of the same instance.

Exit codes: 0 ok; 1 a run failed; 2 the input was refused (a bad argument, run config, source
or source row), with one line saying what and why. Input is checked before anything runs;
input refused inside a run (`InputError` raised by a step, e.g. duplicate ids) also exits 2.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import re
import sys
from pathlib import Path

import dagster as dg
import yaml

from mmfr_assets.errors import InputError
from mmfr_assets.exports.thinking import DEFAULT_THINK_FORMAT, THINK_FORMATS
from mmfr_assets.exports.turns import DEFAULT_SYSTEM_PROMPT
from mmfr_assets.cli.orphan_runs import fail_orphaned_runs, run_tags
from mmfr_assets.cli.plan import after_run, before_run
from mmfr_assets.lineage import EXPORTABLE as _EXPORTABLE, LINE, NODES, STEP_SHOWN_IN, funnel_stages

# Exit codes (docs/running.md, "Exit codes").
EXIT_OK, EXIT_RUN_FAILED, EXIT_INPUT_REFUSED = 0, 1, 2
# Tables of training rows (question, answer, response, ...): the model steps' own tables
# (answer_verdicts, student_rollouts) hold verdicts and pass rates, not rows to train on.
EXPORTABLE = tuple(name for name in NODES if name in _EXPORTABLE)  # in lineage order


def _parse_subsets(value: str, available: list[str]) -> list[str]:
    if value == "all":
        return available
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise InputError(
            f"unknown subset(s) {', '.join(unknown)}; the source has: {', '.join(available)}"
        )
    return wanted


def _read_config_file(path: str) -> dict:
    """The YAML run config of `--config`; a missing file or bad YAML is one line naming both."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--config {path}: cannot read it: {error}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError(f"--config {path}: not valid YAML{where}: {problem}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise InputError(
            f"--config {path}: must hold a mapping of Dagster run config (ops:, resources:), "
            f"not a {type(loaded).__name__}"
        )
    return loaded or {}


def _run_config(path: str | None, max_samples: int | None) -> dict:
    config: dict = _read_config_file(path) if path else {}
    # Step-level DEBUG events drown the funnel; the UI keeps every event regardless.
    config.setdefault("loggers", {"console": {"config": {"log_level": "INFO"}}})
    if max_samples is not None:
        ops = config.setdefault("ops", {})
        collected = ops.setdefault("collected", {}).setdefault("config", {})
        collected["max_samples"] = max_samples
    return config


def _instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME. Opening it creates its SQLite schema on first use, which
    races when several `mmfr run` start together on a fresh home: a file lock serializes it."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        Path(home).mkdir(parents=True, exist_ok=True)
        with open(Path(home) / ".mmfr-instance.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return dg.DagsterInstance.get()
    print("mmfr: DAGSTER_HOME is not set; runs go to an ephemeral instance", file=sys.stderr)
    return dg.DagsterInstance.ephemeral()


def _validate_run_config(job: dg.JobDefinition, run_config: dict, source: str) -> None:
    """Refuse run config the job would not run as written, before any run starts.

    Dagster accepts config for ops and resources a job does not have (so that one config serves
    job subsets): a misspelled asset or resource name would be ignored and the real one run with
    defaults. Those names are checked here against the whole graph; everything else (fields inside an op's config, types,
    resources) by Dagster's validation against the implicit asset job's config schema.
    """
    ops = run_config.get("ops") or {}
    if not isinstance(ops, dict):
        raise InputError(f"{source}: `ops` must be a mapping of asset name to config")
    valid = sorted(node.name for node in job.graph.nodes)
    unknown = sorted(name for name in ops if name not in valid)
    if unknown:
        raise InputError(
            f"{source}: unknown asset(s) {', '.join(unknown)} under ops; "
            f"the assets are: {', '.join(valid)}"
        )
    resources = run_config.get("resources") or {}
    if not isinstance(resources, dict):
        raise InputError(f"{source}: `resources` must be a mapping of resource key to config")
    known = sorted(job.resource_defs)
    unknown = sorted(name for name in resources if name not in known)
    if unknown:  # Dagster ignores config for resources a job does not have, too
        raise InputError(
            f"{source}: unknown resource(s) {', '.join(unknown)} under resources; "
            f"the resources are: {', '.join(known)}"
        )
    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as error:
        problems = "; ".join(e.message for e in error.errors) or str(error).splitlines()[0]
        raise InputError(f"{source}: invalid run config: {problems}") from None
    max_samples = ((ops.get("collected") or {}).get("config") or {}).get("max_samples")
    if max_samples is not None and max_samples <= 0:
        raise InputError(
            f"{source}: collected max_samples must be a positive number of rows, got {max_samples}"
        )


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


def _stage_status(result: dg.ExecuteInProcessResult) -> dict[str, str]:
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
    """One stage's status over a subset's shard runs (`_stage_status` of each): the worst
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


def run(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.partitions import key_label
    from mmfr_assets.cli.progress_view import showing_progress
    from mmfr_assets.cli.run_plan import run_plan
    from mmfr_assets.reporting.funnel import funnel_lines
    from mmfr_assets.settings import shard_count

    # Everything the user gave is checked before anything runs.
    if args.max_samples is not None and args.max_samples <= 0:
        raise InputError(
            f"--max-samples must be a positive number of rows, got {args.max_samples} "
            "(leave it out to collect every row)"
        )
    run_config = _run_config(args.config, args.max_samples)
    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    _validate_run_config(job, run_config, f"--config {args.config}" if args.config else "run config")
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    selection = None
    if args.until:
        names = sorted(key.path[-1] for key in defs.resolve_all_asset_keys())
        if args.until not in names:
            raise InputError(f"--until: unknown asset {args.until!r}; assets: {', '.join(names)}")
        selection = list(
            dg.AssetSelection.assets(args.until).upstream().resolve(defs.resolve_asset_graph())
        )
    planned = before_run(defs, subsets, run_config, selection)  # the plan heads the output (issue 28)
    # Per-subset runs hold the partitioned assets only; the unpartitioned `report` (over all
    # subsets) is materialized on its own (`make run`, or from the UI).
    graph = defs.resolve_asset_graph()
    selection = [k for k in (selection or graph.get_all_asset_keys()) if graph.get(k).partitions_def]
    failed, refused = [], []
    status: dict[str, dict[str, str]] = {}
    with _instance() as instance, showing_progress():
        for run_id in fail_orphaned_runs(instance):
            print(f"mmfr: run {run_id} had died without finishing: marked failed, its pool slots freed",
                  file=sys.stderr)
        for subset in subsets:
            print(f"mmfr: materializing {subset} ({args.until or 'all assets'})", flush=True)
            # One run per subset; with MMFR_SHARDS > 1, `collected` then a run per shard
            # (mmfr_assets/cli/run_plan.py), each shard's stages merged into one status.
            status[subset] = {}
            for key, assets in run_plan(graph, selection, subset, shard_count()):
                result = job.execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    partition_key=key,
                    asset_selection=assets,
                    raise_on_error=False,
                    tags={"mmfr/command": "run", **run_tags()},
                )
                for stage, state in _stage_status(result).items():
                    status[subset][stage] = merge_status(status[subset].get(stage, "not run"), state)
                if result.success:
                    continue
                reason = _refusal(result)
                if reason is not None:
                    refused.append(subset)
                    print(f"mmfr: input refused: {reason}", file=sys.stderr)
                else:
                    failed.append(subset)
                    print(f"mmfr: run {result.run_id} for {key_label(key)} FAILED", file=sys.stderr)
                break
    print("\n".join(funnel_lines(_lake(defs), subsets, status)))
    after_run(planned, defs)
    if failed:
        print(f"mmfr: failed subsets: {', '.join(failed)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    if refused:  # each refusal was printed as its one line above
        return EXIT_INPUT_REFUSED
    return EXIT_OK


def build_partition_keys(defs: dg.Definitions) -> list[str]:
    partitions = defs.resolve_assets_def("collected").partitions_def
    return list(partitions.get_partition_keys())


def _lake(defs: dg.Definitions):
    return defs.resources["lake"]


def funnel(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.reporting.funnel import funnel_lines

    defs = build_definitions()
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    print("\n".join(funnel_lines(_lake(defs), subsets)))
    return 0


def _default_export_folder(asset: str, fmt: str) -> str:
    """`exports/mmfr_123k-hub`: the recipe (or table) and the layout in the folder's name."""
    from mmfr_assets.exports.dataset_names import RECIPE_TABLES

    short = RECIPE_TABLES.get(asset, (asset,))[0]
    return f"exports/mmfr_{short}-{fmt}"


def export(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.errors import InputError
    from mmfr_assets.exports.export import TrainingFormat
    from mmfr_assets.exports.export import export as export_rows

    defs = build_definitions()
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    out = args.out or _default_export_folder(args.asset, args.format)
    if args.shard_mb < 1:
        raise InputError(f"export: --shard-mb must be at least 1 (got {args.shard_mb})")
    training = TrainingFormat(
        think_format=args.think_format,
        system_prompt="" if args.no_system_prompt else args.system_prompt,
        caption_context=args.caption_context,
    )
    # The instance of DAGSTER_HOME holds what each materialization recorded (thresholds,
    # models, prompt versions) for the dataset card; without one the card says it is unknown.
    instance = _instance() if os.environ.get("DAGSTER_HOME") else None
    try:
        result = export_rows(
            _lake(defs), args.asset, subsets, out, fmt=args.format, instance=instance,
            training=training, license=args.license, shard_bytes=args.shard_mb * 1024 * 1024,
        )
    except InputError as error:
        print(f"mmfr: {error}", file=sys.stderr)
        return 2
    finally:
        if instance is not None:
            instance.dispose()
    for subset, rows in result.counts.items():
        print(f"{subset}: {rows} rows")
    name = result.name
    if name is not None and name.rule is not None:
        print(f"recipe {name.short.upper()}: {name.rule} ({name.bound})")
    if args.format == "hub":
        print(f"wrote {out}: datasets.load_dataset({out!r}) (every subset) or "
              f"datasets.load_dataset({out!r}, <subset>)")
    elif args.format == "verl":
        print(f"wrote {out}: verl data.train_files={out}/train.parquet")
    else:
        others = [d for d in result.all_datasets if d not in result.datasets]
        print(f"wrote {out}: LLaMA-Factory dataset_dir={out!r}, dataset={result.datasets[0]}"
              + (f" (also in dataset_info.json: {', '.join(others)})" if others else ""))
    return 0


def sample(args: argparse.Namespace) -> int:
    from mmfr_assets.settings import sample_writer

    print(sample_writer("mmfr sample")(args.out))
    return 0


def serve_report(args: argparse.Namespace) -> int:
    from mmfr_assets.reporting.serve import serve
    from mmfr_assets.settings import lake_location, lake_storage_options

    serve(lake_location(), lake_storage_options(), args.host, args.port, args.report_dir or "")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `mmfr` command line, built without running anything (docs/test_docs read it)."""
    parser = argparse.ArgumentParser(prog="mmfr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="materialize the asset graph for subsets")
    run_parser.add_argument("--subsets", default="all", help="'all' or a comma-separated list")
    run_parser.add_argument(
        "--until", metavar="ASSET", help=f"stop after this asset and its upstream ({', '.join(LINE)}, ...)"
    )
    run_parser.add_argument("--max-samples", type=int, help="collect the first N rows only")
    run_parser.add_argument("--config", help="YAML Dagster run config (asset config, resources)")
    run_parser.set_defaults(handler=run)

    from mmfr_assets.cli.plan import add_parser as add_plan_parser

    add_plan_parser(commands)

    funnel_parser = commands.add_parser("funnel", help="print the per-filter funnel of the lake")
    funnel_parser.add_argument("--subsets", default="all")
    funnel_parser.set_defaults(handler=funnel)

    export_parser = commands.add_parser(
        "export", help="write a selected table with its images for training (hub or LLaMA-Factory)"
    )
    export_parser.add_argument(
        "out", nargs="?",
        help="output folder (default exports/mmfr_<123k|586k|table>-<format>); a hub export "
        "replaces it whole, a LLaMA-Factory export adds its datasets to the one there",
    )
    export_parser.add_argument(
        "--asset", default="difficulty_filtered", choices=EXPORTABLE,
        help="difficulty_filtered (123K recipe), difficulty_filtered_586k (586K recipe), "
        "rl_selected (the RL set), quality_filtered or distilled",
    )
    export_parser.add_argument("--format", default="hub", choices=["hub", "llamafactory", "verl"],
                               help="hub, llamafactory (SFT traces), or verl (the RL set, --asset rl_selected)")
    export_parser.add_argument("--subsets", default="all")
    export_parser.add_argument(
        "--think-format", default=DEFAULT_THINK_FORMAT, choices=list(THINK_FORMATS),
        help="thinking markers of the chat template trained with: qwen3 (default; '<think>\\n' "
        "... '\\n</think>\\n\\n': qwen3_vl, qwen3_5, qwen3_6, glm4_5v, mimo_vl), plain ('<think>' "
        "... '</think>': no LLaMA-Factory template with images), kimi (kimi_vl), gemma4 (gemma4), "
        "raw (the trace as stored)",
    )
    export_parser.add_argument(
        "--system-prompt", default=DEFAULT_SYSTEM_PROMPT,
        help="LLaMA-Factory system prompt (default: one stating the <think>/<answer> format)",
    )
    export_parser.add_argument("--no-system-prompt", action="store_true", help="set no system prompt")
    export_parser.add_argument(
        "--caption-context", action="store_true",
        help="LLaMA-Factory: start the user turn with the image's caption (off: as the paper trains)",
    )
    export_parser.add_argument(
        "--license", default="other",
        help="the card's license (default 'other', named research-only: the sources' terms)",
    )
    export_parser.add_argument(
        "--shard-mb", type=int, default=256, help="LLaMA-Factory: JSON Lines shard size in MB",
    )
    export_parser.set_defaults(handler=export)

    sample_parser = commands.add_parser("sample", help="write the bundled sample dataset (from a checkout: mmfr_devkit)")
    sample_parser.add_argument("out", help="output folder (hub layout)")
    sample_parser.set_defaults(handler=sample)

    serve_parser = commands.add_parser(
        "serve-report",
        help="serve the report and row viewer over HTTP from where the lake keeps them "
        "(<lake>/_report/ on an object store, else the local report folder)",
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument(
        "--report-dir", help="serve this local report folder instead (default: MMFR_REPORT_DIR, "
        "else where the report asset writes for MMFR_LAKE)",
    )
    serve_parser.set_defaults(handler=serve_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        # One line, whatever raised it (arguments, run config, the source, a mapping).
        print(f"mmfr: {str(error).strip() or type(error).__name__}", file=sys.stderr)
        return EXIT_INPUT_REFUSED


def entry() -> None:
    """The `mmfr` console script: `main`, then leave without running native teardown.

    Why `os._exit`: about one `mmfr run` in 25-50 that had finished and recorded its runs was
    seen dying in interpreter teardown with SIGABRT ("terminate called without an active
    exception", main thread, no Python frame: a C++ extension's static destructor), which turned
    a successful run into exit code 134 for the calling script. Everything `mmfr` writes is
    durable before `main` returns (Delta commits, the instance's run records, the LLM cache is
    flushed when each stage's session closes), so after flushing output the process can end
    without the destructors. Exceptions still take the normal exit path with their traceback.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
