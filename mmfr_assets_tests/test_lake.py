"""The owned Delta write path: atomic partition rewrites, bounded reads, concurrency."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter, count_rows, read_partition

SCHEMA = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])


def _write(location, subset, n, *, batch=100, **kwargs):
    with PartitionWriter(location, SCHEMA, {"subset": subset}, **kwargs) as writer:
        for start in range(0, n, batch):
            ids = [f"{subset}-{i}" for i in range(start, min(n, start + batch))]
            writer.write(pa.table({"id": ids, "x": list(range(len(ids)))}))
        return writer.commit()


def _ids(location, subset):
    return sorted(i for b in read_partition(location, {"subset": subset}) for i in b["id"].to_pylist())


@pytest.mark.parametrize("subset", ["BMMR", "FineVision-geo170k(qa)", "a b/c%d", "数学"])
def test_partition_values_with_special_characters_round_trip(tmp_path, subset):
    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, subset, 250)
    assert count_rows(location, {"subset": subset}) == 250
    assert _ids(location, subset) == sorted(f"{subset}-{i}" for i in range(250))


def test_tables_checkpoint_their_log_every_ten_commits(tmp_path):
    """An open replays the commits since the last checkpoint (one object-store GET each): the
    lake's tables checkpoint every 10 commits, not delta-rs' 100, whatever partition a commit
    replaced, and the rows read back are the latest commit's."""
    location = DeltaLocation(str(tmp_path / "t"))
    for k in range(23):
        _write(location, f"S{k % 4}", 5 + k)
    log = tmp_path / "t" / "_delta_log"
    assert location.table().metadata().configuration["delta.checkpointInterval"] == "10"
    checkpoints = sorted(int(p.name.split(".")[0]) for p in log.glob("*.checkpoint.parquet"))
    assert len(checkpoints) == 2 and checkpoints[1] - checkpoints[0] == 10  # 24 versions (create + 23)
    assert count_rows(location, {"subset": "S2"}) == 5 + 22
    assert _ids(location, "S1") == sorted(f"S1-{i}" for i in range(5 + 21))


def test_a_table_made_before_the_checkpoint_setting_gets_it_at_its_next_commit(tmp_path):
    """An older lake's table (delta-rs' default interval) is given the property by its next
    commit (one metadata commit), its rows untouched, and checkpoints from then on."""
    from deltalake import DeltaTable

    location = DeltaLocation(str(tmp_path / "t"))
    DeltaTable.create(location.uri, SCHEMA, partition_by=["subset"])
    _write(location, "A", 7)
    assert location.table().metadata().configuration["delta.checkpointInterval"] == "10"
    for k in range(10):
        _write(location, "B", k + 1)
    assert count_rows(location, {"subset": "A"}) == 7 and count_rows(location, {"subset": "B"}) == 10
    assert list((tmp_path / "t" / "_delta_log").glob("*.checkpoint.parquet"))


def test_row_counts_are_read_from_the_log_and_from_the_files_when_it_lacks_them(tmp_path):
    """Counts come from the files' record counts in the log (no data file opened: here the files
    are gone and the counts stand); a file another tool added without one is counted from the
    files, and so is a filter on a column the table is not partitioned by."""
    from dataclasses import replace

    from mmfr_assets.lake.delta import rows_by, rows_in

    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, "A", 250, max_file_bytes=1)  # three files
    _write(location, "B", 0)  # an empty partition, committed
    _write(location, "C(x)", 7)
    table = location.table()
    assert rows_by(table, "subset") == {"A": 250, "C(x)": 7}
    assert [rows_in(table, {"subset": s}) for s in ("A", "B", "C(x)", "D")] == [250, 0, 7, 0]
    for data_file in (tmp_path / "t").rglob("*.parquet"):
        if "_delta_log" not in str(data_file):
            data_file.unlink()
    assert count_rows(location, {"subset": "A"}) == 250 and count_rows(location) == 257

    class NoCounts(PartitionWriter):  # another writer: its add actions carry no numRecords
        def _add_action(self, path, rows):
            return replace(super()._add_action(path, rows), stats="{}")

    other = DeltaLocation(str(tmp_path / "u"))
    with NoCounts(other, SCHEMA, {"subset": "A"}) as writer:
        writer.write(pa.table({"id": ["a", "b", "c"], "x": [1, 2, 3]}))
        writer.commit()
    _write(other, "B", 4)
    assert rows_in(other.table(), {"subset": "A"}) == 3 and rows_by(other.table(), "subset") == {"A": 3, "B": 4}
    with pytest.raises(FileNotFoundError):  # not a partition column: through the files, gone here
        rows_in(location.table(), {"id": "A-1"})


