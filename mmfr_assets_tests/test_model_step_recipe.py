"""A model step is added the way docs/development.md#adding-a-model-step says: its module (the
`ModelStep` subclass with its `config_class`), its prompt files, its lineage line. Here a toy
step is added exactly so and materialized in-process (no server: with no endpoint configured
the runner writes every row as skipped, saying why), to show that nothing else is needed: its
asset, group, config, deps, checks and column descriptions follow from those three."""

from __future__ import annotations

import dagster as dg
import pytest
import pyarrow as pa
from pydantic import Field

from mmfr_assets.lake.delta import PartitionWriter, read_partition
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import NAME, Node
from mmfr_assets.llm import CACHE_RESOURCE_KEY, endpoint_resources_from_env
from mmfr_assets.llm.resource import LLMCache
from mmfr_assets.model_step import ModelStep, ModelStepConfig, Parsed
from mmfr_assets.model_step.registry import build_model_steps, registered


# (1) the step's module: its config class and its declaration
class ToyLabelsConfig(ModelStepConfig):
    """What the toy step can be told from the launchpad."""

    label: str = Field(default="plain", description="The label of a row that needs no request.")


class ToyLabels(ModelStep):
    """Labels every row with a question; asks `answer_llm` for the rows that have one."""

    asset = "toy_labels"
    role = "answer_llm"
    columns = ("question",)
    prompt = "toy_labels"
    output_schema = pa.schema([
        pa.field("label", pa.string(), metadata={"description": "The toy's label of the row."}),
        ("why", pa.string()),
    ])
    reason_column = "why"
    description = "A toy step: one label per collected row."
    config_class = ToyLabelsConfig

    def __init__(self, config: ToyLabelsConfig | None = None) -> None:
        self.config = config or ToyLabelsConfig()

    def needs(self, batch):
        return batch["question"].str.contains("?", literal=True).fill_null(False)

    def render(self, row, prompt):
        return prompt.render(question=row["question"])

    def parse(self, row, replies, attempt):
        return Parsed({"label": replies[0].content})

    def without_model(self, row):
        return Parsed({"label": self.config.label})


def test_a_step_added_in_three_files_is_an_asset_that_runs(tmp_path, monkeypatch):
    # (2) its prompt files
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "toy_labels.user.txt").write_text("Label: {question}")
    monkeypatch.setenv("MMFR_PROMPTS", str(prompts))
    # (3) its lineage line (`lineage.LINEAGE`'s; the toy's graph is this one line): what it
    # reads and its class
    steps = registered((Node("toy_labels", "step", NAME.collected,
                             model_step="mmfr_assets_tests.test_model_step_recipe:ToyLabels"),))
    assert ToyLabels.upstream == NAME.collected  # filled in from the line

    lake = LakeResource(uri=str(tmp_path / "lake"))
    with PartitionWriter(lake.location(NAME.collected), pa.schema([("subset", pa.string()), ("id", pa.string()),
                                                                   ("question", pa.string())]),
                         {"subset": "S"}) as writer:
        writer.write(pa.table({"subset": ["S"] * 3, "id": ["a", "b", "c"],
                               "question": ["Why?", "Say hi.", "How many?"]}))
        writer.commit()

    partitions = dg.StaticPartitionsDefinition(["S"])
    (asset,) = build_model_steps(partitions, steps)
    assert asset.key.path[-1] == "toy_labels"
    assert asset.group_names_by_key[asset.key] == "test_model_step_recipe"  # its module's package
    assert {k.path[-1] for k in asset.dependency_keys} == {NAME.collected}
    assert {c.name for c in asset.check_specs} == {"rows_accounted_for", "generation_failure_rate", "model_ran"}
    assert set(asset.op.config_schema.config_type.fields) >= {"label", "batch_size", "max_failure_rate"}

    result = dg.materialize(
        [asset], partition_key="S",
        resources={"lake": lake, CACHE_RESOURCE_KEY: LLMCache(location=str(tmp_path / "cache.sqlite")),
                   "answer_llm": endpoint_resources_from_env({})["answer_llm"]},  # no endpoint
        run_config={"ops": {"toy_labels": {"config": {"label": "no question mark"}}}},
    )
    assert result.success
    with read_partition(lake.location("toy_labels"), {"subset": "S"}, batch_size=10) as reader:
        rows = pa.Table.from_batches(list(reader)).to_pylist()
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    # every row has the config's label (`without_model`); those that needed a request say why
    # they have no reply
    assert [r["label"] for r in rows] == ["no question mark"] * 3
    assert rows[1]["why"] is None and "no answer_llm endpoint configured" in rows[0]["why"]
    (materialization,) = result.asset_materializations_for_node("toy_labels")
    columns = {c.name: c.description for c in materialization.metadata["dagster/column_schema"].schema.columns}
    assert columns["label"] == "The toy's label of the row."  # from its output_schema
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"rows_accounted_for": True, "generation_failure_rate": True, "model_ran": False}


def test_a_lineage_line_that_names_no_step_fails_when_the_code_loads():
    with pytest.raises(ValueError, match="names no class"):
        registered((Node("toy_labels", "step", NAME.collected, model_step="mmfr_assets_tests.test_model_step_recipe:Nope"),))
    with pytest.raises(ValueError, match="is not the ModelStep of this table"):
        registered((Node("other_labels", "step", NAME.collected,
                         model_step="mmfr_assets_tests.test_model_step_recipe:ToyLabels"),))
