"""Where the report and the row viewer are written: `MMFR_REPORT_DIR`, else a `report` folder
beside a local lake (`data/report` for the default `data/lake`), else `data/report`.
Stage materializations link their viewer page from here (`files.viewer_page`)."""

from __future__ import annotations

import os
from pathlib import Path

from mmfr_assets.settings import DATA_DIR


def report_dir(configured: str = "", lake_uri: str | None = None, environ=os.environ) -> Path:
    if configured or environ.get("MMFR_REPORT_DIR"):
        return Path(configured or environ["MMFR_REPORT_DIR"]).absolute()
    if lake_uri and "://" not in lake_uri:
        return (Path(lake_uri).absolute().parent / "report").absolute()
    return (DATA_DIR / "report").absolute()
