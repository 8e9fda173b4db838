"""End to end through the real webserver: the asset graph as the UI reads it over GraphQL."""

from __future__ import annotations

import pytest

from mmfr_assets.lineage import LINE
from mmfr_assets_tests.dagster_process import dagster_env, graphql, webserver
from mmfr_assets_tests.test_lineage import EXPECTED_EDGES

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
    assert set(LINE) <= set(by_name)
    edges = {
        (dep["path"][-1], name)
        for name, node in by_name.items()
        for dep in node["dependencyKeys"]
    }
    assert edges == EXPECTED_EDGES  # the one literal of the graph (test_lineage.py)
    assert {by_name[n]["groupName"] for n in LINE} == {
        "collection", "cleaning", "distillation", "selection"
    }
    subsets = sorted(p.name for p in real_sample.iterdir() if p.is_dir())
    for name in LINE:
        keys = by_name[name]["partitionKeysByDimension"][0]["partitionKeys"]
        assert sorted(keys) == subsets  # includes FineVision-geo170k(qa)
