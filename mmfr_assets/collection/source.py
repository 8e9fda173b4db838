"""The source dataset: a Hugging Face dataset in hub layout, one config per subset.

Read through `datasets.load_dataset(..., streaming=True)` whether it is a local folder or a hub
id, so the bundled sample and the published dataset share one code path. Images are read
undecoded (bytes as published): decoding belongs to the cleaning stage, which must see corrupt
bytes to reject them rather than crash while reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import datasets
import pyarrow as pa

# The dataset card's columns (besides `id` and `image`), with the types the lake stores.
CARD_COLUMNS: dict[str, pa.DataType] = {
    "source": pa.string(),
    "original_question": pa.string(),
    "original_answer": pa.string(),
    "question": pa.string(),
    "answer": pa.string(),
    "qwen3vl_235b_instruct_caption": pa.string(),
    "qwen3vl_235b_thinking_response": pa.string(),
    "qwen3vl_4b_pass_rate": pa.float64(),
    "is_consistent": pa.bool_(),
    "consistency_analysis": pa.string(),
}


def dataset_subsets(path: str) -> list[str]:
    """The subsets (config names) of a hub-layout dataset, in the order the dataset lists them."""
    if Path(path).expanduser().is_dir():
        path = str(Path(path).expanduser())
    return list(datasets.get_dataset_config_names(path))


class HFSourceResource(dg.ConfigurableResource):
    """Where rows are collected from (`MMFR_SOURCE`): a local hub-layout folder or a hub id."""

    path: str

    def subsets(self) -> list[str]:
        return dataset_subsets(self.path)

    def stream(
        self, subset: str, *, batch_size: int, max_samples: int | None = None
    ) -> Iterator[pa.Table]:
        """Arrow batches of the subset's train split, read lazily (never the whole subset).

        Close the generator when done with it (`contextlib.closing`; `collected` does): the
        stream's parquet readers are then closed at once, not at interpreter exit, where a
        half-read stream was seen hanging the process (huggingface/datasets#7467).
        """
        stream = datasets.load_dataset(self.path, subset, split="train", streaming=True)
        if isinstance(stream.features, datasets.Features) and "image" in stream.features:
            stream = stream.cast_column("image", datasets.Image(decode=False))
        if max_samples is not None:
            stream = stream.take(max_samples)
        tables = stream.with_format("arrow").iter(batch_size=batch_size)
        try:
            yield from tables
        finally:
            close = getattr(tables, "close", None)
            if close is not None:
                close()


def to_collected(table: pa.Table, subset: str, first_row: int) -> pa.Table:
    """Normalize one source batch to the `collected` schema.

    Ids become strings (sources differ: the published card uses integers); a row without an id
    gets `#<row number>` so that every row stays addressable. Columns the source lacks are null.
    """
    n = table.num_rows
    names = set(table.column_names)
    if "id" in names:
        ids = table.column("id").cast(pa.string()).to_pylist()
    else:
        ids = [None] * n
    ids = [i if i not in (None, "") else f"#{first_row + k}" for k, i in enumerate(ids)]
    columns: dict[str, pa.Array] = {
        "subset": pa.array([subset] * n, pa.string()),
        "id": pa.array(ids, pa.string()),
    }
    for name, dtype in CARD_COLUMNS.items():
        columns[name] = (
            table.column(name).cast(dtype) if name in names else pa.nulls(n, dtype)
        )
    if "image" in names:
        image = table.column("image").combine_chunks()
        if pa.types.is_struct(image.type):
            columns["image_bytes"] = image.field("bytes").cast(pa.binary())
            columns["image_path"] = image.field("path").cast(pa.string())
        else:  # a plain binary column
            columns["image_bytes"] = image.cast(pa.binary())
            columns["image_path"] = pa.nulls(n, pa.string())
    else:
        columns["image_bytes"] = pa.nulls(n, pa.binary())
        columns["image_path"] = pa.nulls(n, pa.string())
    return pa.table(columns)
