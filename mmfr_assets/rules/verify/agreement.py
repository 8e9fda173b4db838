"""Agreement of our verdicts with a dataset's own labels (`is_consistent`), as counts, a share
and a Markdown confusion table for materialization metadata."""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl


class Agreement:
    """Accumulates (label, verdict) pairs over batches; rows without a label are not counted."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[bool, bool | None]] = Counter()

    def add(self, labels: pl.Series, verdicts: pl.Series) -> None:
        pairs = pl.DataFrame({"label": labels, "verdict": verdicts}).filter(pl.col("label").is_not_null())
        for label, verdict, n in pairs.group_by("label", "verdict").len().iter_rows():
            self.counts[(label, verdict)] += n

    @property
    def labelled(self) -> int:
        return sum(self.counts.values())

    @property
    def decided(self) -> int:
        return sum(n for (_, v), n in self.counts.items() if v is not None)

    @property
    def agreeing(self) -> int:
        return sum(n for (label, v), n in self.counts.items() if v is not None and v == label)

    def table(self) -> str:
        header = "| dataset label | verified equivalent | verified different | undecided |\n| --- | ---: | ---: | ---: |"
        rows = [
            f"| {label} | {self.counts[(label, True)]} | {self.counts[(label, False)]} | {self.counts[(label, None)]} |"
            for label in (True, False)
        ]
        return "\n".join([header, *rows])

    def metadata(self) -> dict[str, Any]:
        """Empty when no row had a label (a new dataset)."""
        import dagster as dg  # metadata only: the rest of this package does without Dagster

        if not self.labelled:
            return {}
        return {
            "label_rows": self.labelled,
            "label_rules_decided_share": self.decided / self.labelled,
            "label_agreement": self.agreeing / self.decided if self.decided else 0.0,
            "label_confusion": dg.MetadataValue.md(self.table()),
        }
