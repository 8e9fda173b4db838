"""Shard partitions (MMFR_SHARDS, mmfr_assets/partitions.py and lake/shards.py): the graph with 2 shards gives the
tables, rejections, funnel and export of 1 shard, each row in exactly one shard; a shard's
re-run replaces that shard only; a lake of another shard count is refused; the hash is stable.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import DeltaLocation
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lake.shards import check_lake, lake_shards, shard_of, shards_of
from mmfr_assets.cli.run_plan import run_plan
from mmfr_assets.lineage import NODES

# The bundled sample's FineVision-geo170k(qa) holds one planted near-duplicate pair (test_graph):
# with 2 shards its rows 88235 (kept) and 88257 (dropped) fall in different shards, so the drop
# needs `deduplicated` to see the other shard's signatures.
GEO = "FineVision-geo170k(qa)"
REAL = "BMMR"  # a subset of the real published rows
TABLES = tuple(NODES)  # every table of the lineage: stages, branches and model steps


def materialize(source, lake_uri: str, subset: str, shards: int, instance, monkeypatch,
                assets: list[str] | None = None) -> None:
    """What `mmfr run --subsets <subset>` runs, in its order (cli/run_plan.py)."""
    monkeypatch.setenv("MMFR_SHARDS", str(shards))
    defs = build_definitions(str(source), lake_uri, {})
    graph = defs.resolve_asset_graph()
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def
                 and (assets is None or k.path[-1] in assets)]
    for key, keys in run_plan(graph, selection, subset, shards):
        result = job.execute_in_process(partition_key=key, instance=instance, asset_selection=keys,
                                        raise_on_error=False)
        assert result.success, f"{key}: {[e.message for e in result.get_step_failure_events()]}"


def table(lake_uri: str, name: str, subset: str) -> pl.DataFrame:
    return pl.read_delta(f"{lake_uri}/{name}").filter(pl.col("subset") == subset)


@pytest.fixture(scope="module")
def lakes(sample_source, real_sample, tmp_path_factory):
    """One subset of the bundled sample and one of the real rows, each with 1 and with 2 shards."""
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("shards")
    out = {}
    try:
        with dg.DagsterInstance.ephemeral() as instance:  # no compute-log `tail` processes
            for source, subset in ((sample_source, GEO), (real_sample, REAL)):
                for shards in (1, 2):
                    uri = str(root / f"{subset}-{shards}")
                    materialize(source, uri, subset, shards, instance, monkeypatch)
                    out[(subset, shards)] = uri
    finally:
        monkeypatch.undo()
    return out


@pytest.mark.parametrize("subset", [GEO, REAL])
def test_two_shards_hold_every_row_once_as_one_shard_does(lakes, subset):
    one, two = lakes[(subset, 1)], lakes[(subset, 2)]
    assert lake_shards(DeltaLocation(f"{one}/collected")) == 1
    assert lake_shards(DeltaLocation(f"{two}/collected")) == 2
    for name in TABLES:
        single, sharded = table(one, name, subset), table(two, name, subset)
        assert sharded["id"].n_unique() == sharded.height, f"{name}: a row in two shards"
        assert sorted(sharded["id"]) == sorted(single["id"]), name
        assert set(sharded["shard"].unique()) <= {"0", "1"}
        assert sharded["shard"].to_list() == [str(s) for s in shards_of(subset, sharded["id"].to_list(), 2)], name
        # the same rows, column for column (the shard is a place in the lake, not row data)
        assert sharded.drop("shard").sort("id").equals(single.select(sharded.drop("shard").columns).sort("id")), name
    assert len(set(table(two, "collected", subset)["shard"])) == 2  # both shards hold rows


@pytest.mark.parametrize("subset", [GEO, REAL])
def test_rejections_funnel_and_export_are_those_of_one_shard(lakes, subset, tmp_path):
    from mmfr_assets.exports.export import export_table
    from mmfr_assets.reporting.funnel import funnel_lines

    one, two = lakes[(subset, 1)], lakes[(subset, 2)]
    columns = ["stage", "id", "filter", "reason", "detail"]
    assert (table(two, "rejections", subset).select(columns).sort(columns)
            .equals(table(one, "rejections", subset).select(columns).sort(columns)))
    assert funnel_lines(LakeResource(uri=two), [subset]) == funnel_lines(LakeResource(uri=one), [subset])
    exported = {}
    for shards, uri in ((1, one), (2, two)):
        os.environ["MMFR_SHARDS"] = str(shards)
        try:
            counts = export_table(LakeResource(uri=uri), "difficulty_filtered", [subset], tmp_path / str(shards))
        finally:
            del os.environ["MMFR_SHARDS"]
        files = sorted(glob.glob(str(tmp_path / str(shards) / "**" / "*.parquet"), recursive=True))
        exported[shards] = (counts, pl.concat([pl.read_parquet(f) for f in files]).sort("id"))
    assert exported[2][0] == exported[1][0]
    assert exported[2][1].equals(exported[1][1])


def test_planted_duplicate_across_shards_is_dropped(lakes):
    two = lakes[(GEO, 2)]
    assert shard_of(GEO, "88235", 2) != shard_of(GEO, "88257", 2)
    drops = table(two, "rejections", GEO).filter(pl.col("stage") == "deduplicated")
    assert drops.select("id", "reason").rows() == [("88257", "duplicate_of")]


def test_a_shard_rerun_replaces_only_its_shard(sample_source, tmp_path, monkeypatch):
    uri = str(tmp_path / "lake")
    with dg.DagsterInstance.ephemeral() as instance:  # no compute-log `tail` processes
        materialize(sample_source, uri, GEO, 2, instance, monkeypatch,
                    assets=["collected", "question_reviews", "extracted_answers", "cleaned"])

        def files(shard: str) -> set[str]:
            return {p for p in DeltaLocation(f"{uri}/cleaned").table().file_uris()
                    if f"/shard={shard}/" in p}

        before = {s: files(s) for s in ("0", "1")}
        rows = table(uri, "cleaned", GEO).sort("id")
        defs = build_definitions(str(sample_source), uri, {})
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            partition_key=dg.MultiPartitionKey({"subset": GEO, "shard": "1"}), instance=instance,
            asset_selection=[dg.AssetKey("cleaned")])
        assert result.success
    assert files("0") == before["0"]
    assert files("1") and files("1").isdisjoint(before["1"])
    assert table(uri, "cleaned", GEO).sort("id").equals(rows)


def test_a_lake_of_another_shard_count_is_refused(lakes, sample_source, monkeypatch):
    collected = DeltaLocation(f"{lakes[(GEO, 2)]}/collected")
    check_lake(collected, 2)
    for shards in (1, 3):
        with pytest.raises(InputError, match="written with MMFR_SHARDS=2, and MMFR_SHARDS is"):
            check_lake(collected, shards)
    with pytest.raises(InputError, match="written with MMFR_SHARDS=1"):
        check_lake(DeltaLocation(f"{lakes[(GEO, 1)]}/collected"), 2)
    # a run refuses before it writes: the 1-shard graph on the 2-shard lake
    monkeypatch.setenv("MMFR_SHARDS", "1")
    defs = build_definitions(str(sample_source), lakes[(GEO, 2)], {})
    with dg.DagsterInstance.ephemeral() as instance:  # no compute-log `tail` processes
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            partition_key=GEO, instance=instance, asset_selection=[dg.AssetKey("collected")],
            raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    while error.cls_name != "InputError":
        error = error.cause
    assert "written with MMFR_SHARDS=2, and MMFR_SHARDS is 1: set MMFR_SHARDS=2" in error.message
    assert lake_shards(collected) == 2  # nothing was written


# Fixed values: a change of the hash would move every row of an existing sharded lake.
EXPECTED = {
    2: {("BMMR", "0"): 0, ("BMMR", "1"): 1, ("BMMR", "bmmr-17"): 1, (GEO, "88235"): 1, (GEO, "88257"): 0},
    4: {("BMMR", "0"): 0, ("BMMR", "1"): 3, ("BMMR", "bmmr-17"): 3, (GEO, "88235"): 3, (GEO, "88257"): 2},
}


@pytest.mark.process  # a Python process per PYTHONHASHSEED
@pytest.mark.parametrize("seed", ["0", "12345"])
def test_the_shard_hash_is_fixed_and_independent_of_pythonhashseed(seed):
    code = ("import json, sys; from mmfr_assets.lake.shards import shard_of; "
            "keys, k = json.loads(sys.argv[1]), int(sys.argv[2]); "
            "print(json.dumps([shard_of(s, i, k) for s, i in keys]))")
    for k, expected in EXPECTED.items():
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(list(expected)), str(k)], check=True,
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == list(expected.values())


def test_adding_rows_never_moves_a_row():
    ids = [str(i) for i in range(1000)]
    assert shards_of("BMMR", ids, 4) == shards_of("BMMR", ["new-1", *ids, "new-2"], 4)[1:-1]
    assert set(shards_of("BMMR", ids, 4)) == {0, 1, 2, 3}


def test_benchmark_templates_are_counted_over_every_shard(lakes, sample_source, tmp_path, monkeypatch):
    """A benchmark n-gram held by more than `max_ngram_rows` rows of the subset is a template
    whatever the shard count: with `max_ngram_rows` = the larger shard's rows, one shard alone
    holds the template line no more often than that, the subset does."""
    import shutil

    template = ("First perform reasoning, then finally select the question from the choices in "
                "the following format: Answer: xxx.")
    bench = tmp_path / "benchmarks" / "GeoBench"
    bench.mkdir(parents=True)
    (bench / "test.jsonl").write_text(json.dumps({"id": "g-1", "question": template + "\nQuestion: x?"}) + "\n")
    cleaned = table(lakes[(GEO, 2)], "cleaned", GEO)
    assert cleaned["question"].str.contains(template, literal=True).all()
    largest_shard = cleaned.group_by("shard").len()["len"].max()
    config = {"ops": {"deduplicated": {"config": {"benchmarks": [str(bench)],
                                                  "max_ngram_rows": int(largest_shard)}}}}
    for shards in (1, 2):
        uri = str(tmp_path / f"lake-{shards}")
        shutil.copytree(lakes[(GEO, shards)], uri)
        monkeypatch.setenv("MMFR_SHARDS", str(shards))
        defs = build_definitions(str(sample_source), uri, {})
        job = defs.resolve_implicit_global_asset_job_def()
        keys = [GEO] if shards == 1 else [f"{k}|{GEO}" for k in range(shards)]
        with dg.DagsterInstance.ephemeral() as instance:
            for key in keys:
                result = job.execute_in_process(partition_key=key, instance=instance, run_config=config,
                                                asset_selection=[dg.AssetKey("deduplicated")])
                [materialization] = result.asset_materializations_for_node("deduplicated")
                ignored = materialization.metadata["decontamination/template_ngrams_ignored"].value
                assert ignored and all(v == f"{cleaned.height} rows" for v in ignored.values()), (shards, ignored)
        drops = table(uri, "rejections", GEO).filter(pl.col("stage") == "deduplicated")
        assert drops.select("id", "reason").rows() == ([("88257", "duplicate_of")]), shards


def test_the_shard_count_survives_maintenance_commits(lakes, tmp_path):
    """Commits of others carry no shard count (a rewrite with deltalake, then the vacuum that
    removes the old files: two more): the newest commit that does is found; a log that says
    nothing any more is refused when its files show more shards than MMFR_SHARDS."""
    import shutil

    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "collected")
    shutil.copytree(f"{lakes[(GEO, 2)]}/collected", uri)
    write_deltalake(uri, DeltaTable(uri).to_pyarrow_table(), mode="overwrite")
    removed = DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert removed
    assert [c["operation"] for c in DeltaTable(uri).history(3)] == ["VACUUM END", "VACUUM START", "WRITE"]
    assert not any("mmfr.shards" in c for c in DeltaTable(uri).history(3))
    assert lake_shards(DeltaLocation(uri)) == 2
    with pytest.raises(InputError, match="written with MMFR_SHARDS=2, and MMFR_SHARDS is 1"):
        check_lake(DeltaLocation(uri), 1)
    # the log's commits that carried the count are gone (as after a log cleanup)
    log = tmp_path / "collected" / "_delta_log"
    for path in log.glob("*.json"):
        lines = [line for line in path.read_text().splitlines() if "mmfr.shards" not in line]
        path.write_text("\n".join(lines) + "\n")
    assert lake_shards(DeltaLocation(uri)) is None
    check_lake(DeltaLocation(uri), 2)
    with pytest.raises(InputError, match="holds shards 0 to 1, and MMFR_SHARDS is 1"):
        check_lake(DeltaLocation(uri), 1)
