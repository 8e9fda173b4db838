"""The lineage table (`mmfr_assets/lineage.py`) and Dagster's asset graph both equal the graph
written out here, once, by hand: the one independent statement of which asset reads which.

Every other copy of the graph in the package derives from the table (the funnels, the report's
deps, the export's chain, the viewer's inputs, the stages' own `deps`), so a stage added to the
table but wired differently in Dagster, or wired in Dagster and missing from the table, fails
here; the webserver test checks the same edges over GraphQL.
"""

from __future__ import annotations

import pytest

from mmfr_assets.lineage import LINEAGE, NODES, STAGE_NAMES, chain, reads, row_level, upstream_of

EXPECTED_EDGES = {
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
    # one asset per teacher endpoint, between deduplicated and distilled
    ("deduplicated", "teacher_captions"),
    ("deduplicated", "teacher_responses"),
    ("teacher_captions", "distilled"),
    ("teacher_responses", "distilled"),
    # the RL set beside the SFT recipes (issue 31): the policy's samples of deduplicated rows,
    # the judge on the undecided ones, the selection
    ("deduplicated", "rl_rollouts"),
    ("deduplicated", "rl_verdicts"),
    ("rl_rollouts", "rl_verdicts"),
    ("deduplicated", "rl_selected"),
    ("rl_rollouts", "rl_selected"),
    ("rl_verdicts", "rl_selected"),
    # the report over all subsets: the funnel's tables (every stage on the line and the 586K
    # recipe) and the verification tables it plots
    ("collected", "report"),
    ("cleaned", "report"),
    ("deduplicated", "report"),
    ("distilled", "report"),
    ("answer_verdicts", "report"),
    ("quality_filtered", "report"),
    ("student_rollouts", "report"),
    ("student_verdicts", "report"),
    ("difficulty_filtered", "report"),
    ("difficulty_filtered_586k", "report"),
    ("rl_selected", "report"),
    ("rl_verdicts", "report"),
}


def dagster_edges(defs) -> set[tuple[str, str]]:
    graph = defs.resolve_asset_graph()
    return {
        (parent.path[-1], key.path[-1])
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }


def test_the_table_is_the_expected_graph():
    edges = {(upstream, node.name) for node in LINEAGE for upstream in node.deps}
    assert edges == {(a, b) for a, b in EXPECTED_EDGES if b != "report"}
    # in lineage order: every node after every table it reads
    for k, node in enumerate(LINEAGE):
        assert set(node.deps) <= {n.name for n in LINEAGE[:k]}, node.name
    # a stage reads rows from a stage (its chain is stages down to collected); a step's joins
    # are steps
    for stage in STAGE_NAMES:
        assert all(NODES[name].kind == "stage" for name in chain(stage)), stage
        assert all(NODES[name].kind == "step" for name in NODES[stage].joins), stage
    assert reads("quality_filtered") == ["distilled", "answer_verdicts"]
    assert upstream_of("difficulty_filtered_586k") == "quality_filtered"
    with pytest.raises(KeyError, match="not in the lineage"):
        upstream_of("no_such_stage")


def test_dagster_builds_the_expected_graph(real_sample, tmp_path):
    from mmfr_assets.definitions import build_definitions

    defs = build_definitions(str(real_sample), str(tmp_path / "lake"), {})
    assert dagster_edges(defs) == EXPECTED_EDGES


def test_row_levels_follow_the_drops():
    """A table's rows are a subsequence of any table at a lower level: a stage that can drop
    rows is one level below its input, a step and a stage without filters at its level."""
    assert [row_level(n) for n in ("collected", "question_reviews", "cleaned", "dedup_signatures",
                                   "deduplicated", "teacher_captions", "distilled", "answer_verdicts",
                                   "quality_filtered", "student_verdicts", "difficulty_filtered",
                                   "difficulty_filtered_586k")] == [0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4]


def test_the_steps_behind_an_export_are_derived_from_the_lineage():
    """An export's card reports every step that shaped its rows (a hand-kept list had lost
    student_verdicts and the cleaning steps): the 123K set's, and the RL set's, which has no
    teacher behind it."""
    from mmfr_assets.lineage import steps_behind

    assert {"question_reviews", "extracted_answers", "teacher_responses", "student_rollouts",
            "student_verdicts", "answer_verdicts"} <= set(steps_behind("difficulty_filtered"))
    assert "student_verdicts" not in steps_behind("quality_filtered")
    rl = set(steps_behind("rl_selected"))
    assert {"rl_rollouts", "rl_verdicts", "question_reviews"} <= rl and "teacher_responses" not in rl


def test_code_names_tables_through_their_nodes_and_a_stage_joins_what_its_node_joins():
    """`NAME.<table>` is the node's name, and a name no node has fails where it is used; a
    stage's asset (`stage_asset`) reads what its node reads and refuses to take columns of a
    step its node does not join."""
    import dagster as dg

    from mmfr_assets.lineage import NAME
    from mmfr_assets.model_step.join import joins_of, take
    from mmfr_assets.stage import stage_asset

    assert NAME.quality_filtered == "quality_filtered" and NAME.collected == LINEAGE[0].name
    with pytest.raises(AttributeError, match="'no_such_stage' is not in the lineage"):
        NAME.no_such_stage  # noqa: B018
    assert joins_of(NAME.cleaned) == ("question_reviews", "extracted_answers")

    partitions = dg.StaticPartitionsDefinition(["S"])

    def quality_filtered(context):  # (unannotated: this module's annotations are strings)
        raise AssertionError("not run")

    built = stage_asset(partitions, joins=[take(NAME.answer_verdicts, "is_consistent")])(quality_filtered)
    assert {k.path[-1] for k in built.dependency_keys} == {"distilled", "answer_verdicts"}
    assert built.group_names_by_key[built.key] == "test_lineage"
    assert {c.name for c in built.check_specs} == {"rows_accounted_for"}
    with pytest.raises(ValueError, match="takes columns of student_verdicts, which its lineage node does not join"):
        stage_asset(partitions, joins=[take(NAME.student_verdicts, "pass_rate")])(quality_filtered)
    with pytest.raises(ValueError, match="answer_verdicts writes no column 'nope'"):
        stage_asset(partitions, joins=[take(NAME.answer_verdicts, "nope")])(quality_filtered)
