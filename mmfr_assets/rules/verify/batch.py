"""Verification over a batch of rows (a Polars frame): the function `answer_verdicts` runs in
its `prepare`, and the benchmark times."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from mmfr_assets.rules.verify.extract import REFERENCE_COLUMNS, final_answer, reference_answer
from mmfr_assets.rules.verify.verifier import AnswerVerifier, Item, Verdict, verify_rules

VERDICT_COLUMNS = {
    "final_answer": pl.String,
    "reference": pl.String,
    "reference_column": pl.String,
    "equivalent": pl.Boolean,
    "method": pl.String,
    "detail": pl.String,
}


def items_of_batch(
    batch: pl.DataFrame,
    *,
    response_column: str = "response",
    reference_columns: Sequence[str] = REFERENCE_COLUMNS,
) -> tuple[list[Item], list[str | None]]:
    """(items, reference column used) per row: final answer of the trace, reference from the
    first non-blank of `reference_columns` the batch has, the question."""
    present = [c for c in reference_columns if c in batch.columns]
    questions = batch["question"].to_list() if "question" in batch.columns else [None] * batch.height
    traces = batch[response_column].to_list()
    refs = batch.select(present).iter_rows(named=True) if present else ({} for _ in traces)
    items, used = [], []
    for trace, question, ref_row in zip(traces, questions, refs):
        reference, column = reference_answer(ref_row, present)
        items.append(Item(final_answer(trace), reference, question))
        used.append(column)
    return items, used


def verdict_frame(items: Sequence[Item], used: Sequence[str | None], verdicts: Sequence[Verdict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "final_answer": [i.candidate for i in items],
            "reference": [i.reference for i in items],
            "reference_column": list(used),
            "equivalent": [v.equivalent for v in verdicts],
            "method": [v.method for v in verdicts],
            "detail": [v.detail or None for v in verdicts],
        },
        schema=VERDICT_COLUMNS,
    )


def verdicts_of_batch(
    batch: pl.DataFrame,
    verifier: AnswerVerifier | None,
    *,
    response_column: str = "response",
    reference_columns: Sequence[str] = REFERENCE_COLUMNS,
) -> pl.DataFrame:
    """`VERDICT_COLUMNS` per row of `batch`, same order: the rules, then math-verify when a
    verifier is given (`None`: the rules alone)."""
    items, used = items_of_batch(batch, response_column=response_column, reference_columns=reference_columns)
    verdicts = verifier.verify_many(items) if verifier is not None else [verify_rules(i) for i in items]
    return verdict_frame(items, used, verdicts)
