"""The student-first order (issue 33): with a hard subset as the target (`123k`, `586k`), the
4B student is asked first, on the deduplicated rows (question, image, reference: its verdict
needs no trace), and the teachers only for rows whose pass rate can still pass the target's
recipe. `all`, the paper's order, is the default and is the graph as it always was.

- `target.py`: the targets and the pure decision "can this pass rate (or range) still pass?";
- `lineage.py`: the lineage nodes rewired for a target (the paper's list unchanged for `all`);
- `steps.py`: the model-step declarations of the student-first order (the student reads
  `deduplicated`, the teachers join the student's verdicts and skip rows that cannot pass).

The target is chosen when the code location loads (`MMFR_TARGET`, `settings.target_setting`),
or per command (`mmfr run --target`, `mmfr plan --target`): the teachers cannot depend on the
student in one run config and the student on the teachers in another.
"""
