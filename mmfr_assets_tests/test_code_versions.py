"""Code versions: an edited prompt marks exactly its step, and what is downstream of it,
unsynced on a real instance (Dagster's staleness, what the UI shows as "Unsynced")."""

from __future__ import annotations

import shutil

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from mmfr_assets.code_versions import code_version, code_versions, own_version
from mmfr_assets.definitions import build_definitions
from mmfr_assets.lineage import NODES
from mmfr_assets.model_step.registry import MODEL_STEPS
from mmfr_assets.prompts import load_prompt, prompts_folder
from mmfr_assets_tests.test_cleaning_steps import _source

ASSETS = ["collected", "question_reviews", "extracted_answers", "cleaned"]


def _statuses(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> dict[str, StaleStatus]:
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    return {name: resolver.get_status(dg.AssetKey(name), partition) for name in ASSETS}


def test_an_edited_prompt_marks_its_step_and_what_is_downstream_unsynced(tmp_path, monkeypatch):
    prompts = tmp_path / "prompts"
    shutil.copytree(prompts_folder(), prompts)
    monkeypatch.setenv("MMFR_PROMPTS", str(prompts))
    for role in ("CLEANER_LLM", "ANSWER_LLM"):  # no endpoint: the steps write their rows skipped
        monkeypatch.delenv(f"MMFR_{role}_BASE_URL", raising=False)
    source, lake = str(_source(tmp_path / "src")), str(tmp_path / "lake")
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(source, lake, {})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="mine", instance=instance, asset_selection=[dg.AssetKey(a) for a in ASSETS])
    assert result.success
    assert set(_statuses(defs, instance, "mine").values()) == {StaleStatus.FRESH}

    before = code_version("question_reviews")
    user = prompts / "question_review.user.txt"
    user.write_text(user.read_text() + "\nAnswer in English.\n")
    assert code_version("question_reviews") != before
    edited = build_definitions(source, lake, {})  # the code location reloaded
    assert _statuses(edited, instance, "mine") == {
        "collected": StaleStatus.FRESH,
        "question_reviews": StaleStatus.STALE,  # its prompt changed
        "extracted_answers": StaleStatus.FRESH,  # another prompt: untouched
        "cleaned": StaleStatus.STALE,  # downstream of it
    }

    # "Materialize unsynced": the step and what is downstream, and everything is in sync again
    result = edited.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="mine", instance=instance,
        asset_selection=[dg.AssetKey(a) for a in ("question_reviews", "cleaned")])
    assert result.success
    assert set(_statuses(edited, instance, "mine").values()) == {StaleStatus.FRESH}


def test_every_asset_of_the_lineage_has_a_code_version_from_what_decides_it(sample_source):
    versions = code_versions()
    assert list(versions) == list(NODES)
    for name, node in NODES.items():
        assert own_version(name).endswith(f"rules {node.rules_version}")
        assert versions[name].startswith(own_version(name))
        assert (" upstream " in versions[name]) == bool(node.deps)
    for registered in MODEL_STEPS:
        step = registered.step
        assert own_version(step.asset) == f"{load_prompt(step.prompt).version} parse {step.parse_version} rules 1"
    assert code_version("report") is None
    graph = build_definitions(str(sample_source), "/tmp/unused-lake", {}).resolve_asset_graph()
    assert {k.path[-1]: graph.get(k).code_version for k in graph.get_all_asset_keys()
            if k.path[-1] in NODES} == versions


def test_a_rule_or_parser_bump_changes_that_asset_and_what_is_downstream(monkeypatch):
    import dataclasses

    from mmfr_assets import code_versions as module

    before = code_versions()
    bumped = dict(NODES, quality_filtered=dataclasses.replace(NODES["quality_filtered"], rules_version=2))
    monkeypatch.setattr(module, "NODES", bumped)
    after = code_versions()
    assert after["quality_filtered"].startswith("rules 2 upstream ")
    changed = {name for name in NODES if after[name] != before[name]}
    assert changed == {"quality_filtered", "student_rollouts", "student_verdicts", "difficulty_filtered",
                       "difficulty_filtered_586k"}
    monkeypatch.setattr(module, "NODES", NODES)
    step = next(r.step for r in MODEL_STEPS if r.step.asset == "teacher_captions")
    monkeypatch.setattr(step, "parse_version", 2)
    assert own_version("teacher_captions") == before["teacher_captions"].split(" upstream ")[0].replace(
        "parse 1", "parse 2")
    assert {name for name, v in code_versions().items() if v != before[name]} == {
        "teacher_captions", "distilled", "answer_verdicts", "quality_filtered", "student_rollouts",
        "student_verdicts", "difficulty_filtered", "difficulty_filtered_586k"}
