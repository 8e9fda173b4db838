"""Export a selected table for training: its rows with their images, in Hugging Face hub layout
(`datasets.load_dataset(out, subset)`) or LLaMA-Factory's ShareGPT layout.

The lake stores each image once (`collected`, or `cleaned` where cleaning changed it); an export
joins them back in one streaming pass per subset (`exports/source.py`), from tables pinned at
the Delta versions current when it started. Subsets whose tables are missing or inconsistent are
refused by name before anything is written; the export folder appears whole, replacing any
previous one, or not at all (`exports/atomic.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from mmfr_assets.errors import InputError
from mmfr_assets.exports.atomic import atomic_folder
from mmfr_assets.exports.card import dataset_card, front_matter
from mmfr_assets.exports.hub import HubWriter
from mmfr_assets.exports.llamafactory import LlamaFactoryWriter
from mmfr_assets.exports.recipe import recorded_recipe
from mmfr_assets.exports.source import EXPORTABLE, ExportSource, lineage
from mmfr_assets.lake.resource import LakeResource

FORMATS = {"hub": HubWriter, "llamafactory": LlamaFactoryWriter}


@dataclass
class ExportResult:
    out: Path
    format: str
    counts: dict[str, int]
    versions: dict[str, int | None]
    origins: dict[str, Counter] = field(default_factory=dict)


def _counting_origins(rows, origins: Counter):
    for batch, images in rows:
        for column in ("caption_origin", "response_origin"):
            if column in batch.schema.names:
                for value in batch.column(column).to_pylist():
                    origins[f"{column.removesuffix('_origin')}: {value}"] += 1
        yield batch, images


def export(
    lake: LakeResource,
    asset: str,
    subsets: Sequence[str],
    out_dir: str | Path,
    *,
    fmt: str = "hub",
    instance: dg.DagsterInstance | None = None,
    batch_size: int = 256,
) -> ExportResult:
    """Export `asset` for `subsets` into `out_dir` (replaced whole) in format `fmt`."""
    if fmt not in FORMATS:
        raise InputError(f"export: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    source = ExportSource(lake, asset)
    source.refuse_unusable(subsets)
    result = ExportResult(Path(out_dir), fmt, {}, dict(source.versions))
    with atomic_folder(out_dir) as staging:
        writer = FORMATS[fmt](staging, asset)
        try:
            for subset in subsets:
                origins = result.origins.setdefault(subset, Counter())
                rows = source.rows(subset, batch_size=batch_size)
                try:
                    result.counts[subset] = writer.write_subset(subset, _counting_origins(rows, origins))
                finally:
                    rows.close()  # ends the table scans now, even when the writer failed
            writer.finish()
        finally:
            if hasattr(writer, "close"):
                writer.close()
        card = dataset_card(
            asset=asset,
            lake_uri=lake.uri,
            fmt=fmt,
            counts=result.counts,
            versions=result.versions,
            recipe=recorded_recipe(instance, lineage(asset), subsets),
            origins=result.origins,
            funnel=source.funnel(subsets),
        )
        header = front_matter(writer.configs) if fmt == "hub" else ""
        (staging / "README.md").write_text(header + "\n" + card, encoding="utf-8")
    return result


def export_table(
    lake: LakeResource, table: str, subsets: Sequence[str], out_dir: str | Path
) -> dict[str, int]:
    """Hub-layout export of `table` (rows per subset); see `export`."""
    return export(lake, table, subsets, out_dir).counts


__all__ = ["EXPORTABLE", "FORMATS", "ExportResult", "export", "export_table"]
