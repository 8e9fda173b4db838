"""The whole asset graph materialized in-process, partition by partition."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets.lineage import BRANCH_NAMES, LINE, NODES

# Reasons the bundled sample does not plant (duplicate ids are refused by default; the text
# limits are generous): tested on their own in test_bad_input.py.
NOT_PLANTED_IN_THE_SAMPLE = {
    "duplicate_id", "text_long_question", "text_long_answer", "text_long_response",
    # no near-duplicates and no benchmark configured: test_dedup.py, test_dedup_assets.py
    "duplicate_of", "contaminated",
}
# Reasons the bundled sample cannot trip without an endpoint or a multi-image source: tested
# in test_cleaning_steps.py (scripted cleaner replies, a problem/solution/images source).
NEED_A_MODEL_OR_OTHER_LAYOUT = {"image_multiple", "text_non_answer_question", "text_review_failed",
                                "difficulty_undecided"}  # student samples: test_selection_computed.py
# The generator drew one problem twice (FineVision-geo170k(qa): right triangle ABC with AC = 9,
# BC = 40, find AB; once in cm, options shuffled, the figure within phash distance 2):
# `deduplicated` keeps the smaller id, 88235, and drops the other before the teachers.
SAMPLE_DUPLICATES = {"FineVision-geo170k(qa)": {"88257": "duplicate_of"}}
STAGE_OF = {reason: stage for stage in LINE for f in NODES[stage].filters for reason in f.reasons}


def materialize(defs: dg.Definitions, subset: str, instance, run_config=None):
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()  # the partitioned assets: not the report over all subsets
    partitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def]
    result = job.execute_in_process(partition_key=subset, instance=instance, run_config=run_config,
                                    asset_selection=partitioned)
    assert result.success
    return result


def materializations(result) -> dict[str, dict]:
    return {
        m.asset_key.path[-1]: m.metadata
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }


def check_results(result) -> list:
    return [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]


def rejections(lake_uri: str, subset: str) -> pl.DataFrame:
    return pl.read_delta(f"{lake_uri}/rejections").filter(pl.col("subset") == subset)


@pytest.fixture(scope="module")
def bundled(sample_source, tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("graph") / "lake")
    defs = build_definitions(str(sample_source), lake, {})
    instance = dg.DagsterInstance.ephemeral()
    results = {s: materialize(defs, s, instance) for s in ("BMMR", "FineVision-geo170k(qa)")}
    return defs, lake, instance, results


@pytest.mark.parametrize("subset", ["BMMR", "FineVision-geo170k(qa)"])
def test_every_filter_drops_exactly_the_rows_planned(bundled, subset):
    from mmfr_devkit.sample import expected_reasons

    _, lake, _, results = bundled
    plan = {str(k): v for k, v in expected_reasons(subset).items()}
    plan.update(SAMPLE_DUPLICATES.get(subset, {}))
    # The row planted without `is_consistent` answers correctly: `answer_verdicts` verifies it
    # by rule now, so it is kept (its pass rate is 0) instead of dropped as unverified.
    unlabelled = [i for i, r in plan.items() if r == "correctness_unverified"]
    verdicts = pl.read_delta(f"{lake}/answer_verdicts").filter(pl.col("subset") == subset)
    verified = verdicts.filter(pl.col("id").is_in(unlabelled))
    assert verified.height == len(unlabelled) > 0
    assert verified["is_consistent"].to_list() == [True] * len(unlabelled)
    assert "unverified" not in verified["method"].to_list()
    plan = {i: (None if r == "correctness_unverified" else r) for i, r in plan.items()}
    metadata = materializations(results[subset])
    assert set(metadata) == set(NODES)  # every asset of the lineage (test_lineage.py)
    # the sample carries labels: the rules' agreement with them is in the metadata
    verdict_meta = metadata["answer_verdicts"]
    assert int(verdict_meta["label_rows"].value) == verdicts["dataset_label"].is_not_null().sum() > 0
    assert float(verdict_meta["label_agreement"].value) >= 0.95
    assert "| True |" in verdict_meta["label_confusion"].value
    expected = Counter(reason for reason in plan.values() if reason)
    for stage in LINE:
        for f in NODES[stage].filters:
            for reason in f.reasons:
                assert metadata[stage]["dropped"].value[reason] == expected[reason], reason
                if reason == "correctness_unverified" or reason in NOT_PLANTED_IN_THE_SAMPLE:
                    continue  # planted but verified by rule (above) / tested in test_bad_input.py
                if not (subset == "LLaVA-CoT" and reason.startswith("structure_answer")) \
                        and reason not in NEED_A_MODEL_OR_OTHER_LAYOUT:
                    assert expected[reason] > 0, f"the sample never trips {reason}"
    dropped = rejections(lake, subset).filter(~pl.col("stage").is_in(BRANCH_NAMES))  # the 586K recipe, the RL set
    # Every quality and image drop says what failed, in words (no exception text, no addresses).
    said = dropped.filter((pl.col("stage") == "quality_filtered") | (pl.col("filter") == "image"))
    assert said.height > 0 and said["detail"].is_not_null().all(), said
    assert not said["detail"].str.contains(r"0x[0-9a-f]{6}|Error:").any(), said["detail"].to_list()
    assert dict(zip(dropped["id"], dropped["reason"])) == {
        i: r for i, r in plan.items() if r
    }
    assert set(zip(dropped["reason"], dropped["stage"])) == {
        (r, STAGE_OF[r]) for r in plan.values() if r
    }
    survivors = pl.read_delta(f"{lake}/difficulty_filtered").filter(pl.col("subset") == subset)
    assert sorted(survivors["id"]) == sorted(i for i, r in plan.items() if r is None)
    assert metadata["difficulty_filtered"]["dagster/row_count"].value == survivors.height > 0
    # the 586K recipe, beside it: quality rows with a pass rate below 1
    quality_rows = pl.read_delta(f"{lake}/quality_filtered").filter(pl.col("subset") == subset)
    wide = pl.read_delta(f"{lake}/difficulty_filtered_586k").filter(pl.col("subset") == subset)
    assert sorted(wide["id"]) == sorted(quality_rows.filter(pl.col("pass_rate") < 1)["id"])
    assert set(survivors["id"]) < set(wide["id"])


def test_every_accounting_check_passes_and_metadata_is_complete(bundled):
    _, _, _, results = bundled
    for subset, result in results.items():
        checks = check_results(result)
        assert {c.asset_check_key.asset_key.path[-1] for c in checks} >= set(LINE)
        # partitioned checks: each evaluation is recorded for the subset it checked
        assert {c.partition for c in checks} == {subset}
        # + ids_unique on collected, accounting and failure rate on the four model-step assets of
        # cleaning and distillation (question_reviews, extracted_answers, two teachers), failure
        # rate on answer_verdicts and student_rollouts, accounting on the 586K recipe and on
        # dedup_signatures; accounting and failure rate on the RL steps, accounting on
        # rl_selected; and model_ran on the nine model steps
        assert len(checks) == len(LINE) + 14 + 5 + 9
        # Without endpoints, model_ran warns where rows needed a model; everything else passes.
        assert all(c.passed for c in checks if c.check_name != "model_ran")
        assert all(c.severity == dg.AssetCheckSeverity.WARN for c in checks if c.check_name == "model_ran")
        for name, metadata in materializations(result).items():
            assert metadata["rows_in"].value == (
                metadata["dagster/row_count"].value + metadata["rows_dropped"].value
            )
            assert "| filter | reason | dropped | remaining |" in metadata["funnel"].value
            assert metadata["dagster/uri"].value.endswith(f"/{name}")
            columns = [c.name for c in metadata["dagster/column_schema"].schema.columns]
            assert columns[:2] == ["subset", "id"]
            # every column says what it means (the sample's columns are all known ones)
            from mmfr_assets.columns import SOURCE_COLUMN

            described = {c.name: c.description for c in metadata["dagster/column_schema"].schema.columns}
            assert all(d and d != SOURCE_COLUMN for d in described.values()), (name, described)
            # counts besides the row counts are text: the UI plots only the three row counts
            plotted = {k for k, v in metadata.items()
                       if isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue))}
            assert plotted <= {"dagster/row_count", "rows_in", "rows_dropped"}, (name, plotted)


def test_images_are_stored_once_and_repaired_ones_replace_them(bundled):
    _, lake, _, _ = bundled
    cleaned = pl.read_delta(f"{lake}/cleaned").filter(pl.col("subset") == "BMMR")
    changed = cleaned.filter(pl.col("image_bytes").is_not_null())
    fixes = set(changed["image_fixes"].explode())
    assert {"resized", "exif_transposed"} <= fixes
    assert any(f.startswith("converted_") for f in fixes)
    # unchanged images are not copied, and every kept row says how it was (not) changed
    assert cleaned.filter(pl.col("image_bytes").is_null())["image_fixes"].list.len().max() == 0
    for name in ("distilled", "quality_filtered", "difficulty_filtered"):
        assert "image_bytes" not in pl.read_delta(f"{lake}/{name}").columns
    assert cleaned["image_width"].max() <= 2048 and cleaned["image_height"].max() <= 2048


def test_rematerializing_a_partition_replaces_it(bundled):
    defs, lake, instance, results = bundled
    before = {n: count_rows(DeltaLocation(f"{lake}/{n}"), {"subset": "BMMR"}) for n in LINE}
    other = count_rows(DeltaLocation(f"{lake}/collected"), {"subset": "FineVision-geo170k(qa)"})
    materialize(defs, "BMMR", instance)
    after = {n: count_rows(DeltaLocation(f"{lake}/{n}"), {"subset": "BMMR"}) for n in LINE}
    assert after == before
    line = rejections(lake, "BMMR").filter(~pl.col("stage").is_in(BRANCH_NAMES))
    assert line.height == before["collected"] - before["difficulty_filtered"]
    assert count_rows(DeltaLocation(f"{lake}/collected"), {"subset": "FineVision-geo170k(qa)"}) == other
    # a stricter threshold on re-run changes only what it should
    materialize(
        defs, "BMMR", instance,
        {"ops": {"difficulty_filtered": {"config": {"max_pass_rate": 1.0}}}},
    )
    assert count_rows(DeltaLocation(f"{lake}/difficulty_filtered"), {"subset": "BMMR"}) > before[
        "difficulty_filtered"
    ]


def test_real_published_rows_flow_through_every_stage(real_sample, tmp_path):
    lake = str(tmp_path / "lake")
    defs = build_definitions(str(real_sample), lake, {})
    subsets = defs.resolve_assets_def("collected").partitions_def.get_partition_keys()
    assert len(subsets) == 11 and "FineVision-geo170k(qa)" in subsets
    instance = dg.DagsterInstance.ephemeral()
    for subset in subsets:
        result = materialize(defs, subset, instance)
        assert all(c.passed for c in check_results(result) if c.check_name != "model_ran")
        assert set(LINE) <= set(materializations(result))
    assert count_rows(DeltaLocation(f"{lake}/collected")) == 110
    totals = {n: count_rows(DeltaLocation(f"{lake}/{n}")) for n in LINE}
    dropped = pl.read_delta(f"{lake}/rejections").group_by("stage").len()
    for stage, previous in zip(LINE[1:], LINE):
        lost = dict(dropped.rows()).get(stage, 0)
        assert totals[previous] == totals[stage] + lost
    # MMR1 rows were published without images: dropped, and said so
    mmr1 = rejections(lake, "MMR1")
    assert mmr1.height == 10 and set(mmr1["reason"]) == {"image_missing"}
    assert totals["quality_filtered"] > 50 and totals["difficulty_filtered"] > 0


def test_row_images_join_cleaned_and_collected_in_one_pass(bundled):
    from mmfr_assets.lake.ordered import PartitionImages
    from mmfr_assets.lake.resource import LakeResource
    from PIL import Image
    import io

    _, lake, _, _ = bundled
    cleaned = pl.read_delta(f"{lake}/cleaned").filter(pl.col("subset") == "BMMR")
    collected = pl.read_delta(f"{lake}/collected").filter(pl.col("subset") == "BMMR")
    joiner = PartitionImages(LakeResource(uri=lake), "BMMR", batch_size=4)
    ids, own = cleaned["id"].to_list(), cleaned["image_bytes"].to_list()
    images = joiner.take(ids[:5], own[:5]) + joiner.take(ids[5:], own[5:])
    originals = dict(zip(collected["id"], collected["image_bytes"]))
    for row_id, mine, image in zip(ids, own, images):
        assert image == (mine if mine is not None else originals[row_id])
        decoded = Image.open(io.BytesIO(image))
        assert max(decoded.size) <= 2048
    with pytest.raises(LookupError):
        joiner.take([ids[0]], [None])  # already passed: order is part of the contract


def test_duplicate_ids_block_the_graph(tmp_path, real_sample):
    source = tmp_path / "dup"
    (source / "S").mkdir(parents=True)
    rows = pl.read_parquet(real_sample / "BMMR" / "train-00000-of-00001.parquet")
    pl.concat([rows, rows.head(2)]).write_parquet(source / "S" / "train-00000-of-00001.parquet")
    (source / "README.md").write_text(
        '---\nconfigs:\n- config_name: "S"\n  data_files:\n  - split: train\n'
        '    path: "S/train-*.parquet"\n---\n'
    )
    defs = build_definitions(str(source), str(tmp_path / "lake"), {})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="S", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    # Refused before the commit (duplicate_ids: reject, issue 13): nothing materialized, the
    # step's error names the ids (the `plan` asset, which reads and sends nothing, still plans).
    assert not result.success and set(materializations(result)) <= {"plan"}
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "collected" and "2 ids occur more than once" in str(
        failure.step_failure_data.error.cause
    )


def test_export_joins_images_back_for_training(bundled, tmp_path):
    import datasets

    from mmfr_assets.exports.export import export_table
    from mmfr_assets.lake.resource import LakeResource

    _, lake, _, _ = bundled
    counts = export_table(LakeResource(uri=lake), "difficulty_filtered", ["BMMR"], tmp_path / "out")
    survivors = pl.read_delta(f"{lake}/difficulty_filtered").filter(pl.col("subset") == "BMMR")
    assert counts == {"BMMR": survivors.height}
    loaded = datasets.load_dataset(
        str(tmp_path / "out"), "BMMR", split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert loaded.num_rows == survivors.height
    assert isinstance(loaded.features["image"], datasets.Image)
    cleaned = pl.read_delta(f"{lake}/cleaned").filter(pl.col("subset") == "BMMR")
    sizes = dict(zip(cleaned["id"], zip(cleaned["image_width"], cleaned["image_height"])))
    for row in loaded:
        assert row["image"].mode == "RGB" and row["image"].size == sizes[row["id"]]
        assert row["response"].startswith("<think>") and row["caption"]


def test_a_step_that_did_not_run_does_not_look_green(bundled):
    """No endpoint is configured: where rows needed a model, the step's `model_ran` check fails
    with WARN severity and says how many rows needed which endpoint, the count leads the
    materialization's metadata, and `mmfr run`'s funnel says `skipped: no endpoint` instead of
    a row count."""
    from mmfr_assets.cli.run import stage_status as _stage_status
    from mmfr_assets.lake.resource import LakeResource
    from mmfr_assets.reporting.funnel import funnel_lines

    defs, lake, _, results = bundled
    result = results["BMMR"]
    warned = {c.asset_key.path[-1]: c for c in check_results(result)
              if c.check_name == "model_ran" and not c.passed}
    assert warned, "the bundled sample has rows that need a model"
    metadata = materializations(result)
    for step, check in warned.items():
        needed = int(check.metadata["rows_needing_model"].value)
        role = check.metadata["role"].value
        assert needed > 0 and f"{needed} row{'s' if needed > 1 else ''} needed {role}; no endpoint configured" \
            in check.description, check.description
        assert next(iter(metadata[step])) == "model_calls"  # the first entry a reader sees
        assert metadata[step]["model_calls"].value.startswith("skipped: no")
    status = _stage_status(result)
    lines = "\n".join(funnel_lines(LakeResource(uri=lake), ["BMMR"], {"BMMR": status}))
    for step in warned:
        assert status[step].startswith("skipped: no endpoint ("), status[step]
        assert f"{step}: skipped: no endpoint" in lines or any(
            line.split()[:1] == [step] and "skipped: no endpoint" in line for line in lines.splitlines())


@pytest.mark.parametrize(("changed", "original", "trained_on"), [
    (b"new", b"old", b"new"), (None, b"old", b"old"), (b"", b"old", b"old"), (None, None, None)])
def test_one_rule_for_the_image_a_row_is_trained_on(changed, original, trained_on):
    """Cleaning's bytes where it changed the image, else collected's; empty bytes are no image
    (the viewer once treated them otherwise than the export and the model steps)."""
    from mmfr_assets.lake.ordered import training_image

    assert training_image(changed, original) == trained_on
