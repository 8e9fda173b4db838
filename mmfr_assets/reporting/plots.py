"""The report's figures, drawn with matplotlib (Agg: no display) into PNG bytes.

Each function takes the streamed aggregates of `stats.ReportStats`, never rows. Figures are
sized for the Dagster UI's metadata panel and stay legible in a screenshot.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on servers, and no GUI toolkit imported

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter,
)
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from mmfr_assets.reporting.stats import LENGTH_BINS, ReportStats  # noqa: E402

DPI = 100
KEPT, DROPPED = "#2a9d8f", "#e76f51"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11, color="#555")
    ax.set_axis_off()


def pass_rate_bubbles(stats: ReportStats) -> bytes:
    """The paper's bubble chart: per subset, the share of rows at each pass rate of the student
    (bubble area = share of the subset's rows with a pass rate; missing pass rates counted apart)."""
    subsets = stats.subsets
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(subsets) + 1.8))
    rates = sorted({r for (_, r) in stats.pass_rates if r is not None})
    if not rates:
        _empty(ax, f"no pass rates in any subset\n(source: {stats.pass_rate_source})")
        return _png(fig)
    for y, subset in enumerate(subsets):
        total = sum(n for (s, r), n in stats.pass_rates.items() if s == subset and r is not None)
        missing = stats.pass_rates.get((subset, None), 0)
        for rate in rates:
            n = stats.pass_rates.get((subset, rate), 0)
            if n and total:
                share = n / total
                ax.scatter(rate, y, s=1800 * share, color="#457b9d", alpha=0.6, edgecolors="#1d3557")
                if share >= 0.1:
                    ax.annotate(f"{share:.0%}", (rate, y), ha="center", va="center", fontsize=8)
        label = f"{total} rows" + (f", {missing} missing" if missing else "")
        ax.annotate(label, (1.08, y), va="center", fontsize=8, color="#555", annotation_clip=False)
    ax.set_yticks(range(len(subsets)), subsets, fontsize=9)
    ax.set_ylim(-0.7, len(subsets) - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(-0.08, 1.08)
    ax.set_xlabel("student pass rate")
    ax.set_title(f"Pass-rate distribution per subset\nsource: {stats.pass_rate_source}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def length_distributions(stats: ReportStats) -> bytes:
    """Trace and caption lengths (words) of rows kept by the final selection vs rows dropped."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    edges = LENGTH_BINS
    for ax, kind in zip(axes, ("trace", "caption")):
        drew = False
        for group, color in (("kept", KEPT), ("dropped", DROPPED)):
            counts = stats.lengths[(kind, group)]
            if counts.sum():
                missing = stats.missing_lengths[(kind, group)]
                total = int(counts.sum())
                label = f"{group} ({total} row{'s' if total != 1 else ''}" + (
                    f", {missing} without one)" if missing else ")")
                ax.stairs(counts, edges, fill=True, alpha=0.45, color=color, label=label)
                drew = True
        if not drew:
            absent = "" if stats.present.get(stats.kept_asset) else f" ({stats.kept_asset} not materialized)"
            _empty(ax, f"no {kind} lengths{absent}")
            continue
        ax.set_xscale("log")
        used = np.flatnonzero(sum(stats.lengths[(kind, g)] for g in ("kept", "dropped")))
        low, high = edges[max(used[0] - 2, 0)], edges[min(used[-1] + 3, len(edges) - 1)]
        ax.set_xlim(low, high)
        # Plain word counts on a 1-2-5 grid, no minor labels: matplotlib's default log labels
        # (2×10², 3×10², 4×10² side by side) overlapped on a narrow range.
        ticks = [t for t in (m * 10 ** e for e in range(6) for m in (1, 2, 5)) if low <= t <= high]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{kind} length (words, log scale)")
        ax.set_ylabel("distilled rows")
        ax.set_title(f"{kind.capitalize()} length: distilled rows per word count,\n"
                     f"kept vs dropped by {stats.kept_asset}", fontsize=10)
        ax.legend(fontsize=8)
    return _png(fig)


def drops_by_reason(stats: ReportStats) -> bytes:
    """Rows dropped per subset, stacked by reason (every stage on the line to difficulty_filtered)."""
    drops = stats.drops()
    subsets = stats.subsets
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(subsets) + 2.2))
    if drops.height == 0:
        _empty(ax, "no rows were dropped")
        return _png(fig)
    totals = drops.group_by("reason").agg(rows=pl.col("rows").sum()).sort("rows", descending=True)
    reasons = totals["reason"].to_list()
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(reasons), 2)))
    left = np.zeros(len(subsets))
    index = {s: k for k, s in enumerate(subsets)}
    for reason, color in zip(reasons, colors):
        widths = np.zeros(len(subsets))
        for subset, n in drops.filter(drops["reason"] == reason).group_by("subset").agg(
                pl.col("rows").sum()).iter_rows():
            widths[index[subset]] = n
        ax.barh(range(len(subsets)), widths, left=left, color=color, label=reason)
        left += widths
    ax.set_yticks(range(len(subsets)), subsets, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("rows dropped")
    ax.set_title("Rows dropped per subset, by reason (collected → difficulty_filtered; "
                 "the 586K recipe's drops are in the funnel)", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def verifier_methods(stats: ReportStats) -> bytes:
    """Share of rows per verification method (rule, judge, dataset label), per subset."""
    subsets = stats.subsets
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(subsets) + 2.2))
    methods = sorted({m for (_, m) in stats.methods})
    if not methods:
        _empty(ax, f"no verdicts\n(source: {stats.method_source})")
        return _png(fig)
    colors = plt.get_cmap("Set2")(np.linspace(0, 1, max(len(methods), 2)))
    left = np.zeros(len(subsets))
    totals = np.array([sum(n for (s, _), n in stats.methods.items() if s == subset) for subset in subsets])
    for method, color in zip(methods, colors):
        counts = np.array([stats.methods.get((s, method), 0) for s in subsets], dtype=float)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        ax.barh(range(len(subsets)), shares, left=left, color=color, label=method)
        left += shares
    ax.set_yticks(range(len(subsets)), subsets, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(f"Verifier method shares\nsource: {stats.method_source}", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def rl_pass_rates(stats: ReportStats) -> bytes:
    """The RL set's candidates (rows the policy answered) by its pass rate with the image,
    stacked kept / dropped by `rl_selected`: the kept bars are the band (and the rows whose blind
    pass rate or SFT membership dropped them are the dropped share inside it)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    rates = sorted({r for (r, _) in stats.rl_pass_rates if r is not None})
    bounded = {k: stats.rl_pass_rates.get((None, k), 0) for k in (True, False)}
    if not rates and not any(bounded.values()):
        _empty(ax, "no RL candidates (rl_rollouts / rl_verdicts not materialized, or no policy_llm)")
        return _png(fig)
    labels = [f"{r:g}" for r in rates] + (["bounds only"] if any(bounded.values()) else [])
    kept = [stats.rl_pass_rates.get((r, True), 0) for r in rates] + ([bounded[True]] if any(bounded.values()) else [])
    dropped = [stats.rl_pass_rates.get((r, False), 0) for r in rates] + ([bounded[False]] if any(bounded.values()) else [])
    x = np.arange(len(labels))
    ax.bar(x, kept, color=KEPT, label="kept in rl_selected")
    ax.bar(x, dropped, bottom=kept, color=DROPPED, label="dropped")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("policy pass rate with the image")
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"RL candidates by pass rate: {sum(kept)} kept of {sum(kept) + sum(dropped)}", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


PLOTS = {
    "pass_rate_distribution": pass_rate_bubbles,
    "length_kept_vs_dropped": length_distributions,
    "drops_by_reason": drops_by_reason,
    "verifier_methods": verifier_methods,
    "rl_pass_rates": rl_pass_rates,
}
