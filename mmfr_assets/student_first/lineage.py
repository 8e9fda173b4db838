"""The lineage of the student-first order: the paper's node list with four nodes rewired.

- `student_rollouts` and `student_verdicts` read `deduplicated` (question, image, reference)
  and move before the teachers; off the funnel's line, as the teachers are (their rows are
  `deduplicated`'s, not one per funnel row after `quality_filtered`);
- the teachers join `student_verdicts` (they ask only for rows that can still pass);
- `distilled` joins `student_verdicts` too and drops the rows the teachers were not asked for
  (`teacher_skipped_easy`), so they are in the rejections table, the funnel and the viewer
  with the pass rate that decided it (its cards show `student_verdicts`).

Everything else (quality selection, the recipes reading `student_verdicts`, the RL set) is the
paper's graph. `all` returns the list it is given, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from mmfr_assets.stage.contract import Filter
from mmfr_assets.student_first.target import ALL, SKIP_FILTER, SKIPPED_REASON

N = TypeVar("N")  # lineage.Node (not imported: lineage.py imports this module)

#: The filter `distilled` drops by in the student-first order.
SKIP_FILTERS = (Filter(SKIP_FILTER, (SKIPPED_REASON,)),)
STUDENT_STEPS = ("student_rollouts", "student_verdicts")
TEACHERS = ("teacher_captions", "teacher_responses")
#: The nodes whose rows the target's rule decides (their code versions carry the target).
ORDER_DEPENDENT = (*TEACHERS, "distilled")


def rewire(nodes: Sequence[N], target: str) -> tuple[N, ...]:
    """The node list of `target`'s order: `nodes` itself for `all`; else the student's steps
    on `deduplicated`, right after it, and the teachers and `distilled` after the student."""
    if target == ALL:
        return tuple(nodes)
    by_name = {n.name: n for n in nodes}
    student = [
        dataclasses.replace(by_name["student_rollouts"], upstream="deduplicated", place="off"),
        dataclasses.replace(by_name["student_verdicts"], upstream="deduplicated", place="off"),
    ]
    out = []
    for n in nodes:
        if n.name in STUDENT_STEPS:
            continue
        if n.name in TEACHERS:
            n = dataclasses.replace(n, joins=(*n.joins, "student_verdicts"))
        elif n.name == "distilled":
            n = dataclasses.replace(n, joins=(*n.joins, "student_verdicts"), filters=SKIP_FILTERS,
                                    shows=(*n.shows, "student_verdicts"))
        out.append(n)
        if n.name == "deduplicated":
            out.extend(student)
    return tuple(out)
