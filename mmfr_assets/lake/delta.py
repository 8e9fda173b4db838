"""Delta tables of the lake: bounded-batch partition reads and atomic partition rewrites.

We own the write path instead of using an IO manager or `write_deltalake` on a stream: both were
measured to hold a whole partition (or several GB) in memory. Here a partition is written as
parquet files, one row group per incoming batch, and published with a single Delta transaction
that replaces exactly that partition. Until the commit nothing is visible; a crash or a kill
leaves at worst orphan files that no table version references (`vacuum` removes them), and
runs on different partitions of one table commit concurrently (delta-rs resolves the race).
"""

from __future__ import annotations

import atexit
import gc
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import quote

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties

# One parquet file is closed and a new one started past this size, so a partition of any size
# becomes several files of bounded size (and readers can parallelise over them).
MAX_FILE_BYTES = 512 * 1024**2
COMMIT_ATTEMPTS = 10
# commitInfo key naming the writer of a commit, so that it can find its own version afterwards.
WRITER_KEY = "mmfr.writer"
# The partition column of shards (mmfr_assets/partitions.py, lake/shards.py): a place in the lake, not row
# data, so partition reads leave it out unless asked for by name.
SHARD_COLUMN = "shard"
# Every table of the lake checkpoints its log every 10 commits (Delta's own default, Spark's;
# delta-rs defaults to 100). Opening a table replays the JSON commits since the last
# checkpoint, one object-store GET each, and a lake's tables take one commit per partition and
# asset: the rejections table one per asset x subset x shard (1,518 in the 1,099-row rehearsal).
# Measured on the tests' S3 server (`python -m bench --only lake_log`), a table of 300 commits:
# an open + count 338 -> 96 ms and 117 -> 27 requests, a commit 388 -> 182 ms; a step opens ~10.
TABLE_PROPERTIES = {"delta.checkpointInterval": "10"}


#: How long a process that opened a table waits at exit for pyarrow's background reads to end.
#: A process exiting just after a scan (finished or closed half-read) can abort in the teardown
#: of pyarrow's thread pools, "terminate called without an active exception" (apache/arrow#39862;
#: its workaround, a short wait before exit). Measured here, 2 processes at a time each reading
#: 1 to 5 batches of a 20,000-row partition then closing the scan: 7 of 1,800 aborted; with a
#: 0.1 s wait after a `gc.collect()`, 0 of 1,200, and 0 of 1,200 with this 0.2 s. Step
#: processes take seconds; this is noise.
EXIT_SETTLE_S = 0.2
_settle_registered = False


def _settle_before_exit() -> None:
    gc.collect()  # scanners still referenced by garbage end now, while the interpreter is whole
    time.sleep(EXIT_SETTLE_S)


def _settle_at_exit() -> None:
    """Register `_settle_before_exit` once per process, at its first table (after pyarrow's
    own import, so it runs before anything pyarrow registered: atexit is last in, first out)."""
    global _settle_registered
    if not _settle_registered:
        _settle_registered = True
        atexit.register(_settle_before_exit)


#: The tables opened so far in a `pinned_snapshots()` scope (uri -> table), None outside one.
_PINNED: ContextVar[dict[str, DeltaTable] | None] = ContextVar("mmfr_pinned_snapshots", default=None)


@contextmanager
def pinned_snapshots() -> Iterator[None]:
    """Within it, every `DeltaLocation.table()` of one table is the snapshot its first call
    opened: a reader of many tables and partitions (the report: every subset x stage, its funnel,
    viewer and audit) reads each table's log once and sees one version of each, whatever commits
    meanwhile. Measured before it: the report of the 1,099-row rehearsal took 507 s and ~137,000
    object-store requests, nearly all of them logs read again. Writers never use it
    (`PartitionWriter` commits on the newest version)."""
    token = _PINNED.set({})
    try:
        yield
    finally:
        _PINNED.reset(token)


@dataclass(frozen=True)
class DeltaLocation:
    """Where one Delta table lives, with the storage options deltalake needs to reach it."""

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def table(self) -> DeltaTable | None:
        """The table's current version (None: no table yet); inside `pinned_snapshots()`, the
        version first opened there."""
        pinned = _PINNED.get()
        if pinned is None:
            return self.latest()
        if self.uri not in pinned:
            table = self.latest()
            if table is None:
                return None  # not pinned: a table created meanwhile is seen
            pinned[self.uri] = table
        return pinned[self.uri]

    def latest(self) -> DeltaTable | None:
        """The table's newest version, opened now (None: no table yet)."""
        _settle_at_exit()
        try:
            return DeltaTable(self.uri, storage_options=dict(self.storage_options) or None)
        except TableNotFoundError:
            return None

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        return filesystem_for(self.uri, self.storage_options)


