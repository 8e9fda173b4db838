"""Hugging Face hub layout: one folder of parquet per subset, images as the `Image` feature,
and a README whose `configs` make `datasets.load_dataset(folder, subset)` read it."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.exports.names import subset_folder

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _features(schema: pa.Schema) -> datasets.Features:
    features = datasets.Features.from_arrow_schema(schema)
    features["image"] = datasets.Image()
    return features


class HubWriter:
    """Writes `<root>/<subset folder>/train-00000-of-00001.parquet` per subset with rows."""

    name = "hub"

    def __init__(self, root: Path, asset: str) -> None:
        self.root = root
        self.configs: dict[str, str] = {}  # config name -> folder

    def write_subset(self, subset: str, rows) -> int:
        folder = subset_folder(subset)
        writer: pq.ParquetWriter | None = None
        written = 0
        try:
            for batch, images in rows:
                image = pa.array(
                    [{"bytes": b, "path": None} if b is not None else None for b in images], IMAGE_TYPE
                )
                table = pa.Table.from_batches([batch]).append_column("image", image)
                if writer is None:
                    schema = _features(table.drop_columns(["image"]).schema).arrow_schema
                    (self.root / folder).mkdir(parents=True)
                    writer = pq.ParquetWriter(self.root / folder / "train-00000-of-00001.parquet", schema)
                writer.write_table(table.cast(writer.schema))
                written += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        if written:
            self.configs[subset] = folder
        return written

    def finish(self) -> None:
        pass
