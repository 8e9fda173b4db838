"""Issue 13: bad input gets one clear answer (exit 2 and one line), never an emptied lake.

One test (or parametrized case) per row of the issue's table, plus the UI metadata. Refusals
that happen before anything runs go through `cli.main` in-process (same code as the console
script, minus process start-up); the exit code of the console script itself and the lake left
untouched by a refusal are checked through real `mmfr` subprocesses.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmfr_assets import cli
from mmfr_assets.cli import run as cli_run
from mmfr_assets.errors import InputError
from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets.lineage import funnel_stages
from mmfr_assets_tests.dagster_process import dagster_env, free_port

MMFR = str(Path(sys.executable).parent / "mmfr")
FUNNEL_STAGES = funnel_stages()


def _all_not_run(**others: str) -> dict[str, str]:
    return {stage: others.get(stage, "not run") for stage in FUNNEL_STAGES}
BMMR_FILE = "BMMR/train-00000-of-00001.parquet"


def _hub_layout(root: Path, subset: str, table: pa.Table, **write_options) -> Path:
    (root / subset).mkdir(parents=True)
    pq.write_table(table, root / subset / "train-00000-of-00001.parquet", **write_options)
    (root / "README.md").write_text(
        f'---\nconfigs:\n- config_name: "{subset}"\n  data_files:\n  - split: train\n'
        f'    path: "{subset}/train-*.parquet"\n---\n'
    )
    return root


@pytest.fixture
def duplicated_source(tmp_path, real_sample) -> Path:
    """BMMR's 10 rows followed by rows 0, 1 and 3 again: 3 ids repeated."""
    rows = pq.read_table(real_sample / BMMR_FILE)
    return _hub_layout(tmp_path / "dup", "S", pa.concat_tables([rows, rows.take([0, 1, 3])]))


@pytest.fixture
def corrupt_source(tmp_path, real_sample) -> Path:
    """BMMR in row groups of 3 rows with the third row group's first page header overwritten:
    the footer reads fine, the rows before it too, then pyarrow fails mid-file."""
    root = _hub_layout(
        tmp_path / "corrupt", "S", pq.read_table(real_sample / BMMR_FILE), row_group_size=3
    )
    path = root / "S" / "train-00000-of-00001.parquet"
    column = pq.ParquetFile(path).metadata.row_group(2).column(0)
    offset = column.dictionary_page_offset or column.data_page_offset
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 32)
    return root


@pytest.fixture
def env(tmp_path, real_sample, monkeypatch):
    """The environment `mmfr` reads, for in-process `cli.main` calls."""
    monkeypatch.setenv("MMFR_SOURCE", str(real_sample))
    monkeypatch.setenv("MMFR_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", "")
    return tmp_path


def _stages(funnel: str) -> dict[str, str]:
    """stage -> what its rows column says, from a printed funnel (reason lines skipped)."""
    return {
        ln.split()[0]: ln[79:].strip()
        for ln in funnel.splitlines()
        if ln.startswith("   ") and ln[3] != " " and not ln.split()[0] == "stage"
    }


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- refused before anything runs -------------------------------------------------------------

