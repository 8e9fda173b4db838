"""The lineage, written once: every asset of the graph in order, the table it reads rows from,
the tables it joins, the filters it can drop rows by, and where the row viewer shows it.

Everything that needs the shape of the graph reads it here: the stages' own `deps` and
upstream (`reads`, `upstream_of`), the funnels `mmfr run`/`mmfr funnel` print and the report
draws (`funnel_stages`, `reporting.funnel.funnel_table`), the export's chain of tables it pins
and checks (`chain`, `EXPORTABLE`), the row viewer's input tables and row levels
(`viewer_input`, `row_level`), and the page each model step's columns appear on (`STEP_SHOWN_IN`).
`test_lineage.py` holds one independent literal of the expected graph and checks this table and
Dagster's own asset graph against it, so a stage added to one and not the other fails there.

Adding a stage: its folder, and one `Node` line below. A model step's line names its
declaration too (`model_step="mmfr_assets.distillation.teachers:CotTeacher"`): that line is the step's
registration, the one place `definitions.py` builds model-step assets from
(`model_step/registry.py` reads it).

Kinds:
- a *stage* (`run_stage`) writes the rows it keeps of its `upstream` and the drops to the
  rejections table under its own name: upstream rows = kept + dropped;
- a *step* (a model step or a computed one such as `dedup_signatures`) writes one row per row
  of its `upstream`, columns a stage downstream joins in; it has no viewer page of its own.

The *line* is the funnel a reader follows, collected -> difficulty_filtered (its steps that
hold one row per funnel row, `answer_verdicts`, `student_rollouts`, `student_verdicts`, are on
it); a *branch* such as the 586K recipe reads the same upstream as a stage on the line and drops
the same rows again by its own rule, so its drops are not added to the line's. The RL set
(`rl_selected`) is a branch from `deduplicated`, its steps off the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mmfr_assets.cleaning.filters import FILTERS as CLEANING_FILTERS
from mmfr_assets.collection.duplicates import DUPLICATE_FILTERS
from mmfr_assets.dedup.filters import FILTERS as DEDUP_FILTERS
from mmfr_assets.rl.rules import FILTERS as RL_FILTERS
from mmfr_assets.rules.quality import FILTERS as QUALITY_FILTERS
from mmfr_assets.selection.difficulty import FILTERS as DIFFICULTY_FILTERS
from mmfr_assets.stage import Filter


@dataclass(frozen=True)
class Node:
    """One asset of the lineage."""

    name: str
    kind: Literal["stage", "step"]
    upstream: str | None  # the table whose rows it reads (one row per row, or a subset of them)
    joins: tuple[str, ...] = ()  # the steps' tables it joins onto those rows (its other deps)
    place: Literal["line", "branch", "off"] = "line"  # on the funnel, beside it, or off it
    shows: tuple[str, ...] = ()  # a stage: the step tables whose columns its viewer cards show
    exportable: bool = False  # a table of training rows (question, answer, trace, ...)
    filters: tuple[Filter, ...] = ()  # a stage: the filters it drops rows by, in test order
    # Bump with a code change that alters the rows it writes for the same input and config (a
    # filter's logic, a rule, a default): part of its Dagster code version (code_versions.py),
    # so it and what is downstream show unsynced. A model step's parser has `parse_version`.
    rules_version: int = 1
    # A step a model answers: its `ModelStep` class as `module:Class` (named,
    # not imported: the step modules import this one for `NAME`). Its line here registers it.
    model_step: str | None = None

    @property
    def deps(self) -> tuple[str, ...]:
        """Every table it reads: its Dagster deps."""
        return (*([self.upstream] if self.upstream else []), *self.joins)


# The graph, in lineage order (each node after everything it reads).
LINEAGE: tuple[Node, ...] = (
    Node("collected", "stage", None, filters=DUPLICATE_FILTERS),  # drops only with duplicate_ids: keep_first
    Node("question_reviews", "step", "collected", place="off",
         model_step="mmfr_assets.cleaning.review:QuestionReview"),
    Node("extracted_answers", "step", "collected", place="off",
         model_step="mmfr_assets.cleaning.answers:AnswerExtraction"),
    Node("cleaned", "stage", "collected", ("question_reviews", "extracted_answers"),  # applies both
         filters=CLEANING_FILTERS, shows=("question_reviews", "extracted_answers")),
    Node("dedup_signatures", "step", "cleaned", place="off"),  # of every subset: near-duplicates
    # cleaned minus near-duplicates: the teachers' input; its signatures are hashes, nothing a
    # reader reads (the drop says why)
    Node("deduplicated", "stage", "cleaned", ("dedup_signatures",), filters=DEDUP_FILTERS),
    Node("teacher_captions", "step", "deduplicated", place="off",
         model_step="mmfr_assets.distillation.teachers:CaptionTeacher"),
    Node("teacher_responses", "step", "deduplicated", place="off",
         model_step="mmfr_assets.distillation.teachers:CotTeacher"),
    # one row per deduplicated row, the teachers' caption and trace joined
    Node("distilled", "stage", "deduplicated", ("teacher_captions", "teacher_responses"),
         shows=("teacher_captions", "teacher_responses"), exportable=True),
    # one verdict per distilled row
    Node("answer_verdicts", "step", "distilled", model_step="mmfr_assets.selection.steps:AnswerVerdictsStep"),
    Node("quality_filtered", "stage", "distilled", ("answer_verdicts",), filters=QUALITY_FILTERS,
         shows=("answer_verdicts",), exportable=True),
    # the student's samples, verified by the rules
    Node("student_rollouts", "step", "quality_filtered",
         model_step="mmfr_assets.selection.steps:StudentRolloutsStep"),
    # undecided samples judged: the pass rate (or its bounds) per row
    Node("student_verdicts", "step", "quality_filtered", ("student_rollouts",),
         model_step="mmfr_assets.selection.steps:StudentVerdictsStep"),
    Node("difficulty_filtered", "stage", "quality_filtered", ("student_verdicts",),  # the 123K recipe
         filters=DIFFICULTY_FILTERS, shows=("answer_verdicts", "student_rollouts", "student_verdicts"), exportable=True),
    # the 586K recipe (pass rate < 1), beside the 123K one: reads what difficulty_filtered reads
    Node("difficulty_filtered_586k", "stage", "quality_filtered", ("student_verdicts",), place="branch",
         filters=DIFFICULTY_FILTERS, shows=("answer_verdicts", "student_rollouts", "student_verdicts"), exportable=True),
    # the RL set, beside the SFT recipes: deduplicated rows the policy solves sometimes, not
    # blind; first the policy's samples, with and without the image
    Node("rl_rollouts", "step", "deduplicated", place="off",
         model_step="mmfr_assets.rl.steps:RlRolloutsStep"),
    Node("rl_verdicts", "step", "deduplicated", ("rl_rollouts",), place="off",  # undecided samples judged
         model_step="mmfr_assets.rl.steps:RlVerdictsStep"),
    Node("rl_selected", "stage", "deduplicated", ("rl_rollouts", "rl_verdicts"), place="branch",
         filters=RL_FILTERS, shows=("rl_rollouts", "rl_verdicts"), exportable=True),
)
#: The paper's order, the list above as written.
PAPER_LINEAGE = LINEAGE


def lineage_for(target: str) -> tuple[Node, ...]:
    """The node list of a run ordered for `target` (issue 33): `all` is `PAPER_LINEAGE` itself;
    `123k`/`586k` the student first (mmfr_assets/student_first/lineage.py)."""
    from mmfr_assets.student_first.lineage import rewire

    return rewire(PAPER_LINEAGE, target)


def _loaded_target() -> str:
    """`MMFR_TARGET` as the code location loads; a bad value is refused, with its one line, where
    the definitions are built (`definitions.build_definitions`), not by this import."""
    from mmfr_assets.errors import InputError
    from mmfr_assets.settings import target_setting

    try:
        return target_setting()
    except InputError:
        return "all"


#: The order this process's lineage is in (the report, the viewer and the funnel read it).
LOADED_TARGET = _loaded_target()
LINEAGE = lineage_for(LOADED_TARGET)
NODES: dict[str, Node] = {node.name: node for node in LINEAGE}


class Names:
    """Every node's name as an attribute (`NAME.distilled`): code names a table through its
    node, so each name is written once, in its node's line above, and code naming a table no
    node declares fails when it loads, not when a run reaches it."""

    def __init__(self, names: Iterable[str]) -> None:
        vars(self).update((name, name) for name in names)

    def __getattr__(self, name: str) -> str:  # only reached for a name no node has
        raise AttributeError(f"{name!r} is not in the lineage (mmfr_assets/lineage.py)")


NAME = Names(NODES)
ROOT: str = LINEAGE[0].name  # the table every other one's rows come from (`collected`)


def node(name: str) -> Node:
    try:
        return NODES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the lineage (mmfr_assets/lineage.py)") from None


def upstream_of(name: str) -> str:
    """The table whose rows `name` reads."""
    upstream = node(name).upstream
    if upstream is None:
        raise KeyError(f"{name} reads no table of the lake")
    return upstream


def reads(name: str) -> list[str]:
    """Every table `name` reads (its Dagster `deps`)."""
    return list(node(name).deps)


# The funnel's line (stages and the steps on it), its branches, and the steps off it.
LINE: tuple[str, ...] = tuple(n.name for n in LINEAGE if n.place == "line")
BRANCH_NAMES: tuple[str, ...] = tuple(n.name for n in LINEAGE if n.place == "branch")
STAGE_NAMES: tuple[str, ...] = tuple(n.name for n in LINEAGE if n.kind == "stage")
STEP_NAMES: tuple[str, ...] = tuple(n.name for n in LINEAGE if n.kind == "step")
# The tables a user trains on: the recipes (the line's last stage, then its branches) first,
# then the earlier stages, downstream first.
EXPORTABLE: tuple[str, ...] = tuple(dict.fromkeys(
    [LINE[-1], *BRANCH_NAMES, *(n.name for n in reversed(LINEAGE) if n.exportable)]
))
# The model steps have no viewer pages of their own: their columns are shown on the cards of
# the first stage that shows them, whose page their materializations link.
STEP_SHOWN_IN: dict[str, str] = {
    step: next(n.name for n in LINEAGE if step in n.shows)
    for step in STEP_NAMES if any(step in n.shows for n in LINEAGE)
}


def funnel_stages(*, branches: bool = True) -> list[str]:
    """The funnel's rows in lineage order: the line, then its branches."""
    return [*LINE, *(BRANCH_NAMES if branches else ())]


