"""The source dataset: a Hugging Face dataset in hub layout, one config per subset.

Read through `datasets.load_dataset(..., streaming=True)` whether it is a local folder or a hub
id, so the bundled sample and the published dataset share one code path. Images are read
undecoded (bytes as published): decoding belongs to the cleaning stage, which must see corrupt
bytes to reject them rather than crash while reading.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
import datasets
import pyarrow as pa

from mmfr_assets.collection.image_values import row_images
from mmfr_assets.collection.mapping import ColumnMap, resolve_mapping
from mmfr_assets.errors import InputError

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

    def local_folders(self, subset: str) -> list[Path]:
        """Where relative image paths are looked up: the subset's folder, then the dataset's."""
        root = Path(self.path).expanduser()
        return [root / subset, root] if root.is_dir() else []

    def stream(
        self, subset: str, *, batch_size: int, max_samples: int | None = None
    ) -> Iterator[pa.Table]:
        """Arrow batches of the subset's train split, read lazily (never the whole subset).

        Close the generator when done with it (`mapped_tables` and `collected` do): the
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


def mapped_tables(
    source: HFSourceResource,
    subset: str,
    column_map: ColumnMap | Mapping[str, str | None] | None,
    *,
    batch_size: int,
    max_samples: int | None = None,
) -> tuple[Iterator[pa.Table], dict[str, str]]:
    """The subset's batches in the `collected` schema, and the resolved column mapping.

    The first batch is read here, so that a mapping naming absent columns or a source with
    none of the usual columns raises `InputError` before the caller writes anything.
    """
    stream = source.stream(subset, batch_size=batch_size, max_samples=max_samples)
    try:
        first = next(stream, None)
        if first is None:
            stream.close()
            return iter(()), {}
        where = f"source {source.path} subset {subset!r}"
        mapping = resolve_mapping(first.column_names, column_map, where=where)
        folders = source.local_folders(subset)
        # Converted here too, so that a mapped column of the wrong type is refused up front.
        converted = to_collected(first, subset, 0, mapping, folders)
    except BaseException:
        stream.close()  # never leave a half-read scan open (pyarrow can hang at exit)
        raise

    def tables() -> Iterator[pa.Table]:
        rows = first.num_rows
        try:
            yield converted
            for table in stream:
                yield to_collected(table, subset, rows, mapping, folders)
                rows += table.num_rows
        finally:
            stream.close()

    return tables(), mapping


def to_collected(
    table: pa.Table,
    subset: str,
    first_row: int,
    mapping: Mapping[str, str] | None = None,
    folders: Sequence[Path] = (),
) -> pa.Table:
    """Normalize one source batch to the `collected` schema.

    `mapping` is `{collected column: source column}` (see `mapping.resolve_mapping`; None =
    auto-detected from this batch). Ids become strings (sources differ: the published card
    uses integers); a row without an id gets `#<row number>` so that every row stays
    addressable. Columns the source lacks are null. Image values (struct, bytes, a path
    relative to one of `folders`, or a list of these) become the first image's bytes and
    path plus `image_count`.
    """
    if mapping is None:
        mapping = resolve_mapping(table.column_names, None, where=f"subset {subset!r}")
    n = table.num_rows
    if "id" in mapping:
        ids = table.column(mapping["id"]).cast(pa.string()).to_pylist()
    else:
        ids = [None] * n
    ids = [i if i not in (None, "") else f"#{first_row + k}" for k, i in enumerate(ids)]
    columns: dict[str, pa.Array] = {
        "subset": pa.array([subset] * n, pa.string()),
        "id": pa.array(ids, pa.string()),
    }
    for name, dtype in CARD_COLUMNS.items():
        columns[name] = (
            _cast(table.column(mapping[name]), dtype, name, subset)
            if name in mapping else pa.nulls(n, dtype)
        )
    if "image" in mapping:
        images = row_images(table.column(mapping["image"]), folders)
        columns["image_bytes"] = pa.array([i.data for i in images], pa.binary())
        columns["image_path"] = pa.array([i.path for i in images], pa.string())
        columns["image_count"] = pa.array([i.count for i in images], pa.int32())
    else:
        columns["image_bytes"] = pa.nulls(n, pa.binary())
        columns["image_path"] = pa.nulls(n, pa.string())
        columns["image_count"] = pa.array([0] * n, pa.int32())
    return pa.table(columns)


def _cast(column: pa.ChunkedArray, dtype: pa.DataType, name: str, subset: str) -> pa.ChunkedArray:
    """The source column as the lake's type; text columns take anything castable to text
    (numbers, booleans), and a column that cannot be cast is refused with one line."""
    try:
        return column.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise InputError(
            f"subset {subset!r}: the column mapped to {name} has type {column.type}, "
            f"which cannot be read as {dtype}: {error}"
        ) from None
