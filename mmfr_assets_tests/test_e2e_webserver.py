"""End to end through the real webserver: the asset graph as the UI reads it over GraphQL."""

from __future__ import annotations

import pytest

from mmfr_assets.pipeline import ASSET_NAMES
from mmfr_assets_tests.dagster_process import dagster_env, graphql, webserver

pytestmark = pytest.mark.e2e

ASSET_GRAPH = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path }
    partitionDefinition { type }
    partitionKeysByDimension { partitionKeys } } }
"""


def test_webserver_serves_the_asset_graph_with_subset_partitions(tmp_path, real_sample):
    env = dagster_env(tmp_path / "home", real_sample, tmp_path / "lake")
    with webserver(env, tmp_path / "webserver.log") as url:
        nodes = graphql(url, ASSET_GRAPH)["assetNodes"]
    by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(ASSET_NAMES) <= set(by_name)
    edges = {
        (dep["path"][-1], name)
        for name, node in by_name.items()
        for dep in node["dependencyKeys"]
    }
    assert edges == {
        ("collected", "cleaned"),
        # near-duplicates and benchmark leaks removed before the teachers (issue 21)
        ("cleaned", "dedup_signatures"),
        ("cleaned", "deduplicated"),
        ("dedup_signatures", "deduplicated"),
        ("deduplicated", "distilled"),
        ("distilled", "quality_filtered"),
        ("quality_filtered", "difficulty_filtered"),
        # answer verdicts and student rollouts, and the 586K recipe beside the 123K one
        ("distilled", "answer_verdicts"),
        ("answer_verdicts", "quality_filtered"),
        ("quality_filtered", "student_rollouts"),
        # student_verdicts judges the undecided samples: the pass rate both recipes read
        ("quality_filtered", "student_verdicts"),
        ("student_rollouts", "student_verdicts"),
        ("student_verdicts", "difficulty_filtered"),
        ("quality_filtered", "difficulty_filtered_586k"),
        ("student_verdicts", "difficulty_filtered_586k"),
        # the cleaning model steps (question review, answer extraction), between collected and cleaned
        ("collected", "question_reviews"),
        ("collected", "extracted_answers"),
        ("question_reviews", "cleaned"),
        ("extracted_answers", "cleaned"),
        # the report over all subsets, from the selection and verification tables
        ("answer_verdicts", "report"),
        ("quality_filtered", "report"),
        ("student_rollouts", "report"),
        ("difficulty_filtered", "report"),
        ("difficulty_filtered_586k", "report"),
        # one asset per teacher endpoint, between deduplicated and distilled
        ("deduplicated", "teacher_captions"),
        ("deduplicated", "teacher_responses"),
        ("teacher_captions", "distilled"),
        ("teacher_responses", "distilled"),
    }
    assert {by_name[n]["groupName"] for n in ASSET_NAMES} == {
        "collection", "cleaning", "distillation", "selection"
    }
    subsets = sorted(p.name for p in real_sample.iterdir() if p.is_dir())
    for name in ASSET_NAMES:
        keys = by_name[name]["partitionKeysByDimension"][0]["partitionKeys"]
        assert sorted(keys) == subsets  # includes FineVision-geo170k(qa)
