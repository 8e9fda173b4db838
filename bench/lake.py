"""Materializing assets the way an operator does: `dagster asset materialize` subprocesses.

Every run gets `MMFR_SOURCE`, `MMFR_LAKE` and `DAGSTER_HOME` (a bench instance: SQLite, no
telemetry) and the in-process executor, so the one process measured is the one doing the work.
Measured runs are wrapped in `/usr/bin/time -v` (peak RSS of that process and its children);
without it, a fresh Python wrapper reads `getrusage(RUSAGE_CHILDREN)` after the run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
TIME = Path("/usr/bin/time") if Path("/usr/bin/time").is_file() else None


@dataclass(frozen=True)
class Run:
    select: str
    partition: str
    seconds: float
    max_rss_mb: float | None


class Lake:
    """A source, a lake and a Dagster instance under `root`."""

    def __init__(self, root: Path, source: Path) -> None:
        self.root = Path(root)
        self.source = Path(source).absolute()
        self.lake = (self.root / "lake").absolute()
        self.home = (self.root / "dagster_home").absolute()
        self.logs = self.root / "logs"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
        env.update(
            MMFR_SOURCE=str(self.source),
            MMFR_LAKE=str(self.lake),
            DAGSTER_HOME=str(self.home),
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            HF_DATASETS_CACHE=str((self.root / "hf_cache").absolute()),
        )
        return env

    def between(self, after: str, until: str) -> list[str]:
        """The assets upstream of `until` (itself included) that are not upstream of `after`:
        e.g. the distillation assets between `cleaned` and `distilled`, whatever they are."""
        import dagster as dg

        from mmfr_assets.definitions import build_definitions

        graph = build_definitions(str(self.source), str(self.lake), {}).resolve_asset_graph()
        keys = dg.AssetSelection.assets(until).upstream().resolve(graph) - (
            dg.AssetSelection.assets(after).upstream().resolve(graph)
        )
        return sorted(k.to_user_string() for k in keys)

    def materialize(self, select: list[str] | str, partition: str, *, measure: bool = False) -> Run:
        select = select if isinstance(select, str) else ",".join(select)
        command = [
            str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
            "--select", select, "--partition", partition, "-m", "mmfr_assets.definitions",
            "--config-json", json.dumps(IN_PROCESS),
        ]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{select}-{partition}")
        log = self.logs / f"{name}.log"
        rss_file = self.logs / f"{name}.time"
        if measure and TIME:
            command = [str(TIME), "-v", "-o", str(rss_file), *command]
        elif measure:
            command = [sys.executable, "-c", _RUSAGE_WRAPPER, str(rss_file), *command]
        started = time.perf_counter()
        with open(log, "w") as out:
            done = subprocess.run(command, env=self.env(), stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"materializing {select} for {partition} failed:\n{tail}")
        return Run(select, partition, seconds, _max_rss_mb(rss_file) if measure else None)


_RUSAGE_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"Maximum resident set size (kbytes): {kb}\\n")
sys.exit(code)
"""


def _max_rss_mb(path: Path) -> float:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", path.read_text())
    return int(match.group(1)) / 1024
