"""Where the report and the row viewer are written: `MMFR_REPORT_DIR`, else a `report` folder
beside a local lake (`data/report` for the default `data/lake`), else `data/report`.
Stage materializations link their viewer page from here."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from mmfr_assets.exports.names import subset_folder
from mmfr_assets.settings import report_location


def report_dir(configured: str = "", lake_uri: str | None = None,
               environ: Optional[Mapping[str, str]] = None) -> Path:
    """The report folder, absolute (`mmfr_assets.settings.report_location`)."""
    return report_location(configured, lake_uri, environ)


# The model steps have no viewer pages of their own: their columns are shown on the cards of
# the stage that applies them (`viewer.build.STEP_TABLES`), whose page their
# materializations link.
STEP_SHOWN_IN = {
    "question_reviews": "cleaned",
    "extracted_answers": "cleaned",
    "teacher_captions": "distilled",
    "teacher_responses": "distilled",
    "answer_verdicts": "quality_filtered",
    "student_rollouts": "difficulty_filtered",
    "student_verdicts": "difficulty_filtered",
}


def viewer_page(subset: str, stage: str, root: Path) -> Path:
    """The viewer's index page of one subset and stage (written by the `report` asset); for a
    model step, the page of the stage that shows its columns (`STEP_SHOWN_IN`)."""
    return root / "viewer" / subset_folder(subset) / STEP_SHOWN_IN.get(stage, stage) / "index.html"
