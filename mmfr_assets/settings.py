"""Where things live, from the environment: the source (`MMFR_SOURCE`) and the lake (`MMFR_LAKE`).

Defaults keep a fresh checkout self-contained: the bundled sample is generated into the
git-ignored `data/` folder of the repo on first use, and the lake lives beside it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

from mmfr_assets.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_SOURCE = DATA_DIR / "sample"
DEFAULT_LAKE = DATA_DIR / "lake"

log = logging.getLogger(__name__)


def source_location(environ: os._Environ | dict = os.environ) -> str:
    """The configured source; the bundled sample is written first if it is the default."""
    configured = environ.get("MMFR_SOURCE")
    if configured:
        return configured
    if not (DEFAULT_SOURCE / "README.md").exists():
        write_sample = sample_writer("MMFR_SOURCE is not set and the bundled sample",
                                     ": set MMFR_SOURCE to a hub-layout folder or a hub id")
        log.warning("MMFR_SOURCE is not set: generating the bundled sample in %s", DEFAULT_SOURCE)
        write_sample(DEFAULT_SOURCE)
    return str(DEFAULT_SOURCE)


def sample_writer(what: str, hint: str = "") -> Callable[..., Path]:
    """`write_sample` of `mmfr_devkit`, the scaffolding beside this package in a checkout and not
    in the wheel; without it, one line (`InputError`) saying so rather than a traceback."""
    try:
        from mmfr_devkit.sample import write_sample
    except ModuleNotFoundError as missing:
        if missing.name != "mmfr_devkit":
            raise
        raise InputError(f"{what} needs mmfr_devkit, which a checkout of mmfr-assets has (pip install -e .) "
                         f"and the installed wheel does not{hint}") from None
    return write_sample


def lake_location(environ: os._Environ | dict = os.environ) -> str:
    return environ.get("MMFR_LAKE") or str(DEFAULT_LAKE)


def lake_storage_options(environ: os._Environ | dict = os.environ) -> dict[str, str]:
    """deltalake storage options as JSON in `MMFR_LAKE_STORAGE_OPTIONS` (no secrets: those
    belong in the standard AWS_* variables, which deltalake and pyarrow read themselves)."""
    raw = environ.get("MMFR_LAKE_STORAGE_OPTIONS")
    return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else {}


def shard_count(environ: os._Environ | dict = os.environ) -> int:
    """`MMFR_SHARDS`: how many shards each subset is split into after `collected` (default 1:
    partitions are the subset names, as before shards). Set once per lake: a lake written with
    another count is refused (mmfr_assets/partitions.py)."""
    raw = (environ.get("MMFR_SHARDS") or "1").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"MMFR_SHARDS must be a whole number of shards >= 1, got {raw!r}")
    return int(raw)
