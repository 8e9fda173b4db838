"""Answer verification: does a trace's final answer match the reference? Pure Python, no
Dagster: `final_answer(trace)`, `reference_answer(row)`, `verify_rules(item)` (rules only),
`AnswerVerifier` (rules, then math-verify in killable worker processes), and
`same_answer(a, b, question)` (do two reference answers mean the same: rules only, for dedup)."""

from mmfr_assets.rules.verify.extract import (
    REFERENCE_COLUMNS,
    final_answer,
    reference_answer,
)
from mmfr_assets.rules.verify.same import same_answer
from mmfr_assets.rules.verify.verifier import UNDECIDED, AnswerVerifier, Item, Verdict, verify_rules

__all__ = [
    "REFERENCE_COLUMNS",
    "UNDECIDED",
    "AnswerVerifier",
    "Item",
    "Verdict",
    "final_answer",
    "reference_answer",
    "same_answer",
    "verify_rules",
]