def filesystem_for(uri: str, storage_options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and root path for `uri` (local path, file://, s3://, gs://...)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    if uri.startswith("s3://"):
        # Always ours: with no options the settings come from the AWS_* environment, as for
        # deltalake; pyarrow's from_uri would instead ask AWS for the bucket's region.
        from mmfr_assets.lake.object_store import s3_filesystem

        return s3_filesystem(uri, storage_options)
    return pafs.FileSystem.from_uri(uri)


def _filter_expression(partition: Mapping[str, str]) -> pads.Expression | None:
    expression = None
    for column, value in partition.items():
        term = pads.field(column) == value
        expression = term if expression is None else expression & term
    return expression


class PartitionReader:
    """One partition's batches, read lazily, with a `close()` that releases the pyarrow scan.

    Why a class and not a plain generator: a scan left half-consumed (the consumer raised, or
    stopped early) keeps pyarrow's C++ iterator and its pending read-ahead alive until garbage
    collection, which for a failed step means interpreter exit, while pyarrow's thread pools
    shut down: processes were seen hanging there forever or aborting (apache/arrow#45214,
    #50482). Use it as a context manager (or call `close()`) so the scan ends on every path.
    """

    def __init__(
        self,
        location: DeltaLocation,
        partition: Mapping[str, str],
        *,
        columns: list[str] | None = None,
        batch_size: int = 1024,
        where: pads.Expression | None = None,
        table: DeltaTable | None = None,
    ) -> None:
        self._location = location
        self._table = table
        self._partition = dict(partition)
        self._columns = columns
        self._batch_size = batch_size
        self._where = where
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._scan: Iterator[pa.RecordBatch] | None = None  # the current fragment's scan
        self.closed = False

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __iter__(self) -> PartitionReader:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self.closed:
            raise StopIteration
        if self._batches is None:
            self._batches = self._read()
        try:
            return next(self._batches)
        except BaseException:
            self.close()  # exhausted or failed: nothing is left to read
            raise

    def close(self) -> None:
        """End the scan now (idempotent): the fragment iterator is closed and released in the
        calling thread, not left to the garbage collector."""
        self.closed = True
        scan, self._scan = self._scan, None
        if scan is not None:
            scan.close()
        batches, self._batches = self._batches, None
        if batches is not None:
            batches.close()

    def _read(self) -> Iterator[pa.RecordBatch]:
        table = self._table or self._location.table()
        if table is None:
            raise FileNotFoundError(
                f"Delta table {self._location.uri} does not exist yet: materialize its asset first"
            )
        dataset = table.to_pyarrow_dataset()
        columns = self._columns or [n for n in dataset.schema.names if n != SHARD_COLUMN]
        selected = _filter_expression(self._partition)
        if self._where is not None:
            selected = self._where if selected is None else selected & self._where
        # `where` prunes whole files on partition columns here, and rows within a file below.
        fragments = sorted(dataset.get_fragments(filter=selected), key=lambda f: f.path)
        for fragment in fragments:
            # One row group at a time: a scan of a whole file decodes every row group ahead of
            # the consumer whatever its readahead options (measured, pyarrow 26: a 10-row-group
            # file all in memory after its first batch), so memory grew with the partition.
            for row_group in fragment.split_by_row_group():
                self._scan = row_group.to_batches(
                    schema=dataset.schema,
                    columns=columns,
                    filter=self._where,
                    batch_size=self._batch_size,
                    batch_readahead=1,
                    fragment_readahead=1,
                )
                try:
                    for batch in self._scan:
                        if batch.num_rows:
                            yield batch
                finally:
                    scan, self._scan = self._scan, None
                    if scan is not None:
                        scan.close()


def read_partition(
    location: DeltaLocation,
    partition: Mapping[str, str],
    *,
    columns: list[str] | None = None,
    batch_size: int = 1024,
    where: pads.Expression | None = None,
    table: DeltaTable | None = None,
) -> PartitionReader:
    """Stream one partition in batches of at most `batch_size` rows, in the order it was written.

    Files are read one at a time in the order of their sequence-numbered names, one batch at a
    time, so memory stays bounded by the batch size (pyarrow's scanner defaults read 16
    batches ahead, gigabytes for image columns) and two tables written from the same stream
    can be read side by side in step. Close the reader (`with read_partition(...) as batches:`)
    unless it is read to the end: see `PartitionReader`. `where` (a pyarrow expression) keeps
    only the matching rows: files whose partition values cannot match are not opened. `table`
    (the location's table, opened already) reads that snapshot: its log is not read again, and
    several reads of one run see one version while other runs commit.
    """
    return PartitionReader(location, partition, columns=columns, batch_size=batch_size, where=where, table=table)


def count_rows(location: DeltaLocation, partition: Mapping[str, str] | None = None) -> int:
    """Rows of the current table version in `partition` (0 when the table does not exist)."""
    table = location.table()
    if table is None:
        return 0
    return rows_in(table, partition or {})


def count_rows_by(location: DeltaLocation, column: str) -> dict[str, int]:
    """Rows of the current table version per value of `column` ({} when the table does not
    exist): every subset's count in one read of the log (`rows_by`)."""
    table = location.table()
    return {} if table is None else rows_by(table, column)


def rows_in(table: DeltaTable, partition: Mapping[str, str]) -> int:
    """Rows of `table`'s snapshot in `partition`, read from its log: the sum of the files'
    `numRecords`, which our writer records for every file it adds (`_add_action`), so no data
    file is opened. Counting through the dataset instead reads every matching file's footer,
    one or two object-store GETs per file: the funnel and every step's accounting check count
    each subset of each table, on a lake of subsets x shards x files. A file without the count
    (added by another tool) or a `partition` on a column the table is not partitioned by is
    counted through the dataset."""
    partitioned = table.metadata().partition_columns
    if set(partition) <= set(partitioned):
        counted = _counts_by(table, list(partition))
        if counted is not None:
            return counted.get(tuple(partition.values()), 0)
    return table.to_pyarrow_dataset().count_rows(filter=_filter_expression(partition))


def rows_by(table: DeltaTable, column: str) -> dict[str, int]:
    """Rows of `table`'s snapshot per value of its partition column `column` (values with no
    row left out), in one read of its log; through the dataset as `rows_in` says otherwise."""
    if column in table.metadata().partition_columns:
        counted = _counts_by(table, [column])
        if counted is not None:
            return {key[0]: n for key, n in counted.items()}
    counts = table.to_pyarrow_dataset().to_table(columns=[column]).group_by(column).aggregate([([], "count_all")])
    return dict(zip(counts[column].to_pylist(), counts["count_all"].to_pylist()))


def _counts_by(table: DeltaTable, columns: list[str]) -> dict[tuple[str, ...], int] | None:
    """(partition values of `columns`) -> rows, from the add actions' record counts; None if a
    file has no count."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return {}
    records = actions.column("num_records")
    if records.null_count:
        return None
    keys = [actions.column(f"partition.{c}").to_pylist() for c in columns]
    counts: dict[tuple[str, ...], int] = {}
    for *key, n in zip(*keys, records.to_pylist()):
        counts[tuple(key)] = counts.get(tuple(key), 0) + n
    return counts


class PartitionWriter:
    """Writes one partition of a Delta table and publishes it atomically on `commit()`.

    `schema` is the table's full schema including the partition columns (a partition column it
    lacks, such as `shard`, is added as a string); the parquet files hold the other columns (the
    Delta convention: partition values live in the log). `commit_metadata` goes into the
    commit's commitInfo (the shard count a lake was written with).
    """

    def __init__(
        self,
        location: DeltaLocation,
        schema: pa.Schema,
        partition: Mapping[str, str],
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.location = location
        for column in partition:
            if column not in schema.names:
                schema = schema.append(pa.field(column, pa.string()))
        self.schema = schema
        self.commit_metadata = dict(commit_metadata or {})
        self.partition = dict(partition)
        self.partition_by = list(self.partition)
        self.data_schema = pa.schema([f for f in schema if f.name not in self.partition])
        self.max_file_bytes = max_file_bytes
        self.rows_written = 0
        self._fs, self._root = location.filesystem()
        self._dir = "/".join(f"{k}={quote(v, safe='')}" for k, v in self.partition.items())
        self._files: list[tuple[str, int]] = []  # (relative path, rows)
        self._writer: pq.ParquetWriter | None = None
        self._current: str | None = None
        self._current_rows = 0
        self._current_bytes = 0
        self._committed = False

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.abort()

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows (one row group); columns are selected and cast to the table schema."""
        if data.num_rows == 0:
            return
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        data = data.select(self.data_schema.names).cast(self.data_schema)
        if self._writer is None:
            self._open_file()
        self._writer.write_table(data, row_group_size=data.num_rows)
        self._current_rows += data.num_rows
        self._current_bytes += data.nbytes  # in-memory size: an upper bound of the file's growth
        self.rows_written += data.num_rows
        if self._current_bytes >= self.max_file_bytes:
            self._close_file()

    def commit(
        self, *, together: Sequence[PartitionWriter] = (), replacing: Mapping[str, str] | None = None
    ) -> int:
        """Replace the partition with the written files in one transaction; returns the version.

        `together`: writers of other partitions of the same table whose files join this commit,
        and `replacing` the (wider) partition the commit replaces: one subset's every shard in
        one transaction, so readers never see some shards of a new version and some of the old.
        """
        writers = [self, *together]
        for writer in writers:
            writer._close_file()
        table = self._table_for_commit()
        actions = [w._add_action(path, rows) for w in writers for path, rows in w._files]
        filters = [(k, "=", v) for k, v in (self.partition if replacing is None else replacing).items()]
        writer = str(uuid.uuid4())
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                table.create_write_transaction(
                    actions,
                    mode="overwrite",
                    schema=self.schema,
                    partition_by=self.partition_by,
                    partition_filters=filters,
                    commit_properties=CommitProperties(
                        custom_metadata={**self.commit_metadata, WRITER_KEY: writer}),
                )
                break
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
                table = self._table_for_commit()
        for w in writers:
            w._committed = True
        return self._committed_version(writer, table.version())

    def _committed_version(self, writer: str, base: int) -> int:
        """The version our commit got. `table.version()` is still the snapshot the commit was
        based on (delta-rs may have retried it on top of other writers' commits), and
        `history()` numbers commits from a listing that races with concurrent writers, so the
        commit is found in the log itself by the id its commitInfo carries, from `base` up."""
        version = base + 1
        while True:
            path = self._full(f"_delta_log/{version:020d}.json")
            try:
                with self._fs.open_input_stream(path) as log:
                    lines = log.read().decode().splitlines()
            except FileNotFoundError:
                raise RuntimeError(
                    f"{self.location.uri}: committed, but no commit carries {writer}"
                ) from None
            for line in lines:
                info = json.loads(line).get("commitInfo") if line.strip() else None
                if info and info.get(WRITER_KEY) == writer:
                    return version
            version += 1

    def abort(self) -> None:
        """Remove the files this writer wrote; nothing was published, so readers never saw them."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            if self._current:
                self._files.append((self._current, self._current_rows))
        for path, _ in self._files:
            try:
                self._fs.delete_file(self._full(path))
            except (FileNotFoundError, OSError):
                pass
        self._files.clear()

    def _full(self, relative: str) -> str:
        return f"{self._root.rstrip('/')}/{relative}"

    def _open_file(self) -> None:
        # The sequence number orders the files as written (read_partition relies on it).
        sequence = len(self._files)
        self._current = f"{self._dir}/part-{sequence:05d}-{uuid.uuid4()}.parquet"
        self._fs.create_dir(self._full(self._dir), recursive=True)
        self._writer = pq.ParquetWriter(
            self._full(self._current), self.data_schema, filesystem=self._fs, compression="zstd"
        )
        self._current_rows = 0
        self._current_bytes = 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        self._files.append((self._current, self._current_rows))
        self._current = None

    def _table_for_commit(self) -> DeltaTable:
        table = self.location.latest()
        if table is None:
            try:
                DeltaTable.create(
                    self.location.uri,
                    self.schema,
                    partition_by=self.partition_by,
                    mode="ignore",  # another run may create it at the same moment
                    configuration=TABLE_PROPERTIES,
                    storage_options=dict(self.location.storage_options) or None,
                )
            except CommitFailedError:
                # Concurrent first writers: delta-rs lets exactly one commit version 0 and the
                # others fail ("protocol changed") instead of ignoring; the table exists now.
                pass
            table = self.location.latest()
            if table is None:
                raise RuntimeError(f"{self.location.uri}: could not create the Delta table")
        elif missing := _missing_properties(table):
            table = _set_properties(self.location, table, missing)
        return table

    def _add_action(self, path: str, rows: int) -> AddAction:
        size = self._fs.get_file_info(self._full(path)).size
        return AddAction(
            path,
            size,
            self.partition,
            int(time.time() * 1000),
            True,
            json.dumps({"numRecords": rows}),
        )


def _missing_properties(table: DeltaTable) -> dict[str, str]:
    configuration = table.metadata().configuration
    return {k: v for k, v in TABLE_PROPERTIES.items() if configuration.get(k) != v}


def _set_properties(location: DeltaLocation, table: DeltaTable, missing: dict[str, str]) -> DeltaTable:
    """Give a table made before `TABLE_PROPERTIES` (an older lake) the `missing` ones, once: one
    metadata commit. A writer racing it may fail its commit and retry (`commit`'s loop), and
    two upgrading at once leave one commit: the loser's conflict is ignored."""
    try:
        table.alter.set_table_properties(missing, raise_if_not_exists=False)
    except CommitFailedError:
        pass
    return location.latest() or table
