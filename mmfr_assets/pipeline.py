"""The stages in lineage order with the filters each can drop rows by (for funnels)."""

from __future__ import annotations

from mmfr_assets.cleaning.assets import FILTERS as CLEANING_FILTERS
from mmfr_assets.collection.duplicates import DUPLICATE_FILTERS
from mmfr_assets.selection.difficulty import FILTERS as DIFFICULTY_FILTERS
from mmfr_assets.selection.quality import FILTERS as QUALITY_FILTERS
from mmfr_assets.stage import Filter

STAGES: tuple[tuple[str, tuple[Filter, ...]], ...] = (
    ("collected", DUPLICATE_FILTERS),  # only with duplicate_ids: keep_first
    ("cleaned", CLEANING_FILTERS),
    ("distilled", ()),  # fed by teacher_captions and teacher_responses (one row per cleaned row)
    ("quality_filtered", QUALITY_FILTERS),
    ("difficulty_filtered", DIFFICULTY_FILTERS),
)
ASSET_NAMES = tuple(name for name, _ in STAGES)