def test_rewrite_replaces_only_its_partition(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, "A", 300)
    _write(location, "B(x)", 50)
    _write(location, "A", 120)
    assert count_rows(location, {"subset": "A"}) == 120
    assert count_rows(location, {"subset": "B(x)"}) == 50
    assert count_rows(location) == 170


def test_failed_write_leaves_previous_version_readable_and_no_files(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, "A", 100)
    before = sorted(p.name for p in (tmp_path / "t").rglob("*.parquet"))
    with pytest.raises(RuntimeError):
        with PartitionWriter(location, SCHEMA, {"subset": "A"}) as writer:
            writer.write(pa.table({"id": ["new"], "x": [1]}))
            raise RuntimeError("crash mid-write")
    assert _ids(location, "A") == sorted(f"A-{i}" for i in range(100))
    assert sorted(p.name for p in (tmp_path / "t").rglob("*.parquet")) == before


def test_empty_partition_is_committed_and_replaces_old_rows(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, "A", 10)
    _write(location, "A", 0)
    assert count_rows(location, {"subset": "A"}) == 0
    assert location.table() is not None


def test_large_partition_rolls_over_to_several_files_and_reads_in_bounded_batches(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    _write(location, "A", 5000, batch=500, max_file_bytes=20_000)
    assert len(list((tmp_path / "t").rglob("*.parquet"))) > 2
    sizes = [b.num_rows for b in read_partition(location, {"subset": "A"}, batch_size=300)]
    assert sum(sizes) == 5000 and max(sizes) <= 300


def test_reading_a_missing_table_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize"):
        list(read_partition(DeltaLocation(str(tmp_path / "nope")), {"subset": "A"}))
    assert count_rows(DeltaLocation(str(tmp_path / "nope")), {"subset": "A"}) == 0


@pytest.mark.process
def test_concurrent_writers_on_different_partitions_all_land(tmp_path):
    uri = str(tmp_path / "t")
    script = textwrap.dedent(
        f"""
        import sys, pyarrow as pa
        from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter
        schema = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])
        subset = sys.argv[1]
        with PartitionWriter(DeltaLocation({uri!r}), schema, {{"subset": subset}}) as w:
            for k in range(5):
                w.write(pa.table({{"id": [f"{{subset}}-{{k}}-{{i}}" for i in range(1000)], "x": list(range(1000))}}))
            w.commit()
        """
    )
    subsets = [f"s({i})" for i in range(5)]
    procs = [subprocess.Popen([sys.executable, "-c", script, s]) for s in subsets]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    location = DeltaLocation(uri)
    for s in subsets:
        assert count_rows(location, {"subset": s}) == 5000
        assert len(set(_ids(location, s))) == 5000


def test_partition_reads_preserve_write_order_across_files(tmp_path):
    location = DeltaLocation(str(tmp_path / "t"))
    with PartitionWriter(location, SCHEMA, {"subset": "A"}, max_file_bytes=1) as writer:
        for k in range(12):  # one file per batch
            writer.write(pa.table({"id": [f"{k:02d}-{i}" for i in range(7)], "x": [k] * 7}))
        writer.commit()
    assert len(list((tmp_path / "t").rglob("*.parquet"))) == 12
    xs = [x for b in read_partition(location, {"subset": "A"}, batch_size=5) for x in b["x"].to_pylist()]
    assert xs == [k for k in range(12) for _ in range(7)]