def chain(name: str) -> list[str]:
    """`name` and every stage whose rows it holds a subset of, downstream first (collected
    last): the tables an export of `name` pins and checks, stage by stage."""
    names = [name]
    while (upstream := NODES[names[-1]].upstream) is not None:
        names.append(upstream)
    return names


def steps_behind(name: str) -> list[str]:
    """The steps whose output shaped `name`'s rows, in lineage order: every step a stage of its
    chain reads, and the steps those read (student_verdicts reads student_rollouts). What an
    export's card reports the settings of, derived rather than listed (a list drifted)."""
    found: set[str] = set()
    todo = [dep for stage in chain(name) for dep in node(stage).deps]
    while todo:
        dep = todo.pop()
        if dep in NODES and NODES[dep].kind == "step" and dep not in found:
            found.add(dep)
            todo.extend(node(dep).deps)
    return [n.name for n in LINEAGE if n.name in found]


def viewer_input(stage: str) -> str:
    """The table whose rows a stage's viewer page shows: the stage's input when it drops rows
    (the rows it decided on, with its reason), else its own rows (collected, distilled)."""
    n = node(stage)
    return n.upstream if n.upstream is not None and n.filters else stage


def row_level(name: str) -> int:
    """How far down the lineage a table's rows are: every table holds a subsequence of the rows
    of any table at a lower level, in the same order (each stage writes its rows in its input's
    order; a step holds one row per row of its upstream). A stage that drops rows is one level
    below its upstream; a step, or a stage that drops none, is at its upstream's level."""
    n = node(name)
    if n.upstream is None:
        return 0
    return row_level(n.upstream) + (1 if n.kind == "stage" and n.filters else 0)
