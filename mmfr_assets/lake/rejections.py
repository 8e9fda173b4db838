"""The rejections table: every dropped row with the stage, filter and reason that dropped it.

Partitioned by (stage, subset) so that each asset's materialization replaces exactly its own
rows, the same way it replaces its own table partition.
"""

from __future__ import annotations

import pyarrow as pa

REJECTION_SCHEMA = pa.schema(
    [
        ("stage", pa.string()),
        ("subset", pa.string()),
        ("id", pa.string()),
        ("filter", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
REJECTION_COLUMNS = ["id", "filter", "reason", "detail"]