REFUSED = {
    "max_samples_negative": (["--max-samples", "-3"], None, ["--max-samples", "-3", "positive"]),
    "max_samples_zero": (["--max-samples", "0"], None, ["--max-samples", "got 0"]),
    "misspelled_asset": (
        ["--config", "{cfg}"],
        "ops:\n  quality_filterd:\n    config: {min_response_words: 10}\n",
        ["run.yaml", "quality_filterd", "the assets are:", "quality_filtered", "collected"],
    ),
    "misspelled_resource": (
        ["--config", "{cfg}"],
        "resources:\n  cot_teachr:\n    config: {max_concurrency: 4}\n",
        ["run.yaml", "cot_teachr", "the resources are:", "cot_teacher", "lake"],
    ),
    "misspelled_key_inside_an_op": (
        ["--config", "{cfg}"],
        "ops:\n  quality_filtered:\n    config: {min_respons_words: 10}\n",
        ["run.yaml", "invalid run config", "min_respons_words", "quality_filtered"],
    ),
    "threshold_at_its_former_place": (
        ["--config", "{cfg}"],
        "ops:\n  quality_filtered:\n    config: {min_response_words: 10, batch_size: 8}\n",
        ["run.yaml", "moved", "ops.quality_filtered.config", "min_response_words",
         "resources.quality_thresholds.config"],
    ),
    "max_samples_zero_in_config": (
        ["--config", "{cfg}"],
        "ops:\n  collected:\n    config: {max_samples: 0}\n",
        ["run.yaml", "max_samples", "got 0"],
    ),
    "invalid_yaml": (
        ["--config", "{cfg}"],
        "ops:\n  collected: [\n",
        ["run.yaml", "not valid YAML", "line 3"],
    ),
    "config_not_a_mapping": (["--config", "{cfg}"], "- just\n- a list\n", ["run.yaml", "mapping"]),
    "missing_config_file": (["--config", "{missing}"], None, ["nowhere.yaml", "no such file"]),
    "unknown_subset": (["--subsets", "NoSuchSubset"], None, ["NoSuchSubset", "BMMR"]),
    "unknown_until": (["--until", "nowhere"], None, ["--until", "nowhere", "collected"]),
    "until_an_unpartitioned_asset": (["--until", "report"], None, ["--until report", "per-subset"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_run_arguments_are_refused_in_one_line_before_anything_runs(case, env, capsys):
    args, config_text, expected = REFUSED[case]
    config = env / "run.yaml"
    if config_text is not None:
        config.write_text(config_text)
    argv = [a.format(cfg=config, missing=env / "nowhere.yaml") for a in args]
    code, out, err = _main(capsys, "run", *argv)
    assert code == 2
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert out == "" and not (env / "lake").exists()  # nothing ran, nothing written


def test_a_missing_source_folder_says_what_a_source_must_look_like(env, capsys, monkeypatch):
    monkeypatch.setenv("MMFR_SOURCE", str(env / "no-such-folder"))
    code, _, err = _main(capsys, "run")
    assert code == 2 and err.count("\n") == 1
    assert str(env / "no-such-folder") in err and "no such folder" in err
    assert "hub layout" in err and "README.md" in err and "configs" in err and "parquet" in err


def test_a_folder_that_is_no_dataset_is_refused(env, capsys, monkeypatch):
    (env / "empty").mkdir()
    monkeypatch.setenv("MMFR_SOURCE", str(env / "empty"))
    code, _, err = _main(capsys, "funnel")
    assert code == 2 and err.count("\n") == 1 and "hub layout" in err


def test_a_bogus_hub_id_offline_fails_fast_with_the_id_and_the_offline_hint(env, capsys, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MMFR_SOURCE", "no-such-owner/no-such-dataset")
    code, _, err = _main(capsys, "run")
    assert code == 2 and err.count("\n") == 1
    assert "no-such-owner/no-such-dataset" in err and "HF_HUB_OFFLINE=1" in err


def test_a_bogus_hub_id_without_network_fails_fast(env, capsys, monkeypatch):
    """Not offline, but the hub cannot be reached (a closed local port stands for no network):
    one connection attempt, not datasets' 25 s of retries (which would also print 'Retrying')."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MMFR_SOURCE", "no-such-owner/no-such-dataset")
    code, _, err = _main(capsys, "run")
    assert code == 2 and err.count("\n") == 1, err
    assert "no-such-owner/no-such-dataset" in err and "cannot be reached" in err
    assert "HF_HUB_OFFLINE=1" in err


def test_the_code_location_fails_to_load_with_the_one_line(env, monkeypatch):
    from mmfr_assets import definitions

    monkeypatch.setenv("MMFR_SOURCE", str(env / "no-such-folder"))
    with pytest.raises(InputError, match="no such folder") as raised:
        definitions.defs()
    # No chained `datasets` traceback under it: the UI shows the line and one frame.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# --- refused inside a run: the source's rows ----------------------------------------------------


def test_a_corrupt_page_names_the_subset_and_the_file(env, capsys, monkeypatch, corrupt_source):
    monkeypatch.setenv("MMFR_SOURCE", str(corrupt_source))
    code, out, err = _main(capsys, "run", "--until", "collected")
    assert code == 2
    [line] = [ln for ln in err.splitlines() if ln.startswith("mmfr: input refused")]
    assert "subset S" in line and str(corrupt_source / "S" / "train-00000-of-00001.parquet") in line
    assert "thrift" in line
    assert _stages(out) == _all_not_run(collected="refused")
    assert not (env / "lake" / "collected").exists()  # nothing committed


@pytest.mark.process
def test_duplicate_ids_reject_or_keep_first_and_a_refusal_leaves_the_lake_as_it_was(
    tmp_path, duplicated_source
):
    """Through the console script: exit codes, the ids in the error, the lake untouched."""
    env = dagster_env(tmp_path / "home", duplicated_source, tmp_path / "lake")
    collected = DeltaLocation(str(tmp_path / "lake" / "collected"))
    keep = tmp_path / "keep.yaml"
    keep.write_text("ops:\n  collected:\n    config: {duplicate_ids: keep_first}\n")

    def mmfr(*args):
        return subprocess.run([MMFR, "run", "--until", "collected", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    kept = mmfr("--config", str(keep))
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert count_rows(collected, {"subset": "S"}) == 10
    rejections = pl.read_delta(str(tmp_path / "lake" / "rejections"))
    assert rejections.select("stage", "filter", "reason").rows() == [
        ("collected", "collection", "duplicate_id")
    ] * 3
    assert sorted(rejections["id"]) == sorted(
        pq.read_table(duplicated_source / "S").column("id").cast(pa.string()).to_pylist()[10:]
    )
    assert "collection   duplicate_id                            3" in kept.stdout
    assert _stages(kept.stdout)["collected"] == "10" and _stages(kept.stdout)["cleaned"] == "not run"
    version = collected.table().version()

    refused = mmfr()  # default: reject
    assert refused.returncode == 2
    [line] = [ln for ln in refused.stderr.splitlines() if ln.startswith("mmfr: input refused")]
    assert "subset S" in line and "3 ids occur more than once" in line and "keep_first" in line
    first_ids = pq.read_table(duplicated_source / "S").column("id").to_pylist()[10:]
    assert all(repr(str(i)) in line for i in first_ids)
    assert collected.table().version() == version  # nothing committed
    assert count_rows(collected, {"subset": "S"}) == 10

    zero = mmfr("--max-samples", "0")
    assert zero.returncode == 2 and zero.stderr.count("\n") == 1 and "--max-samples" in zero.stderr
    assert collected.table().version() == version


def test_duplicate_ids_pure():
    from mmfr_assets.collection.duplicates import DuplicateIds

    keep = DuplicateIds("S", "keep_first")
    first = keep.decide(pl.DataFrame({"id": ["a", "b", "a"], "x": [1, 2, 3]}))
    second = keep.decide(pl.DataFrame({"id": ["c", "b"], "x": [4, 5]}))
    assert first.kept["x"].to_list() == [1, 2] and second.kept["x"].to_list() == [4]
    assert first.dropped["id"].to_list() == ["a"] and second.dropped["id"].to_list() == ["b"]
    assert second.dropped["detail"].to_list() == ["source row 4 repeats an earlier row's id"]
    assert set(first.dropped["reason"]) == {"duplicate_id"} and set(first.dropped["filter"]) == {
        "collection"
    }
    keep.refuse_if_any()  # keep_first never refuses

    reject = DuplicateIds("S", "reject")
    for i in range(3):
        verdicts = reject.decide(pl.DataFrame({"id": [f"id{k}" for k in range(10)] + ["id0"]}))
        assert verdicts.kept.height == 11 and verdicts.dropped.height == 0
    with pytest.raises(InputError) as raised:
        reject.refuse_if_any()
    message = str(raised.value)
    assert "\n" not in message and "10 ids occur more than once (23 extra rows)" in message
    assert "'id0', 'id1', 'id2', 'id3', 'id4' and 5 more" in message
    with pytest.raises(InputError, match="reject or keep_first"):
        DuplicateIds("S", "drop_all")


# --- over-long texts ----------------------------------------------------------------------------


def test_cleaning_drops_over_long_questions_answers_and_traces(real_sample):
    from mmfr_assets.cleaning.assets import FILTERS, CleanedConfig, clean_batch
    from mmfr_assets.collection.source import to_collected

    batch = pl.from_arrow(to_collected(pq.read_table(real_sample / BMMR_FILE), "BMMR", 0)).head(5)
    huge = "x" * 5_000_000  # the 5 MB question
    batch = batch.with_columns(
        question=pl.Series([huge, "q", "q", "q", "y" * 20_000]),
        answer=pl.Series(["a", "b" * 20_001, "a", "", "a"]),
        qwen3vl_235b_thinking_response=pl.Series(["r", "r", "t" * 400_001, "r", None]),
        original_answer=pl.lit(None, pl.String),  # else an empty answer falls back to it
    )
    verdicts = clean_batch(batch, CleanedConfig())
    reasons = dict(zip(verdicts.dropped["id"], verdicts.dropped["reason"]))
    ids = batch["id"].to_list()
    assert reasons == {
        ids[0]: "text_long_question",
        ids[1]: "text_long_answer",
        ids[2]: "text_long_response",
        ids[3]: "text_empty_answer",  # emptiness is tested first
    }
    assert verdicts.kept["id"].to_list() == [ids[4]]  # exactly at the limit is kept
    details = dict(zip(verdicts.dropped["id"], verdicts.dropped["detail"]))
    assert details[ids[0]] == "question: 5000000 chars > 20000"
    assert {r for f in FILTERS if f.name == "text" for r in f.reasons} >= {
        "text_long_question", "text_long_answer", "text_long_response"
    }
    # None switches a limit off; a lower limit drops more.
    off = clean_batch(batch, CleanedConfig(max_question_chars=None, max_answer_chars=None,
                                           max_response_chars=None))
    assert Counter(off.dropped["reason"]) == Counter({"text_empty_answer": 1})
    strict = clean_batch(batch, CleanedConfig(max_question_chars=10))
    assert dict(zip(strict.dropped["id"], strict.dropped["reason"]))[ids[4]] == "text_long_question"


# --- the funnel after a run that stopped ---------------------------------------------------------


def test_the_funnel_says_not_run_failed_or_refused_distinct_from_zero(lake):
    from mmfr_assets.reporting.funnel import funnel_lines

    status = {"S": _all_not_run(collected="ok", cleaned="ok, check failed: rows_accounted_for",
                                 distilled="failed", difficulty_filtered="refused")}
    lines = funnel_lines(lake, ["S"], status)
    assert _stages("\n".join(lines)) == _all_not_run(
        collected="0", cleaned="0  (ok, check failed: rows_accounted_for)",
        distilled="failed", difficulty_filtered="refused",
    )
    # Stages that did not run list no reasons (a row of zeros would read as "ran, dropped none").
    assert not any("difficulty_pass_rate_missing" in ln for ln in lines)
    # `mmfr funnel` on a lake without the tables: not run, not 0.
    assert set(_stages("\n".join(funnel_lines(lake, ["S"]))).values()) == {"not run"}


@pytest.mark.process  # mmfr run plans in a child process
def test_a_failed_step_reads_failed_and_exits_1(env, capsys, monkeypatch):
    blocked = env / "not-a-folder"
    blocked.write_text("a file where the lake should be")
    monkeypatch.setenv("MMFR_LAKE", str(blocked))
    code, out, err = _main(capsys, "run", "--subsets", "BMMR", "--max-samples", "2")
    assert code == 1 and "FAILED" in err and "input refused" not in err
    states = _stages(out)
    assert states["collected"] == "failed" and states["cleaned"] == "not run"


# --- metadata as the UI shows it ------------------------------------------------------------------


def _stage_run():
    from mmfr_assets.rules.quality import FILTERS
    from mmfr_assets.stage import StageRun

    run = StageRun(stage="quality_filtered", subset="FineVision-geo170k(qa)", filters=FILTERS,
                   schema=pa.schema([("id", pa.string())]), table_uri="/lake/quality_filtered",
                   rejections_uri="/lake/rejections", rows_in=10, rows_out=7, version=12)
    run.dropped[(FILTERS[0].name, FILTERS[0].reasons[0])] = 3
    return run


def test_only_row_counts_are_plotted_and_identifiers_are_text():
    """Dagster plots Int and Float metadata entries (and nothing else) across partitions."""
    from mmfr_assets.stage import stage_metadata

    metadata = stage_metadata(_stage_run())
    normalized = {k: dg.MetadataValue.int(v) if isinstance(v, int) else v
                  for k, v in metadata.items()}
    plotted = {k for k, v in normalized.items()
               if isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue))}
    assert plotted == {"dagster/row_count", "rows_in", "rows_dropped"}
    assert metadata["delta_version"] == dg.MetadataValue.text("12")
    assert metadata["partition"] == dg.MetadataValue.text("FineVision-geo170k(qa)")
    from mmfr_assets.rules.quality import FILTERS

    assert metadata["dropped"].value[FILTERS[0].reasons[0]] == 3
    assert "dropped_by" not in metadata  # one funnel: `dropped` per reason and the Markdown funnel
    assert set(metadata["dropped"].value) == {r for f in FILTERS for r in f.reasons}


def test_check_results_name_their_partition(lake):
    from mmfr_assets.stage import accounting_check

    run = _stage_run()
    check = accounting_check(lake, run, rows_in=10, input_label="distilled")
    assert check.metadata["partition"] == dg.MetadataValue.text(run.subset)
    assert check.description.startswith(f"subset {run.subset}: 10 in != 0 kept + 0 dropped")


def test_only_read_errors_of_a_file_are_blamed_on_the_source():
    """A connection error while streaming a hub source is not bad input: it propagates as is."""
    from mmfr_assets.collection.source import naming_unreadable_files

    def _generate_tables(file):  # stands for datasets' parquet reader frame
        raise error

    def tables():
        yield pa.table({"id": ["1"]})
        _generate_tables("hf://datasets/x/y/S/train-0.parquet")

    for error, refused in ((OSError("Couldn't deserialize thrift"), True),
                           (ConnectionError("connection reset"), False)):
        stream = naming_unreadable_files("S", tables())
        assert next(stream).num_rows == 1
        with pytest.raises(InputError if refused else ConnectionError) as raised:
            next(stream)
        if refused:
            assert "subset S" in str(raised.value) and "train-0.parquet" in str(raised.value)


CONSOLE_CASES = {
    "misspelled_asset": (["--config", "{cfg}"], {}),
    "invalid_yaml": (["--config", "{bad}"], {}),
    "missing_source_folder": ([], {"MMFR_SOURCE": "{missing}"}),
    "bogus_hub_id_offline": ([], {"MMFR_SOURCE": "no-such-owner/no-such-dataset"}),
}


@pytest.mark.process
@pytest.mark.parametrize("case", sorted(CONSOLE_CASES))
def test_the_console_script_answers_bad_input_with_one_line_and_exit_2(case, tmp_path, real_sample):
    """The same refusals through the installed `mmfr` (its own process, `os._exit` included):
    exactly one line on stderr, nothing on stdout, no lake written."""
    args, extra = CONSOLE_CASES[case]
    (tmp_path / "typo.yaml").write_text("ops:\n  quality_filterd:\n    config: {}\n")
    (tmp_path / "bad.yaml").write_text("ops: [\n")
    names = {"cfg": tmp_path / "typo.yaml", "bad": tmp_path / "bad.yaml",
             "missing": tmp_path / "no-such-folder"}
    env = dagster_env(tmp_path / "home", real_sample, tmp_path / "lake")
    env.update({k: v.format(**names) for k, v in extra.items()})
    done = subprocess.run([MMFR, "run", *[a.format(**names) for a in args]], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == "" and done.stderr.startswith("mmfr: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "lake").exists()


def test_a_failed_blocking_check_marks_its_asset_and_leaves_the_rest_not_run():
    """`_stage_status` from a run whose `cleaned` check failed (a stand-in for Dagster's result:
    the three event lists it reads)."""
    from types import SimpleNamespace as NS

    key = dg.AssetKey
    result = NS(
        get_asset_materialization_events=lambda: [NS(asset_key=key("collected")),
                                                  NS(asset_key=key("cleaned"))],
        get_step_failure_events=lambda: [],
        get_asset_check_evaluations=lambda: [
            NS(passed=True, asset_key=key("collected"), check_name="ids_unique"),
            NS(passed=False, asset_key=key("cleaned"), check_name="rows_accounted_for"),
        ],
    )
    assert cli_run.stage_status(result) == _all_not_run(
        collected="ok", cleaned="ok, check failed: rows_accounted_for"
    )


def test_a_subsets_status_over_its_shards_is_the_worst_and_sums_skipped_rows():
    """`mmfr run` with MMFR_SHARDS > 1: a shard that needed no endpoint (`ok`) never hides a
    shard that was skipped, and the rows needed add up over the shards."""
    merged = "not run"
    for state in ("skipped: no endpoint (40 rows needed caption_teacher)", "ok",
                  "skipped: no endpoint (1 row needed caption_teacher)", "not run"):
        merged = cli_run.merge_status(merged, state)
    assert merged == "skipped: no endpoint (41 rows needed caption_teacher)"
    assert cli_run.merge_status("ok", "failed") == cli_run.merge_status("failed", "ok") == "failed"
    assert cli_run.merge_status("not run", "ok") == cli_run.merge_status("ok", "not run") == "ok"
    assert cli_run.merge_status("ok, check failed: a", "ok, check failed: b, a") == "ok, check failed: a, b"
    assert cli_run.merge_status("ok, check failed: a", "ok") == "ok, check failed: a"
