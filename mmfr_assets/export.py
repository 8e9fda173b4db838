"""Export a selected table for training: its rows with their images, in hub layout.

The lake stores each image once (`collected`, or `cleaned` where cleaning changed it); an export
joins them back in one streaming pass per subset and writes what `datasets.load_dataset(out,
subset)` reads, images as the `Image` feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.lake.delta import read_partition
from mmfr_assets.lake.ordered import OrderedRows, PartitionImages
from mmfr_assets.lake.resource import LakeResource


def _features(schema: pa.Schema) -> datasets.Features:
    features = datasets.Features.from_arrow_schema(schema)
    features["image"] = datasets.Image()
    return features


def export_subset(
    lake: LakeResource, table: str, subset: str, out_dir: Path, *, batch_size: int = 256
) -> int:
    """Write `<out_dir>/<subset>/train-00000-of-00001.parquet`; returns the rows written."""
    folder = out_dir / subset
    folder.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    with (
        OrderedRows(lake.location("cleaned"), subset, ["image_bytes"], batch_size=batch_size) as cleaned,
        PartitionImages(lake, subset) as originals,
        read_partition(lake.location(table), {"subset": subset}, batch_size=batch_size) as reader,
    ):
        try:
            for batch in reader:
                ids = batch.column("id").to_pylist()
                images = originals.take(ids, cleaned.take(ids)["image_bytes"])
                image = pa.array(
                    [{"bytes": b, "path": None} if b is not None else None for b in images],
                    pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
                )
                out = pa.Table.from_batches([batch]).append_column("image", image)
                if writer is None:
                    features = _features(out.drop_columns(["image"]).schema)
                    out = out.cast(features.arrow_schema)
                    writer = pq.ParquetWriter(folder / "train-00000-of-00001.parquet", features.arrow_schema)
                writer.write_table(out.cast(writer.schema))
                rows += out.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


def export_table(
    lake: LakeResource, table: str, subsets: Sequence[str], out_dir: str | Path
) -> dict[str, int]:
    """Export `table` for `subsets` into `out_dir` with a README declaring one config each."""
    out = Path(out_dir)
    counts = {s: export_subset(lake, table, s, out) for s in subsets}
    configs = "".join(
        f'- config_name: "{s}"\n  data_files:\n  - split: train\n    path: "{s}/train-*.parquet"\n'
        for s, n in counts.items()
        if n
    )
    (out / "README.md").write_text(
        f"---\nconfigs:\n{configs}---\n\nExport of `{table}` from the mmfr-assets lake "
        f"{lake.uri}: {sum(counts.values())} rows with their images.\n"
    )
    return counts
