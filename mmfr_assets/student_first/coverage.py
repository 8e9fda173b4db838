"""What the quality set and the exports say of their coverage: in the student-first order they
hold only the rows that were distilled. Read from the rejections table (the drops `distilled`
recorded as `teacher_skipped_easy`), so it is true of whatever lake is read, whichever order
wrote it; a lake with no such drop says nothing extra (the paper's order is unchanged)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmfr_assets.lineage import NAME
from mmfr_assets.student_first.target import SKIPPED_REASON


def coverage_text(skipped: int, distilled: int) -> str:
    """The plain sentence: how many rows the set covers and how many were never distilled."""
    return (f"covers only the {distilled:,} distilled rows: {skipped:,} deduplicated rows were not "
            f"distilled (`{SKIPPED_REASON}`, student-first order: the student solves them too often "
            "for the target recipe), so this set is not the paper's whole quality set")


def skipped_counts(funnel_rows: Sequence[Mapping]) -> tuple[int, int]:
    """(rows skipped, rows distilled) from funnel rows (`reporting.funnel.funnel_table`'s dicts)."""
    skipped = sum(r["rows"] for r in funnel_rows if r["stage"] == NAME.distilled and r["reason"] == SKIPPED_REASON)
    kept = sum(r["rows"] for r in funnel_rows if r["stage"] == NAME.distilled and r["filter"] == "")
    return skipped, kept


def skipped_in_lake(lake, key: str) -> int:
    """Rows of the partition `key` that `distilled` recorded as not distilled (its only drop
    reason)."""
    from mmfr_assets.lake.delta import count_rows
    from mmfr_assets.lake.resource import REJECTIONS_TABLE
    from mmfr_assets.partitions import lake_partition

    return count_rows(lake.location(REJECTIONS_TABLE), {"stage": NAME.distilled, **lake_partition(key)})


def quality_metadata(lake, key: str) -> dict[str, str]:
    """`quality_filtered`'s `coverage` entry where rows were not distilled; nothing otherwise."""
    from mmfr_assets.lake.delta import count_rows
    from mmfr_assets.partitions import lake_partition

    skipped = skipped_in_lake(lake, key)
    if not skipped:
        return {}
    return {"coverage": coverage_text(skipped, count_rows(lake.location(NAME.distilled), lake_partition(key)))}
