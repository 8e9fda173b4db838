"""What every `mmfr` command reads before it runs anything: the subsets asked for, the run
config (checked against the graph before any run starts), the Dagster instance, the lake."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import dagster as dg
import yaml

from mmfr_assets.errors import InputError
from mmfr_assets.lineage import NAME
from mmfr_assets.rules.config import QUALITY_THRESHOLDS, moved_threshold_keys


def parse_subsets(value: str, available: list[str]) -> list[str]:
    if value == "all":
        return available
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise InputError(
            f"unknown subset(s) {', '.join(unknown)}; the source has: {', '.join(available)}"
        )
    return wanted


def read_config_file(path: str) -> dict:
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


def run_config_of(path: str | None, max_samples: int | None) -> dict:
    config: dict = read_config_file(path) if path else {}
    # Step-level DEBUG events drown the funnel; the UI keeps every event regardless.
    config.setdefault("loggers", {"console": {"config": {"log_level": "INFO"}}})
    if max_samples is not None:
        ops = config.setdefault("ops", {})
        collected = ops.setdefault(NAME.collected, {}).setdefault("config", {})
        collected["max_samples"] = max_samples
    return config


def open_instance() -> dg.DagsterInstance:
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


def validate_run_config(job: dg.JobDefinition, run_config: dict, source: str) -> None:
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
    moved = moved_threshold_keys(run_config)
    if moved:  # Dagster would call them unexpected entries; say where they are set now
        raise InputError(
            f"{source}: the quality thresholds moved from ops.{NAME.quality_filtered}.config to the shared "
            f"resource both quality_filtered and the teachers read: set {', '.join(moved)} under "
            f"resources.{QUALITY_THRESHOLDS}.config (same names; docs/configuration.md)"
        )
    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as error:
        problems = "; ".join(e.message for e in error.errors) or str(error).splitlines()[0]
        raise InputError(f"{source}: invalid run config: {problems}") from None
    max_samples = ((ops.get(NAME.collected) or {}).get("config") or {}).get("max_samples")
    if max_samples is not None and max_samples <= 0:
        raise InputError(
            f"{source}: collected max_samples must be a positive number of rows, got {max_samples}"
        )


def build_partition_keys(defs: dg.Definitions) -> list[str]:
    partitions = defs.resolve_assets_def(NAME.collected).partitions_def
    return list(partitions.get_partition_keys())


def lake_of(defs: dg.Definitions):
    return defs.resources["lake"]
