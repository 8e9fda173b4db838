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


def describe() -> dict[str, str]:
    memory = _memory_gb()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "ram": f"{memory:.1f} GB" if memory else "unknown",
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load) if load else "-",
        "python": sys.version.split()[0],
        "packages": ", ".join(
            f"{p} {_version(p)}"
            for p in ("polars", "pyarrow", "numpy", "numba", "pillow", "datasets", "dagster", "deltalake")
        ),
    }
