"""Where the report and the row viewer are written: `MMFR_REPORT_DIR`, else a `report` folder
beside a local lake (`data/report` for the default `data/lake`), else `data/report`.
Stage materializations link their viewer page from here (`files.viewer_page`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from mmfr_assets.settings import report_location


def report_dir(configured: str = "", lake_uri: str | None = None,
               environ: Optional[Mapping[str, str]] = None) -> Path:
    """The report folder, absolute (`mmfr_assets.settings.report_location`)."""
    return report_location(configured, lake_uri, environ)
