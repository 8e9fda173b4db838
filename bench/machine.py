"""What the figures were measured on."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def now_utc() -> str:
    """When a figure was measured, as the results file writes it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_text(load: tuple[float, float, float] | None = None) -> str:
    """A load average (1/5/15 min; the current one by default) as the results file writes it."""
    if load is None:
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return " / ".join(f"{x:.2f}" for x in load) if load else "-"


def describe() -> dict[str, str]:
    memory = _memory_gb()
    return {
        "date": now_utc(),
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "ram": f"{memory:.1f} GB" if memory else "unknown",
        "load average at start (1/5/15 min)": load_text(),
        "python": sys.version.split()[0],
        "packages": ", ".join(
            f"{p} {_version(p)}"
            for p in ("polars", "pyarrow", "numpy", "numba", "pillow", "datasets", "dagster", "deltalake")
        ),
    }
