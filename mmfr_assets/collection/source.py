"""The source dataset: a Hugging Face dataset in hub layout, one config per subset.

Read through `datasets.load_dataset(..., streaming=True)` whether it is a local folder or a hub
id, so the bundled sample and the published dataset share one code path. Images are read
undecoded (bytes as published): decoding belongs to the cleaning stage, which must see corrupt
bytes to reject them rather than crash while reading.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import datasets
import datasets.config
import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.collection.image_values import row_images
from mmfr_assets.collection.mapping import ColumnMap, resolve_mapping
from mmfr_assets.errors import InputError

SOURCE_SHAPE = (
    "a source is a folder in hub layout (README.md whose `configs` name the subsets, one folder "
    "of parquet files per subset) or a hub dataset id such as owner/name"
)
# How long the hub may take to accept a connection before a hub-id source is refused: without
# this probe, `datasets` retries an unreachable hub for ~25 s before failing.
HUB_PROBE_SECONDS = 3.0

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
    """The subsets (config names) of a hub-layout dataset, in the order the dataset lists them.

    A source that cannot be a dataset (a missing folder, a folder without data, a hub id the
    hub cannot serve) raises `InputError` with the path and what a source must look like.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        try:
            names = list(datasets.get_dataset_config_names(str(local)))
        except (FileNotFoundError, ValueError) as error:
            raise InputError(f"MMFR_SOURCE {path}: {_first_line(error)}; {SOURCE_SHAPE}") from None
        if not names:
            raise InputError(f"MMFR_SOURCE {path}: no subsets found; {SOURCE_SHAPE}")
        return names
    if local.exists():
        raise InputError(f"MMFR_SOURCE {path}: a file, not a folder; {SOURCE_SHAPE}")
    if not _could_be_hub_id(path):
        raise InputError(f"MMFR_SOURCE {path}: no such folder; {SOURCE_SHAPE}")
    if not datasets.config.HF_HUB_OFFLINE:
        _probe_hub(path)
    try:
        return list(datasets.get_dataset_config_names(path))
    except (ConnectionError, FileNotFoundError) as error:
        hint = (
            "offline (HF_HUB_OFFLINE=1) and not in the local hub cache"
            if datasets.config.HF_HUB_OFFLINE
            else _first_line(error)
        )
        raise InputError(
            f"MMFR_SOURCE {path}: not a local folder, and the hub id cannot be read: {hint}; "
            f"{SOURCE_SHAPE}"
        ) from None


def _could_be_hub_id(path: str) -> bool:
    """`owner/name` or `name`: no leading `/`, `.` or `~`, at most one `/`."""
    return not path.startswith(("/", ".", "~")) and path.count("/") <= 1 and "\\" not in path


def _probe_hub(path: str) -> None:
    """Fail fast when the hub cannot be reached at all (no network): one connection attempt."""
    endpoint = urlsplit(datasets.config.HF_ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
    except OSError as error:
        raise InputError(
            f"MMFR_SOURCE {path}: not a local folder, and the hub ({endpoint.geturl()}) cannot "
            f"be reached ({error}): offline, point MMFR_SOURCE at a hub-layout folder, or set "
            f"HF_HUB_OFFLINE=1 to read datasets from the local hub cache"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def naming_unreadable_files(subset: str, tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Pass `tables` through; an error reading a source file becomes an `InputError` naming the
    subset and the file (pyarrow's own, e.g. `Couldn't deserialize thrift`, names neither).

    Which file was being read is only known inside `datasets`' parquet reader, as the local
    `file` of its `_generate_tables` frame; we take it from the traceback rather than re-reading
    every file to find the bad one. Errors raised anywhere else propagate unchanged.
    """
    try:
        yield from tables
    except (OSError, pa.ArrowException) as error:
        # pyarrow reports unreadable data as a plain OSError (or an Arrow error); subclasses
        # (connection errors, timeouts of a hub source) are not the file's fault.
        unreadable = type(error) is OSError or isinstance(error, pa.ArrowException)
        file = _file_being_read(error) if unreadable else None
        if file is None:
            raise
        raise InputError(
            f"source subset {subset}: cannot read {file}: {_first_line(error)} "
            "(a corrupt or truncated parquet file?)"
        ) from error


def _file_being_read(error: BaseException) -> str | None:
    tb = error.__traceback__
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_generate_tables" and "file" in frame.f_locals:
            found = frame.f_locals["file"]
        tb = tb.tb_next
    return None if found is None else str(getattr(found, "name", found))


class HFSourceResource(dg.ConfigurableResource):
    """Where rows are collected from (`MMFR_SOURCE`): a local hub-layout folder or a hub id."""

    path: str

    def subsets(self) -> list[str]:
        return dataset_subsets(self.path)

    def local_folders(self, subset: str) -> list[Path]:
        """Where relative image paths are looked up: the subset's folder, then the dataset's."""
        root = Path(self.path).expanduser()
        return [root / subset, root] if root.is_dir() else []

    def row_count(self, subset: str) -> int | None:
        """Rows of the subset's train split where its files say so without being read (local
        parquet files: their footers); None otherwise (a hub id, another format), and then
        collection's progress has no total."""
        root = Path(self.path).expanduser()
        if not root.is_dir():
            return None
        try:
            files = datasets.load_dataset_builder(str(root), subset).config.data_files["train"]
            if not files or not all(str(f).endswith(".parquet") for f in files):
                return None
            return sum(pq.read_metadata(str(f)).num_rows for f in files)
        except Exception:  # a count for progress only: reading the rows says what is wrong
            return None

    def stream(
        self, subset: str, *, batch_size: int, max_samples: int | None = None
    ) -> Iterator[pa.Table]:
        """Arrow batches of the subset's train split, read lazily (never the whole subset).

        Close the generator when done with it (`mapped_tables` and `collected` do): the
        stream's parquet readers are then closed at once, not at interpreter exit, where a
        half-read stream was seen hanging the process (huggingface/datasets#7467).
        """
        stream = datasets.load_dataset(self.path, subset, split="train", streaming=True)
        if Path(self.path).expanduser().is_dir():
            # One shard per parquet row group, read in order: a whole file's scan decodes all
            # its row groups ahead of the reader (pyarrow 26; measured: a 10,000-row file's
            # images, ~100 MB, in memory at once), so memory grew with the subset. Local only:
            # on the hub each row group would open the remote file again.
            stream = stream.reshard()
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
    stream = naming_unreadable_files(  # a read error names the subset and the file
        subset, source.stream(subset, batch_size=batch_size, max_samples=max_samples)
    )
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
