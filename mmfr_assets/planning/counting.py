"""Which rows will need a request, read from what is there (the lake, else the source), by each
model step's own declaration: `for_run(config, run_config, shared resources)`, `prepare` and
`needs` on the rows it would read, so the plan applies the routing rules the run applies and
never restates them.

Where the step's upstream is not materialized yet, its `needs` is evaluated on the nearest
earlier table of its chain (or the source, mapped as `collected` maps it) that has the columns
it reads; the count is then scaled by the share of rows measured to survive from that table to
the upstream in the subsets where both exist (`estimated`), or left as it is (`upper bound`:
stages only drop rows). A step whose columns do not exist yet (e.g. a join of another model
step's table) counts every row reaching it, scaled by the share of rows its table measured as
sent where it exists. Nothing here sends a request; `prepare` may run CPU rules (routing,
math-verify on the rows a judge would see).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from mmfr_assets.lake.delta import count_rows, read_partition
from mmfr_assets.lake.lookup import table_columns
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import NAME, chain
from mmfr_assets.model_step.declaration import ModelStep
from mmfr_assets.model_step.registry import MODEL_STEPS, Registered
from mmfr_assets.planning.figures import Measured, StepCount
from mmfr_assets.prompts import load_prompt

#: The source (mapped as `collected` maps it) as the earliest table of every chain.
SOURCE = "source"
#: Columns a later table holds under another name than the card's (`distillation/annotations.
#: assemble` renames them): a step reading `pass_rate` reads the card's published pass rate on an
#: earlier table.
LATER_NAMES = {"pass_rate": "qwen3vl_4b_pass_rate", "response": "qwen3vl_235b_thinking_response"}


def step_of(registered: Registered, run_config: Mapping[str, Any],
            shared: Mapping[str, Any] | None = None) -> ModelStep:
    """The step a run with `run_config` would build (its asset's config from `ops`, the
    resources it shares with other assets as the run resolves them: `shared`)."""
    given = (((run_config.get("ops") or {}).get(registered.step.asset) or {}).get("config")) or {}
    return registered.step.for_run(registered.config(**given), run_config, shared)


class Rows:
    """What the planner reads: partition sizes and batches of a table, or of the source."""

    def __init__(self, lake: LakeResource, source_batches=None, batch_size: int = 1024) -> None:
        self.lake = lake
        self.source_batches = source_batches  # (subset) -> iterator of collected-shaped frames
        self.batch_size = batch_size
        self._counts: dict[tuple[str, str], int] = {}
        self._columns: dict[str, list[str]] = {}

    def count(self, table: str, subset: str) -> int:
        key = (table, subset)
        if key not in self._counts:
            if table == SOURCE:
                self._counts[key] = sum(b.height for b in self.batches(SOURCE, subset, ["id"]))
            else:
                self._counts[key] = count_rows(self.lake.location(table), {"subset": subset})
        return self._counts[key]

    def materialized(self, table: str, subset: str) -> bool:
        """The table holds the subset's partition: rows, or (a stage that dropped them all) rows
        in the rejections table under its name."""
        if self.count(table, subset) or table == SOURCE:
            return bool(self.count(table, subset))
        from mmfr_assets.lake.resource import REJECTIONS_TABLE

        return count_rows(self.lake.location(REJECTIONS_TABLE), {"stage": table, "subset": subset}) > 0

    def columns(self, table: str) -> list[str]:
        if table == SOURCE:
            from mmfr_assets.collection.assets import COLLECTED_SCHEMA
            return list(COLLECTED_SCHEMA.names)
        if table not in self._columns:
            self._columns[table] = table_columns(self.lake, table) if self.lake.location(table).table() else []
        return self._columns[table]

    def batches(self, table: str, subset: str, columns: Sequence[str]) -> Iterator[pl.DataFrame]:
        """The partition's rows (every shard) with `columns`, in order; closed when done."""
        if table == SOURCE:
            if self.source_batches is None:
                return
            with contextlib.closing(self.source_batches(subset)) as frames:
                for frame in frames:
                    yield frame.select(columns)
            return
        with read_partition(self.lake.location(table), {"subset": subset}, columns=list(columns),
                            batch_size=self.batch_size) as reader:
            for batch in reader:
                yield pl.from_arrow(batch)


def measured_of(rows: Rows, step: str, subsets: Sequence[str]) -> Measured:
    """What the step's table recorded for rows it sent (attempts > 0), over `subsets`."""
    if "attempts" not in rows.columns(step):
        return Measured()
    total = Measured()
    for subset in subsets:
        if not rows.count(step, subset):
            continue
        for frame in rows.batches(step, subset, ["attempts", "prompt_tokens", "completion_tokens"]):
            sent = frame.filter(pl.col("attempts") > 0)
            paid = sent.filter(pl.col("prompt_tokens") > 0)
            total = total + Measured(sent.height, int(sent["attempts"].sum() or 0),
                                     int(sent["prompt_tokens"].sum() or 0), int(sent["completion_tokens"].sum() or 0),
                                     int(paid["attempts"].sum() or 0))
    return total


def sent_share(rows: Rows, step: str, subsets: Sequence[str]) -> float | None:
    """The share of a step's rows it sent to its model, where its table exists."""
    total = sum(rows.count(step, s) for s in subsets)
    return measured_of(rows, step, subsets).rows / total if total else None


def survival(rows: Rows, earlier: str, later: str, subsets: Sequence[str]) -> float | None:
    """Rows of `later` per row of `earlier`, over the subsets where both are materialized (the
    source counts as `collected`); None where no subset has both."""
    earlier = NAME.collected if earlier == SOURCE else earlier
    pairs = [(rows.count(earlier, s), rows.count(later, s)) for s in subsets]
    pairs = [(a, b) for a, b in pairs if a and b]
    return sum(b for _, b in pairs) / sum(a for a, _ in pairs) if pairs else None


