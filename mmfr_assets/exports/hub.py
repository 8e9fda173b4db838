"""Hugging Face hub layout: one folder of parquet per subset, images as the `Image` feature,
and a README whose `configs` make `datasets.load_dataset(folder, subset)` read it (and
`load_dataset(folder)` / `load_dataset(folder, "all")` every subset, `card.front_matter`).

Beside the lake's columns each row gets two derived ones: `question_plain`, the question
without its `<image>` placeholders (for chat templates that place the image themselves), and
`response_normalized`, the trace in the chosen template's thinking markers (`thinking.py`);
`question` and `response` stay as they are in the lake.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.exports.dataset_names import ExportName
from mmfr_assets.files import subset_folder
from mmfr_assets.exports.turns import TrainingFormat, assistant_turn, question_without_images, trace_notes

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
DERIVED = ("question_plain", "response_normalized")


def _features(schema: pa.Schema) -> datasets.Features:
    features = datasets.Features.from_arrow_schema(schema)
    features["image"] = datasets.Image()
    return features


@dataclass
class SplitSize:
    """What the card's `dataset_info` records of one subset's train split."""

    features: datasets.Features
    num_examples: int
    num_bytes: int  # Arrow size of the rows, as `datasets` counts a split's num_bytes
    download_size: int  # parquet bytes on disk


def derived_columns(batch: pa.RecordBatch, fmt: TrainingFormat) -> tuple[list[pa.Array], Counter]:
    """`question_plain` and `response_normalized` of a batch, and the traces without a think block."""
    questions = batch.column("question").to_pylist()
    notes: Counter = Counter()
    plain = pa.array([question_without_images(q) for q in questions], pa.string())
    if "response" not in batch.schema.names:  # a table of prompts (the RL set): no trace to normalize
        return [plain], notes
    responses = batch.column("response").to_pylist()
    for response in responses:
        notes.update(trace_notes(response))
    return [plain, pa.array([assistant_turn(r, fmt)[0] for r in responses], pa.string())], notes


class HubWriter:
    """Writes `<root>/<subset folder>/train-00000-of-00001.parquet` per subset with rows."""

    name = "hub"

    def __init__(self, root: Path, name: ExportName | str, fmt: TrainingFormat = TrainingFormat(), **_) -> None:
        self.root = root
        self.fmt = fmt
        self.configs: dict[str, str] = {}  # config name -> folder
        self.sizes: dict[str, SplitSize] = {}  # config name -> its train split
        self.notes: Counter = Counter()

    def write_subset(self, subset: str, rows) -> int:
        folder = subset_folder(subset)
        writer: pq.ParquetWriter | None = None
        written = nbytes = 0
        path = self.root / folder / "train-00000-of-00001.parquet"
        features = None
        try:
            for batch, images in rows:
                image = pa.array(
                    [{"bytes": b, "path": None} if b is not None else None for b in images], IMAGE_TYPE
                )
                derived, notes = derived_columns(batch, self.fmt)
                self.notes.update(notes)
                table = pa.Table.from_batches([batch])
                for column, values in zip(DERIVED, derived):
                    table = table.append_column(column, values)
                table = table.append_column("image", image)
                if writer is None:
                    features = _features(table.drop_columns(["image"]).schema)
                    (self.root / folder).mkdir(parents=True)
                    writer = pq.ParquetWriter(path, features.arrow_schema)
                table = table.cast(writer.schema)
                writer.write_table(table)
                written += table.num_rows
                nbytes += table.nbytes
        finally:
            if writer is not None:
                writer.close()
        if written:
            self.configs[subset] = folder
            self.sizes[subset] = SplitSize(features, written, nbytes, path.stat().st_size)
        return written

    def finish(self) -> None:
        pass
