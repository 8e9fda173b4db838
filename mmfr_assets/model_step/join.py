"""The one join of a model step's columns onto the rows of the asset that consumes them.

Every consumer of a model step (`cleaned` of the reviews and extracted answers, `distilled` of
the teachers, `quality_filtered` of `answer_verdicts`, the recipes and `student_verdicts` of
the student's tables) takes some of the step's columns, maybe renamed, for the rows of the same
ids. A step's table holds one row per upstream row in the upstream's order, so the two are read
in step (`OrderedRows`), in bounded memory. The columns and their types come from the step's
`output_schema`: a consumer names what it takes (`StepJoin`) of the steps its lineage node
joins (`joins_of`), a name the step does not write fails when the definitions load, and a
column of nulls keeps its type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from mmfr_assets.lake.delta import count_rows
from mmfr_assets.lake.ordered import OrderedRows
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import node
from mmfr_assets.partitions import lake_partition

if TYPE_CHECKING:
    from mmfr_assets.model_step.declaration import ModelStep


def polars_types(schema: pa.Schema) -> dict[str, pl.DataType]:
    """The Polars type of every column of an Arrow schema."""
    return dict(pl.from_arrow(schema.empty_table()).schema)


@dataclass(frozen=True)
class StepJoin:
    """Which columns of a step's table a consumer takes: `columns` maps the step's column to
    the consumer's (replaced where the consumer's batch has it, else added). `step` is the
    step's name, as the consumer's lineage node joins it (or, in tests, a step class)."""

    step: str | type["ModelStep"]
    columns: Mapping[str, str]

    @property
    def table(self) -> str:
        return self.step if isinstance(self.step, str) else self.step.asset

    @cached_property
    def types(self) -> Mapping[str, pl.DataType]:
        """The consumer's columns' Polars types, from the step's `output_schema`; a column the
        step does not write fails (`check`, when the definitions load)."""
        if isinstance(self.step, str):  # the registry imports the steps, which may join others
            from mmfr_assets.model_step.registry import step_named
            step = step_named(self.step)
        else:
            step = self.step
        written = polars_types(step.output_schema)
        unknown = [c for c in self.columns if c not in written]
        if unknown:
            raise ValueError(f"{step.asset} writes no column {', '.join(map(repr, unknown))} "
                             f"(its output_schema: {', '.join(written)})")
        return {target: written[source] for source, target in self.columns.items()}

    def check(self) -> StepJoin:
        self.types  # noqa: B018 (resolves the step and its columns, or fails)
        return self


def take(step: str | type["ModelStep"], *columns: str, **renamed: str) -> StepJoin:
    """`StepJoin` of `step` (a name from the consumer's lineage node, `node(...).joins`):
    `columns` under their own names, `renamed` as `step_column=consumer_column`."""
    join = StepJoin(step, {**{c: c for c in columns}, **renamed})
    return join if isinstance(step, str) else join.check()


def joins_of(consumer: str) -> tuple[str, ...]:
    """The step tables `consumer` joins, from its lineage node, the one list of them: a
    consumer unpacks them in order (`reviews, answers = joins_of(NAME.cleaned)`) and says which
    columns it takes of each, so a join added or removed in the lineage fails at import there."""
    return node(consumer).joins


def join_step(
    lake: LakeResource,
    batches: Iterable[pl.DataFrame],
    subset: str,
    joins: StepJoin | Sequence[StepJoin],
    *,
    batch_size: int = 1024,
    not_joined: list[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """`batches` (rows of the partition, in its order) with the columns of every join taken
    from its step's table for the same ids.

    A step whose partition holds no rows (never materialized: e.g. the consumer selected
    alone) is an error, unless the caller passes `not_joined`: its name then goes there, for
    the caller to report, and its columns are left out (the consumer treats them as absent).
    Closes `batches` and every scan on every path.
    """
    joins = [joins] if isinstance(joins, StepJoin) else list(joins)
    with contextlib.ExitStack() as stack:
        close = getattr(batches, "close", None)
        if close is not None:
            stack.callback(close)
        readers: list[tuple[StepJoin, OrderedRows]] = []
        for join in joins:
            location = lake.location(join.table)
            if not_joined is not None and count_rows(location, lake_partition(subset)) == 0:
                not_joined.append(join.table)
                continue
            rows = stack.enter_context(OrderedRows(location, subset, list(join.columns), batch_size=batch_size))
            readers.append((join, rows))
        for batch in batches:
            ids = batch["id"].to_list()
            taken: dict[str, pl.Series] = {}
            for join, rows in readers:
                values = rows.take(ids)
                for source, target in join.columns.items():
                    taken[target] = pl.Series(target, values[source], dtype=join.types[target])
            yield batch.with_columns(**taken) if taken else batch
