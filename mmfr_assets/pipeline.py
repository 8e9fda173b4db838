"""The stages in lineage order with the filters each can drop rows by (for funnels)."""

from __future__ import annotations

from mmfr_assets.cleaning.assets import FILTERS as CLEANING_FILTERS
from mmfr_assets.collection.duplicates import DUPLICATE_FILTERS
from mmfr_assets.dedup.assets import FILTERS as DEDUP_FILTERS
from mmfr_assets.selection.difficulty import FILTERS as DIFFICULTY_FILTERS
from mmfr_assets.rules.quality import FILTERS as QUALITY_FILTERS
from mmfr_assets.stage import Filter

STAGES: tuple[tuple[str, tuple[Filter, ...]], ...] = (
    ("collected", DUPLICATE_FILTERS),  # drops only with duplicate_ids: keep_first
    ("cleaned", CLEANING_FILTERS),  # applies question_reviews and extracted_answers (no drops)
    # cleaned minus near-duplicates (fed by dedup_signatures of every subset): the teachers' input
    ("deduplicated", DEDUP_FILTERS),
    ("distilled", ()),  # fed by teacher_captions and teacher_responses (one row per cleaned row)
    ("answer_verdicts", ()),  # one verdict per distilled row
    ("quality_filtered", QUALITY_FILTERS),
    ("student_rollouts", ()),  # the student's samples of each quality row, verified by the rules
    ("student_verdicts", ()),  # undecided samples judged: the pass rate (or its bounds) per row
    ("difficulty_filtered", DIFFICULTY_FILTERS),  # the 123K recipe (pass rate = 0)
)
ASSET_NAMES = tuple(name for name, _ in STAGES)
# Stages beside the line above rather than on it: (name, filters, upstream). The 586K recipe
# (pass rate != 1) reads `quality_filtered` and `student_verdicts` like `difficulty_filtered`.
BRANCHES: tuple[tuple[str, tuple[Filter, ...], str], ...] = (
    ("difficulty_filtered_586k", DIFFICULTY_FILTERS, "quality_filtered"),
)
