"""The quality rules' one home (`mmfr_assets/rules/`): both stages import it, neither imports
the other's way round, and the thresholds `quality_filtered` applies are the ones the teachers
read: one `quality_thresholds` resource."""

import ast
from pathlib import Path

import dagster as dg
import pytest

import mmfr_assets
from mmfr_assets.distillation.teachers import CaptionTeacher, CaptionTeacherConfig, CotTeacher, CotTeacherConfig
from mmfr_assets.rules.config import QUALITY_THRESHOLDS, QualityThresholds, moved_threshold_keys
from mmfr_assets.rules.quality import QualityRules
from mmfr_assets.selection.configs import QualityFilteredConfig

PACKAGE = Path(mmfr_assets.__file__).parent


def _imported_packages(folder: str) -> set[str]:
    """The `mmfr_assets.<name>` packages/modules imported anywhere under `folder` (top-level or
    inside functions)."""
    found = set()
    for path in (PACKAGE / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found |= {n.split(".")[1] for n in names if n.startswith("mmfr_assets.")}
    return found


def test_no_import_cycle_between_distillation_and_selection():
    assert "distillation" in _imported_packages("selection")  # selection reads distilled rows
    assert "selection" not in _imported_packages("distillation")
    assert not {"selection", "distillation"} & _imported_packages("rules")


#: The thresholds' field names: config keys are contracts (only where they are set moved, from
#: `ops.quality_filtered.config` to `resources.quality_thresholds.config`).
THRESHOLD_KEYS = {"min_response_words", "min_caption_words", "error_marker", "ngram_size", "ngram_min_count",
                  "max_ngram_occurrences", "answer_tag_exempt_subsets"}


def test_the_thresholds_are_written_once():
    assert QualityThresholds().rules() == QualityRules()
    assert set(QualityThresholds.model_fields) == THRESHOLD_KEYS
    # quality_filtered's own config keeps only its batch size: the thresholds are the resource's
    assert set(QualityFilteredConfig.model_fields) == {"batch_size"}


def test_the_old_repetition_key_still_works_and_reaches_the_teachers():
    assert QualityThresholds(max_ngram_occurrences=4).rules().ngram_min_count == 5
    assert QualityThresholds(ngram_min_count=4).rules().ngram_min_count == 4
    shared = {QUALITY_THRESHOLDS: QualityThresholds(max_ngram_occurrences=1)}
    assert CotTeacher.for_run(CotTeacherConfig(), {}, shared).rules.ngram_min_count == 2
    assert CotTeacher.for_run(CotTeacherConfig(max_ngram_occurrences=5), {}, shared).rules.ngram_min_count == 6
    assert CotTeacher.for_run(CotTeacherConfig(ngram_min_count=7), {}, shared).rules.ngram_min_count == 7


def test_a_teacher_is_never_built_without_the_run_thresholds():
    """No silent fallback to the defaults: a teacher built without the resource would validate
    with other thresholds than the run's `quality_filtered` applies."""
    with pytest.raises(TypeError, match=QUALITY_THRESHOLDS):
        CaptionTeacher.for_run(CaptionTeacherConfig(), {})


@pytest.mark.parametrize("given, expected", [({}, 200), ({"min_response_words": 300}, 300),
                                             ({"min_response_words": None}, None)])
def test_a_run_config_reaches_both_assets_through_dagster(given, expected):
    """The resource as Dagster resolves it for a run (the code location's, the run config's
    fields over it) gives a selection asset and the teachers the same thresholds."""
    seen = {}

    @dg.asset(name="quality_filtered")
    def quality_filtered(quality_thresholds: QualityThresholds) -> None:
        seen["selection"] = quality_thresholds.rules()

    @dg.asset(name="teachers")
    def teachers(context: dg.AssetExecutionContext, quality_thresholds: QualityThresholds) -> None:
        shared = {QUALITY_THRESHOLDS: quality_thresholds}
        seen["teacher"] = CotTeacher.for_run(CotTeacherConfig(), context.run_config, shared).rules
        seen["caption"] = CaptionTeacher.for_run(CaptionTeacherConfig(), context.run_config, shared).rules

    run_config = {"resources": {QUALITY_THRESHOLDS: {"config": given}}}
    assert dg.materialize([quality_filtered, teachers], resources={QUALITY_THRESHOLDS: QualityThresholds()},
                          run_config=run_config).success
    assert seen["selection"].min_response_words == expected
    assert seen["teacher"] == seen["selection"]
    assert seen["caption"].min_caption_words == seen["selection"].min_caption_words


def test_the_code_location_shares_one_thresholds_resource(sample_source, tmp_path):
    """`quality_filtered`, both teachers and the plan take the resource the definitions register
    once; the former place is named by `moved_threshold_keys` for the CLI's error."""
    from mmfr_assets.definitions import build_definitions

    defs = build_definitions(str(sample_source), str(tmp_path / "lake"), {})
    assert isinstance(defs.resources[QUALITY_THRESHOLDS], QualityThresholds)
    takers = {asset.key.path[-1] for asset in defs.assets if QUALITY_THRESHOLDS in asset.required_resource_keys}
    assert takers == {"quality_filtered", "teacher_responses", "teacher_captions", "plan"}
    old = {"ops": {"quality_filtered": {"config": {"min_response_words": 10, "batch_size": 8}}}}
    assert moved_threshold_keys(old) == ["min_response_words"]
    assert moved_threshold_keys({"resources": {QUALITY_THRESHOLDS: {"config": {"min_response_words": 10}}}}) == []


def test_the_plan_builds_the_teachers_with_the_run_s_thresholds():
    """`mmfr plan --config` resolves the shared resource as Dagster does for the run: the code
    location's values with the run config's fields over them."""
    from mmfr_assets.model_step.registry import MODEL_STEPS
    from mmfr_assets.planning.counting import step_of
    from mmfr_assets.planning.inputs import shared_resource_keys, shared_resources_of

    assert shared_resource_keys() == [QUALITY_THRESHOLDS]
    location = {QUALITY_THRESHOLDS: QualityThresholds(min_caption_words=50)}
    run_config = {"resources": {QUALITY_THRESHOLDS: {"config": {"min_response_words": 300}}}}
    shared = shared_resources_of(location, run_config)
    assert (shared[QUALITY_THRESHOLDS].min_response_words, shared[QUALITY_THRESHOLDS].min_caption_words) == (300, 50)
    assert shared_resources_of(location, {})[QUALITY_THRESHOLDS] is location[QUALITY_THRESHOLDS]
    [caption] = [r for r in MODEL_STEPS if r.step.asset == "teacher_captions"]
    assert step_of(caption, run_config, shared).rules.min_caption_words == 50


# Knobs that were module globals are config now, with their old values as defaults.

def test_routing_counts_are_question_reviews_config():
    import polars as pl

    from mmfr_assets.cleaning.review import QuestionReview, QuestionReviewConfig

    batch = pl.DataFrame({"subset": ["S"] * 2, "id": ["a", "b"],
                          "question": ["Find x now", "Find the value: das ist here"]})

    def routed(**config):
        return QuestionReview(QuestionReviewConfig(**config)).prepare(batch)["route_reasons"].to_list()

    assert routed() == [["too_short"], []]  # 3 words < 4; two German words < 3
    assert routed(route_min_words=3, route_min_foreign_words=2) == [[], ["foreign_words"]]


def test_the_judge_sees_the_configured_tail_of_a_trace_without_an_answer():
    from mmfr_assets.selection.configs import AnswerVerdictsConfig
    from mmfr_assets.selection.steps import AnswerVerdictsStep

    class Echo:
        def render(self, **values):
            return values["candidate"]

    row = {"question": "q", "reference": "1", "final_answer": None, "response": "<think>t</think>" + "w" * 3000}
    for tail in (1500, 10):
        step = AnswerVerdictsStep(AnswerVerdictsConfig(judge_trace_tail_chars=tail, use_math_verify=False))
        assert step.render(row, Echo()).splitlines()[-1] == "w" * tail
    assert AnswerVerdictsConfig().judge_trace_tail_chars == 1500


def test_image_limits_are_written_once():
    import inspect

    from mmfr_assets.cleaning.assets import CleanedConfig
    from mmfr_assets.cleaning.images import clean_image

    defaults = {k: p.default for k, p in inspect.signature(clean_image).parameters.items()}
    config = CleanedConfig()
    assert (defaults["max_edge"], defaults["max_pixels"], defaults["jpeg_quality"]) == (
        config.max_long_edge, config.max_image_pixels, config.jpeg_quality) == (2048, 89_478_485, 95)


@pytest.mark.parametrize("config_type, given, expected", [
    ("123k", {}, (0.0, True)),
    ("586k", {}, (1.0, False)),
    ("586k", {"pass_rate_below": 1.0}, (1.0, False)),
    ("123k", {"pass_rate_at_most": 0.0}, (0.0, True)),
    ("123k", {"pass_rate_below": 0.5}, (0.5, False)),
    ("586k", {"pass_rate_at_most": 0.25}, (0.25, True)),
    # the older pair, as existing run configs write it
    ("123k", {"max_pass_rate": 0.75}, (0.75, True)),
    ("586k", {"max_pass_rate": 1.0, "inclusive": False}, (1.0, False)),
    ("586k", {"max_pass_rate": 0.5, "inclusive": True}, (0.5, True)),
])
def test_the_recipe_bound_in_words_or_as_the_recorded_pair(config_type, given, expected):
    """Through Dagster's run config, as a run gives it."""
    from mmfr_assets.selection.configs import DifficultyFiltered586kConfig, DifficultyFilteredConfig

    seen = {}
    cls = DifficultyFilteredConfig if config_type == "123k" else DifficultyFiltered586kConfig

    @dg.asset(name="recipe")
    def recipe(config: cls) -> None:
        seen["bound"] = (config.max_pass_rate, config.inclusive)

    assert dg.materialize([recipe], run_config={"ops": {"recipe": {"config": given}}}).success
    assert seen["bound"] == expected


def test_the_recipe_bound_is_given_once():
    from mmfr_assets.selection.configs import DifficultyFilteredConfig

    with pytest.raises(ValueError, match="not both"):
        DifficultyFilteredConfig(pass_rate_below=1.0, pass_rate_at_most=0.0)


def test_a_teacher_materialized_with_other_thresholds_is_reported_by_selection():
    """Across runs the teachers and `quality_filtered` can disagree (run config is per run):
    the teacher's recorded thresholds are read back from the instance and the drift named."""
    from mmfr_assets.rules.config import teachers_validation_thresholds, threshold_drift

    with dg.DagsterInstance.ephemeral() as instance:
        assert teachers_validation_thresholds(instance, "BMMR") == {}
        used = {"min_response_words": 200, "min_caption_words": 100, "error_marker": "[ERROR]",
                "ngram_size": 50, "ngram_min_count": 3}
        for partition, words in (("BMMR", 200), ("other", 999)):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "teacher_responses", partition=partition,
                metadata={"validation_thresholds": dg.MetadataValue.json({**used, "min_response_words": words})}))
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "teacher_captions", partition="BMMR", metadata={"validation_thresholds": dg.MetadataValue.json(used)}))
        validated = teachers_validation_thresholds(instance, "BMMR")
    assert validated["teacher_responses"]["min_response_words"] == 200  # this partition's, not the other's
    applied = QualityThresholds(min_response_words=300, min_caption_words=80).rules()
    assert threshold_drift(applied, validated) == {
        "teacher_responses": {"min_response_words": [200, 300]},
        "teacher_captions": {"min_caption_words": [100, 80]},
    }
    # the caption teacher's drift is only about captions, and equal thresholds are no drift
    assert threshold_drift(QualityRules(), validated) == {}
