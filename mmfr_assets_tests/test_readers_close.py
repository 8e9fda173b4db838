"""Every partition reader ends its scan on every path, success or failure, without relying on
garbage collection (a half-read pyarrow scan left to interpreter exit hangs or aborts a step
process: see test_no_hang.py for the processes themselves)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import mmfr_assets.stage.run as stage_module
from mmfr_assets.lake.delta import DeltaLocation, PartitionReader, PartitionWriter, read_partition
from mmfr_assets.lake.ordered import OrderedRows, PartitionImages
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.stage import Verdicts, run_stage, upstream_batches

SCHEMA = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])
COLLECTED = pa.schema([("subset", pa.string()), ("id", pa.string()), ("image_bytes", pa.binary())])


def _write(location, schema, n, batch=100, **columns):
    with PartitionWriter(location, schema, {"subset": "A"}) as writer:
        for start in range(0, n, batch):
            ids = [str(i) for i in range(start, min(n, start + batch))]
            writer.write(pa.table({"id": ids, **{k: f(ids) for k, f in columns.items()}}))
        writer.commit()


@pytest.fixture
def lake(tmp_path):
    lake = LakeResource(uri=str(tmp_path / "lake"))
    _write(lake.location("t"), SCHEMA, 1000, x=lambda ids: [int(i) for i in ids])
    _write(lake.location("collected"), COLLECTED, 1000, image_bytes=lambda ids: [i.encode() for i in ids])
    return lake


def test_partition_reader_closed_mid_read_releases_its_scan(lake):
    reader = read_partition(lake.location("t"), {"subset": "A"}, batch_size=100)
    assert isinstance(reader, PartitionReader)
    assert next(reader).num_rows == 100
    assert reader._scan is not None  # a fragment scan is open, half-read
    reader.close()
    assert reader.closed and reader._scan is None and reader._batches is None
    assert list(reader) == []  # a closed reader yields nothing more
    reader.close()  # idempotent


def test_partition_reader_as_context_manager_closes_on_error(lake):
    with pytest.raises(RuntimeError, match="consumer failed"):
        with read_partition(lake.location("t"), {"subset": "A"}, batch_size=100) as reader:
            for _ in reader:
                raise RuntimeError("consumer failed")
    assert reader.closed and reader._scan is None


def test_partition_reader_read_to_the_end_closes_itself(lake):
    reader = read_partition(lake.location("t"), {"subset": "A"}, batch_size=300)
    assert sum(b.num_rows for b in reader) == 1000
    assert reader.closed


def test_missing_table_is_reported_on_first_read(tmp_path):
    reader = read_partition(DeltaLocation(str(tmp_path / "none")), {"subset": "A"})
    with pytest.raises(FileNotFoundError, match="materialize its asset first"):
        next(reader)
    assert reader.closed


def test_run_stage_closes_its_batches_when_a_batch_fails(lake, monkeypatch):
    readers: list[PartitionReader] = []
    real = stage_module.read_partition

    def tracked(*args, **kwargs):
        readers.append(real(*args, **kwargs))
        return readers[-1]

    monkeypatch.setattr(stage_module, "read_partition", tracked)
    batches = upstream_batches(lake, "t", "A", batch_size=100)
    seen = 0

    def decide(batch):
        nonlocal seen
        seen += 1
        if seen == 3:
            raise RuntimeError("fault mid-read")
        return Verdicts.no_drops(batch)

    with pytest.raises(RuntimeError, match="fault mid-read"):
        run_stage(lake, stage="out", subset="A", batches=batches, decide=decide, schema=SCHEMA)
    # `batches` is still referenced here: only an explicit close can have ended the scan.
    assert batches.gi_frame is None
    assert len(readers) == 1 and readers[0].closed


def test_run_stage_closes_its_batches_on_success(lake):
    batches = upstream_batches(lake, "t", "A", batch_size=300)
    run = run_stage(lake, stage="out", subset="A", batches=batches, decide=Verdicts.no_drops,
                    schema=SCHEMA)
    assert run.rows_out == 1000 and batches.gi_frame is None


def test_ordered_rows_and_partition_images_close(lake):
    with OrderedRows(lake.location("t"), "A", ["x"], batch_size=64) as rows:
        assert rows.take(["0", "5"]) == {"x": [0, 5]}
        assert not rows._batches.closed
    assert rows._batches.closed
    with pytest.raises(RuntimeError):
        with PartitionImages(lake, "A") as images:
            assert images.take(["1", "2"], [None, b"new"]) == [b"1", b"new"]
            raise RuntimeError("stage failed")
    assert images._originals._batches.closed
