"""What `distilled` does differently in the student-first order: it joins the student's pass
rate and drops, with reason `teacher_skipped_easy` and the pass rate in the detail, the rows
whose pass rate cannot pass the target (the teachers were not asked for them). They are then in
the rejections table, the funnel and the row viewer like any other drop, and the stages
downstream (quality selection, the recipes) run on the rows that were distilled."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import polars as pl

from mmfr_assets.lineage import NAME
from mmfr_assets.stage import split_by_reason
from mmfr_assets.student_first.lineage import SKIP_FILTERS
from mmfr_assets.student_first.steps import PASS_RATE_JOIN, order_note
from mmfr_assets.student_first.target import (
    SKIP_FILTER, SKIPPED_REASON, Target, can_pass_expr, configured, skip_detail_expr, target_of,
)


@dataclass(frozen=True)
class Skipping:
    target: Target

    @property
    def reads(self) -> list[str]:
        from mmfr_assets.lineage import PAPER_LINEAGE
        from mmfr_assets.student_first.lineage import rewire

        return list(next(n for n in rewire(PAPER_LINEAGE, self.target.name) if n.name == NAME.distilled).deps)

    @property
    def note(self) -> str:
        return order_note(self.target)

    joins = (PASS_RATE_JOIN,)
    filters = SKIP_FILTERS

    def with_deps(self, asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
        """The asset built from the paper's node (`stage.stage_asset`), reading what the
        student-first node reads (the student's verdicts too): Dagster then runs it after them."""
        from mmfr_assets.partitions import deps

        wanted = deps(self.reads, asset.partitions_def)
        return asset.map_asset_specs(lambda spec: spec.replace_attributes(deps=wanted))

    def for_run(self, run_config) -> "Skipping":
        """This run's: the target's bound as the run configures its recipe (`target.configured`)."""
        return Skipping(configured(self.target, run_config))

    def split(self, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The rows to distil (the teachers' columns joined) and the drops of the others."""
        reason = pl.when(~can_pass_expr(self.target)).then(pl.lit(SKIPPED_REASON))
        verdicts = split_by_reason(batch, reason, {SKIPPED_REASON: SKIP_FILTER}, detail=skip_detail_expr(self.target))
        return verdicts.kept, verdicts.dropped

    def metadata(self, run) -> dict:
        skipped = run.dropped.get((SKIP_FILTER, SKIPPED_REASON), 0)
        return {
            "order": dg.MetadataValue.text(f"student-first, target {self.target.label} ({self.target.rule})"),
            "target": dg.MetadataValue.text(self.target.name),  # as MMFR_TARGET names it: the card reads it
            f"rows/{SKIPPED_REASON}": skipped,
        }


def skipping(target: str) -> Skipping | None:
    """`distilled`'s student-first behaviour for `target`, or None in the paper's order."""
    found = target_of(target)
    return None if found is None else Skipping(found)
