"""What the report shows, computed over every partition in bounded memory.

Each statistic is a streaming aggregate (counts per value or per histogram bin), so a report
over 1.8M rows holds one batch and a few small counters, never a column.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mmfr_assets.lake.delta import count_rows, count_rows_by, read_partition
from mmfr_assets.lake.lookup import SubsequenceLookup, closing_iter, table_columns
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lineage import BRANCH_NAMES, LINE, NAME
from mmfr_assets.reporting.funnel import funnel_table

# Tables other engineers add downstream; the report uses each one that exists and says which
# are absent.
OPTIONAL_TABLES = (NAME.answer_verdicts, NAME.student_rollouts, NAME.difficulty_filtered_586k, NAME.rl_verdicts)
# Word-count histogram bins (Python str.split() words), log-spaced: traces span 10^1..10^4.
LENGTH_BINS = np.unique(np.round(np.logspace(0, 5, 41)).astype(np.int64))


def stage_names(lake: LakeResource) -> list[str]:
    """The stages in lineage order, with the branches (the 586K recipe) whose table exists."""
    return [*LINE, *(name for name in BRANCH_NAMES if lake.location(name).table() is not None)]


@dataclass
class ReportStats:
    subsets: list[str]
    kept_asset: str
    present: dict[str, bool]
    funnel: pl.DataFrame  # subset, stage, filter, reason, rows
    pass_rates: Counter = field(default_factory=Counter)  # (subset, rate or None) -> rows
    pass_rate_source: str = ""
    lengths: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (trace|caption, kept|dropped)
    missing_lengths: Counter = field(default_factory=Counter)  # (trace|caption, kept|dropped)
    methods: Counter = field(default_factory=Counter)  # (subset, method) -> rows
    method_source: str = ""
    not_materialized: list[str] = field(default_factory=list)  # subsets without collected rows
    # the RL set's candidates (rows the policy was asked about): (pass rate or None, kept?) -> rows
    rl_pass_rates: Counter = field(default_factory=Counter)

    def drops(self) -> pl.DataFrame:
        """Drops along the line collected -> difficulty_filtered: the 586K recipe beside it
        drops the same quality rows again by its own rule, so counting both counts rows twice."""
        return self.funnel.filter(
            (pl.col("filter") != "") & ~pl.col("stage").is_in(list(BRANCH_NAMES))
        ).select("subset", "stage", "reason", "rows")


def _words(column: str) -> pl.Expr:
    # Whitespace-separated words, as the quality rules count them (str.split()).
    return pl.col(column).str.count_matches(r"\S+")


def _histogram(values: pl.Series) -> np.ndarray:
    counts, _ = np.histogram(np.clip(values.to_numpy(), 1, LENGTH_BINS[-1] - 1), bins=LENGTH_BINS)
    return counts


def collect_stats(
    lake: LakeResource, subsets: Sequence[str], *, kept_asset: str = NAME.difficulty_filtered,
    batch_size: int = 1024,
) -> ReportStats:
    present = {name: lake.location(name).table() is not None
               for name in (NAME.distilled, kept_asset, *OPTIONAL_TABLES)}
    # Subsets nothing was collected for are listed apart, not drawn as empty rows.
    counted = count_rows_by(lake.location(NAME.collected), "subset")
    collected = [s for s in subsets if counted.get(s)]
    stats = ReportStats(collected, kept_asset, present, funnel_table(lake.location, collected, stage_names(lake)))
    stats.not_materialized = [s for s in subsets if s not in collected]
    for kind in ("trace", "caption"):
        for group in ("kept", "dropped"):
            stats.lengths[(kind, group)] = np.zeros(len(LENGTH_BINS) - 1, dtype=np.int64)
    if not present[NAME.distilled]:
        stats.pass_rate_source = stats.method_source = "distilled is not materialized"
        return stats
    rollouts = present[NAME.student_rollouts] and "pass_rate" in table_columns(lake, NAME.student_rollouts)
    stats.pass_rate_source = (
        "student_rollouts.pass_rate" if rollouts
        else "distilled.pass_rate (the dataset's qwen3vl_4b_pass_rate; student_rollouts absent)"
    )
    verdicts = present[NAME.answer_verdicts] and "method" in table_columns(lake, NAME.answer_verdicts)
    stats.method_source = (
        "answer_verdicts.method" if verdicts
        else "distilled.is_consistent (answer_verdicts absent: a dataset label or nothing)"
    )
    for subset in subsets:
        _subset_stats(lake, subset, stats, rollouts=rollouts, verdicts=verdicts, batch_size=batch_size)
        if present[NAME.rl_verdicts]:
            _rl_stats(lake, subset, stats, batch_size=batch_size)
    return stats


#: rl_verdicts origins of rows the policy was asked about (the RL set's candidates).
RL_CANDIDATE_ORIGINS = ("rollouts", "judged", "bounds", "failed")


def _rl_stats(lake, subset, stats: ReportStats, *, batch_size: int) -> None:
    """The RL set's candidates by pass rate (None: only bounds, or none), kept or not by
    `rl_selected`: the histogram of the candidates with the band the selection kept."""
    partition = {"subset": subset}
    with SubsequenceLookup(lake.location(NAME.rl_selected), partition, batch_size=batch_size) as kept:
        for batch in closing_iter(read_partition(lake.location(NAME.rl_verdicts), partition, batch_size=batch_size,
                                                 columns=["id", "pass_rate", "pass_rate_origin"])):
            frame = pl.from_arrow(batch).filter(pl.col("pass_rate_origin").is_in(RL_CANDIDATE_ORIGINS))
            is_kept = [row is not None for row in kept.get(frame["id"].to_list())]
            for rate, selected in zip(frame["pass_rate"].round(3).to_list(), is_kept):
                stats.rl_pass_rates[(rate, selected)] += 1


def _counts(series: pl.Series) -> Counter:
    return Counter(dict(series.value_counts().iter_rows()))


def _subset_stats(lake, subset, stats: ReportStats, *, rollouts: bool, verdicts: bool, batch_size: int):
    partition = {"subset": subset}
    measure = stats.present[stats.kept_asset]
    distilled = lake.location(NAME.distilled)
    if count_rows(distilled, partition) == 0:
        return
    with SubsequenceLookup(lake.location(stats.kept_asset), partition, batch_size=batch_size) as kept:
        batches = read_partition(distilled, partition, batch_size=batch_size,
                                 columns=["id", "response", "caption", "pass_rate", "is_consistent"])
        for batch in closing_iter(batches):
            frame = pl.from_arrow(batch)
            is_kept = pl.Series([row is not None for row in kept.get(frame["id"].to_list())])
            frame = frame.with_columns(trace=_words("response"), caption_words=_words("caption"),
                                       kept=is_kept)
            # Kept vs dropped needs the selection table; without it nothing is measured and
            # the plot says there is nothing to show (the table is listed as absent).
            for kind, column in (("trace", "trace"), ("caption", "caption_words")) if measure else ():
                for group, mask in (("kept", frame["kept"]), ("dropped", ~frame["kept"])):
                    values = frame.filter(mask)[column]
                    stats.lengths[(kind, group)] += _histogram(values.drop_nulls())
                    stats.missing_lengths[(kind, group)] += values.null_count()
            if not rollouts:
                for rate, n in _counts(frame["pass_rate"].round(3)).items():
                    stats.pass_rates[(subset, rate)] += n
            if not verdicts:
                labels = frame["is_consistent"].is_null().replace_strict(
                    {True: "none (unverified)", False: "dataset label"}, return_dtype=pl.String)
                for method, n in _counts(labels).items():
                    stats.methods[(subset, method)] += n
    if rollouts:
        for batch in closing_iter(read_partition(lake.location(NAME.student_rollouts), partition,
                                                 columns=["pass_rate"], batch_size=batch_size)):
            for rate, n in _counts(pl.from_arrow(batch)["pass_rate"].round(3)).items():
                stats.pass_rates[(subset, rate)] += n
    if verdicts:
        for batch in closing_iter(read_partition(lake.location(NAME.answer_verdicts), partition,
                                                 columns=["method"], batch_size=batch_size)):
            for method, n in _counts(pl.from_arrow(batch)["method"].fill_null("(none)")).items():
                stats.methods[(subset, method)] += n
