"""`mmfr`: run the asset graph headlessly, print funnels, write the bundled sample.

`mmfr run` materializes through Dagster (one run per subset partition) on the instance of
`DAGSTER_HOME`, so its runs and metadata appear in the UI of the same instance.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from pathlib import Path

import dagster as dg
import yaml

from mmfr_assets.orphan_runs import fail_orphaned_runs, run_tags
from mmfr_assets.pipeline import ASSET_NAMES, BRANCHES

# Tables of training rows (question, answer, response, ...): the model steps' own tables
# (answer_verdicts, student_rollouts) hold verdicts and pass rates, not rows to train on.
EXPORTABLE = ("distilled", "quality_filtered", "difficulty_filtered", *(b[0] for b in BRANCHES))


def _parse_subsets(value: str, available: list[str]) -> list[str]:
    if value == "all":
        return available
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise SystemExit(
            f"mmfr: unknown subset(s) {', '.join(unknown)}; the source has: {', '.join(available)}"
        )
    return wanted


def _run_config(path: str | None, max_samples: int | None) -> dict:
    config: dict = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise SystemExit(f"mmfr: {path} must hold a mapping of Dagster run config")
        config = loaded or {}
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


def run(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.report import funnel_lines

    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    selection = None
    if args.until:
        names = sorted(key.path[-1] for key in defs.resolve_all_asset_keys())
        if args.until not in names:
            raise SystemExit(f"mmfr: unknown asset {args.until!r}; assets: {', '.join(names)}")
        selection = list(
            dg.AssetSelection.assets(args.until).upstream().resolve(defs.resolve_asset_graph())
        )
    # Per-subset runs hold the partitioned assets only; the unpartitioned `report` (over all
    # subsets) is materialized on its own (`make run`, or from the UI).
    graph = defs.resolve_asset_graph()
    selection = [k for k in (selection or graph.get_all_asset_keys()) if graph.get(k).partitions_def]
    run_config = _run_config(args.config, args.max_samples)
    failed = []
    with _instance() as instance:
        for run_id in fail_orphaned_runs(instance):
            print(f"mmfr: run {run_id} had died without finishing: marked failed, its pool slots freed",
                  file=sys.stderr)
        for subset in subsets:
            print(f"mmfr: materializing {subset} ({args.until or 'all assets'})", flush=True)
            try:
                result = job.execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    partition_key=subset,
                    asset_selection=selection,
                    raise_on_error=False,
                    tags={"mmfr/command": "run", **run_tags()},
                )
            except dg.DagsterInvalidConfigError as error:
                print(f"mmfr: invalid run config: {error}", file=sys.stderr)
                return 2
            if not result.success:
                failed.append(subset)
                print(f"mmfr: run {result.run_id} for {subset} FAILED", file=sys.stderr)
    print("\n".join(funnel_lines(_lake(defs), subsets)))
    if failed:
        print(f"mmfr: failed subsets: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def build_partition_keys(defs: dg.Definitions) -> list[str]:
    partitions = defs.resolve_assets_def("collected").partitions_def
    return list(partitions.get_partition_keys())


def _lake(defs: dg.Definitions):
    return defs.resources["lake"]


def funnel(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.report import funnel_lines

    defs = build_definitions()
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    print("\n".join(funnel_lines(_lake(defs), subsets)))
    return 0


def export(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.errors import InputError
    from mmfr_assets.export import export as export_rows

    defs = build_definitions()
    subsets = _parse_subsets(args.subsets, build_partition_keys(defs))
    # The instance of DAGSTER_HOME holds what each materialization recorded (thresholds,
    # models, prompt versions) for the dataset card; without one the card says it is unknown.
    instance = _instance() if os.environ.get("DAGSTER_HOME") else None
    try:
        result = export_rows(
            _lake(defs), args.asset, subsets, args.out, fmt=args.format, instance=instance
        )
    except InputError as error:
        print(f"mmfr: {error}", file=sys.stderr)
        return 2
    finally:
        if instance is not None:
            instance.dispose()
    for subset, rows in result.counts.items():
        print(f"{subset}: {rows} rows")
    if args.format == "hub":
        print(f"wrote {args.out}: datasets.load_dataset({args.out!r}, <subset>)")
    else:
        print(f"wrote {args.out}: LLaMA-Factory dataset_dir={args.out!r}, dataset=mmfr_{args.asset}")
    return 0


def sample(args: argparse.Namespace) -> int:
    from mmfr_assets.sample.generate import write_sample

    print(write_sample(args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmfr", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="materialize the asset graph for subsets")
    run_parser.add_argument("--subsets", default="all", help="'all' or a comma-separated list")
    run_parser.add_argument(
        "--until", metavar="ASSET", help=f"stop after this asset and its upstream ({', '.join(ASSET_NAMES)}, ...)"
    )
    run_parser.add_argument("--max-samples", type=int, help="collect the first N rows only")
    run_parser.add_argument("--config", help="YAML Dagster run config (asset config, resources)")
    run_parser.set_defaults(handler=run)

    funnel_parser = commands.add_parser("funnel", help="print the per-filter funnel of the lake")
    funnel_parser.add_argument("--subsets", default="all")
    funnel_parser.set_defaults(handler=funnel)

    export_parser = commands.add_parser(
        "export", help="write a selected table with its images for training (hub or LLaMA-Factory)"
    )
    export_parser.add_argument("out", help="output folder (replaced whole)")
    export_parser.add_argument(
        "--asset", default="difficulty_filtered", choices=EXPORTABLE,
        help="difficulty_filtered (123K recipe), difficulty_filtered_586k (586K recipe), "
        "quality_filtered or distilled",
    )
    export_parser.add_argument("--format", default="hub", choices=["hub", "llamafactory"])
    export_parser.add_argument("--subsets", default="all")
    export_parser.set_defaults(handler=export)

    sample_parser = commands.add_parser("sample", help="write the bundled sample dataset")
    sample_parser.add_argument("out", help="output folder (hub layout)")
    sample_parser.set_defaults(handler=sample)

    args = parser.parse_args(argv)
    return args.handler(args)


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
