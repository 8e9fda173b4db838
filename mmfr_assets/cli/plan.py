"""`mmfr plan`: what a run will ask each model for, before anything is asked (see
`mmfr_assets/planning`). Reads the source, the lake and the run config; sends nothing.

The same plan heads `mmfr run`'s output (`print_plan`), so the figures a run is checked
against afterwards (`mmfr_assets/planning/actual.py`) are the ones shown before it started.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


def make_plan(defs: dg.Definitions, subsets: list[str], run_config: Mapping[str, Any],
              selection: Sequence[dg.AssetKey] | None = None):
    """The plan of a run of `selection` (None: every asset) over `subsets` with `run_config`,
    with the code location's resources (`mmfr_assets/planning/inputs.py`)."""
    from mmfr_assets.planning.inputs import endpoints_of, plan_from, shared_resources_of

    resources = defs.resources
    return plan_from(resources["lake"], resources["source"], endpoints_of(resources, run_config), subsets,
                     run_config, selection, shared=shared_resources_of(resources, run_config))


def plan(args: argparse.Namespace) -> int:
    from mmfr_assets.cli.inputs import build_partition_keys, parse_subsets, read_config_file, validate_run_config
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.planning.render import plan_lines

    run_config = read_config_file(args.config) if args.config else {}
    defs = build_definitions(target=args.target)  # another order than the loaded one is refused
    job = defs.resolve_implicit_global_asset_job_def()
    validate_run_config(job, run_config, f"--config {args.config}" if args.config else "run config")
    subsets = parse_subsets(args.subsets, build_partition_keys(defs))
    result = make_plan(defs, subsets, run_config)
    orders = _orders(result, defs, subsets, args.target)
    if args.json:
        print(json.dumps({**result.as_json(), **({"orders": orders[0]} if orders else {})}, indent=2))
    else:
        print("\n".join(plan_lines(result) + (orders[1] if orders else [])))
    return 0


def _orders(result, defs: dg.Definitions, subsets: list[str], target: str | None):
    """With a hard subset as `--target` (or `MMFR_TARGET`): both orders side by side, as JSON
    and as lines (`planning/orders.py`); None for the paper's order alone."""
    from mmfr_assets.planning.counting import Rows
    from mmfr_assets.planning.orders import comparison, comparison_lines, measured_shares
    from mmfr_assets.settings import target_setting
    from mmfr_assets.student_first.target import parse_target, target_of

    chosen = target_of(parse_target(target) if target is not None else target_setting())
    if chosen is None:
        return None
    shares = measured_shares(Rows(defs.resources["lake"]), subsets, chosen)
    return comparison(result, chosen, shares), comparison_lines(result, chosen, shares)


def add_parser(commands) -> None:
    """`mmfr plan`'s arguments (called from `mmfr_assets.cli.main`)."""
    parser = commands.add_parser(
        "plan", help="what a run will ask each model for (rows, requests, tokens; GPU-hours and money where "
        "the endpoints say), read from the source, the lake and the run config; sends nothing")
    parser.add_argument("--subsets", default="all", help="'all' or a comma-separated list")
    parser.add_argument("--config", help="YAML Dagster run config, as `mmfr run` takes it")
    parser.add_argument("--json", action="store_true", help="one JSON object: `roles` maps each role's "
                        "resource key to its requests, prompt_tokens, completion_tokens and the rest")
    parser.add_argument("--target", help="all (default: MMFR_TARGET, else all), 586k or 123k: with a hard "
                        "subset, the paper's order and the student-first order side by side (requests, tokens, "
                        "GPU-hours per role, the saving); JSON under `orders`")
    parser.set_defaults(handler=plan)


def _plan_in_child(subsets: list[str], run_config: Mapping[str, Any],
                   selection: Sequence[str] | None, target: str | None = None) -> tuple[list[str], dict] | None:
    """`before_run`'s work, in a fresh interpreter: the definitions as the parent built them
    (the same environment), the plan's lines and its JSON (with a hard subset as `target`, both
    orders side by side under them); None when no model step is planned."""
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.planning.render import plan_lines

    keys = None if selection is None else [dg.AssetKey(name) for name in selection]
    defs = build_definitions()
    planned = make_plan(defs, subsets, run_config, keys)
    if not planned.roles:
        return None
    orders = _orders(planned, defs, subsets, target)
    return plan_lines(planned) + (orders[1] if orders else []), planned.as_json()


def before_run(defs: dg.Definitions, subsets: list[str], run_config: Mapping[str, Any],
               selection: Sequence[dg.AssetKey] | None = None, target: str | None = None) -> dict | None:
    """The plan at the top of `mmfr run`'s output, kept beside the lake for the report's
    planned-vs-actual table; None (and one line saying why) where it cannot be made: the plan
    informs, it never stops a run. Made in a child process: reading the whole source left the
    run's process ~1 GB larger for the rest of the run at 100,000 rows (measured by
    bench/rehearsal.py: `mmfr plan` alone peaked at 1.76 GB), memory no step then got back."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from mmfr_assets.model_step.registry import MODEL_STEPS
    from mmfr_assets.planning.spend import save_plan

    if selection is not None and not any(dg.AssetKey(r.step.asset) in selection for r in MODEL_STEPS):
        return None  # no model step selected (`--until collected`): nothing to plan
    names = None if selection is None else [key.to_user_string() for key in selection]
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            made = pool.submit(_plan_in_child, list(subsets), dict(run_config), names, target).result()
        if made is None:
            return None
        lines, plan_json = made
        save_plan(defs.resources["lake"], plan_json)
    except Exception as error:  # noqa: BLE001 - advisory: the run goes on, the reason is printed
        print(f"mmfr: no plan ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
              file=sys.stderr)
        return None
    print("\n".join(lines), flush=True)
    return plan_json


def after_run(planned: dict | None, defs: dg.Definitions) -> None:
    """Planned vs actual per role, after `mmfr run`'s funnel (`planned`: `before_run`'s JSON)."""
    from mmfr_assets.planning.spend import planned_vs_actual_lines

    if planned is not None:
        print("\n" + "\n".join(planned_vs_actual_lines(planned, defs.resources["lake"])))