@dataclass(frozen=True)
class Counted:
    """A step's count over one subset, and the mean question length of the rows counted (for
    an assumed prompt length)."""

    count: StepCount
    text_chars: float


def count_step(step: ModelStep, subset: str, rows: Rows, subsets: Sequence[str]) -> Counted:
    """`StepCount` of `step` over `subset` (see the module's docstring for the bases)."""
    upstream = step.upstream
    tables = [t for t in chain(upstream) if rows.materialized(t, subset)]
    base = tables[0] if tables else SOURCE
    # `collected` is the source as mapped (less rows refused for a duplicate id, if any)
    on_upstream = base == upstream or (base == SOURCE and upstream == NAME.collected)
    available = set(rows.columns(base))
    wanted = ["subset", "id", *[c for c in step.columns if c not in ("subset", "id")]]
    renames = {c: LATER_NAMES[c] for c in wanted if c not in available and LATER_NAMES.get(c) in available}
    joins_ready = not step.joins or (on_upstream and all(rows.count(j.table, subset) for j in step.joins))
    evaluable = joins_ready and all(c in available or c in renames for c in wanted)
    base_rows = rows.count(base, subset)
    answered = 0
    text_chars = 0.0
    shared = {"subset": subset, "step": step.asset, "role": step.role, "samples": sum(step.ask_samples()),
              "ask_samples": step.ask_samples(),
              "max_attempts": max(step.max_attempts, 1)}
    if evaluable:
        needing, ids, chars = _needing(step, rows, base, subset, wanted, renames)
        text_chars = chars / needing if needing else 0.0
        if on_upstream and rows.count(step.asset, subset):
            answered = _answered(step, rows, subset, ids)
        how = f"{step.asset}'s needs() on {base} ({base_rows:,} rows)"
    else:
        share = sent_share(rows, step.asset, subsets)
        needing = base_rows
        how = f"every row of {base} ({base_rows:,}): {step.asset} reads columns not written yet"
        if share is not None:
            how += f", x {share:.3f} sent where {step.asset} ran"
    upper = needing - answered
    estimate: float = upper
    if (on_upstream and evaluable) or upper == 0:  # no row needs it: certain, wherever counted
        basis = "counted"
    else:
        kept = survival(rows, base, upstream, subsets) if not on_upstream else None
        share = None if evaluable else sent_share(rows, step.asset, subsets)
        if kept is not None:
            estimate *= kept
            how += f", x {kept:.3f} measured to reach {upstream}"
        if share is not None:
            estimate *= share
        basis = "estimated" if (kept is not None or share is not None) else "upper bound"
        if basis == "upper bound" and not on_upstream:
            how += f"; rows {base} -> {upstream} drops are not known yet"
    return Counted(StepCount(rows=estimate, rows_upper=upper, answered=answered, basis=basis, how=how, **shared),
                   text_chars)


def _needing(step: ModelStep, rows: Rows, base: str, subset: str, wanted: list[str],
             renames: Mapping[str, str]) -> tuple[int, set[str], float]:
    """Rows of `base` the step's `needs` selects, their ids, and their questions' characters."""
    from mmfr_assets.model_step.join import join_step

    read = [renames.get(c, c) for c in wanted]
    needing, ids, chars = 0, set(), 0.0
    frames = (f.rename({v: k for k, v in renames.items()}) for f in rows.batches(base, subset, read))
    with contextlib.ExitStack() as stack:
        if step.joins:
            frames = join_step(rows.lake, frames, subset, step.joins, batch_size=rows.batch_size)
            stack.callback(frames.close)
        for frame in frames:
            prepared = step.prepare(frame)
            mask = step.needs(prepared)
            chosen = prepared.filter(mask)
            needing += chosen.height
            ids.update(chosen["id"].to_list())
            if "question" in chosen.columns:
                chars += float(chosen["question"].fill_null("").str.len_chars().sum() or 0)
    return needing, ids, chars


def _answered(step: ModelStep, rows: Rows, subset: str, ids: set[str]) -> int:
    """Rows among `ids` whose row in the step's table was sent with the current prompt: a re-run
    gets their replies from the response cache. The cache itself is not read (its keys need
    every request rebuilt, images included), so a reply whose table was never committed (a run
    that crashed) is counted as still to ask (the plan errs high), and a row whose every
    request failed (not cached: a re-run asks again) as answered (it errs low, by at most the
    share the step's `generation_failure_rate` check allows, 2% by default)."""
    version = load_prompt(step.prompt).version
    done = 0
    for frame in rows.batches(step.asset, subset, ["id", "attempts", "prompt_version"]):
        sent = frame.filter((pl.col("attempts") > 0) & (pl.col("prompt_version") == version))
        done += sum(1 for i in sent["id"].to_list() if i in ids)
    return done


def count_all(rows: Rows, subsets: Sequence[str], run_config: Mapping[str, Any],
              steps: Sequence[Registered] = MODEL_STEPS,
              shared: Mapping[str, Any] | None = None) -> tuple[list[Counted], dict[str, ModelStep]]:
    """Every registered step over every subset; and the step instances (closed here)."""
    counted: list[Counted] = []
    built: dict[str, ModelStep] = {}
    for registered in steps:
        step = step_of(registered, run_config, shared)
        built[step.asset] = step
        try:
            counted.extend(count_step(step, subset, rows, subsets) for subset in subsets)
        finally:
            step.close()
    return counted, built
