"""The RL set's row rule: which rolled-out rows make good RL prompts, and why the others do not.

A filter's whole contract is keep or (drop, reason) (datatrove's): `rl_decision(row, config)`
is that, for one row, pure; `select_rl` applies it to a batch. Tested in order:

1. `rl_not_checkable`: the reference is not of a form a rule can check (prose, a long
   expression, none): the reward at training time is computed by rules.
2. `rl_in_sft_set`: the row is in the SFT table named by `exclude_sft_asset` (off by default).
3. `rl_too_easy` / `rl_too_hard`: over the policy's samples with the image, every value the
   pass rate can take is at or above `max_pass_rate` (too easy) or at or below `min_pass_rate`
   (too hard), inclusive or not: a group whose rollouts all get one reward gives GRPO/GSPO no
   gradient (OpenMMReasoner; DAPO's dynamic sampling drops the same groups at training time).
4. `rl_blind_solvable`: asked without the image, the policy's pass rate is above
   `max_blind_pass_rate` even at its lowest: the reward would teach text shortcuts.
5. `rl_undecided`: the pass rate (with or without the image) is only bounded, and the bounds
   straddle a threshold, or there is none (the requests failed, or no `policy_llm`): never a
   guess; the detail says what is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from mmfr_assets.stage import Filter, Verdicts, split_by_reason

if TYPE_CHECKING:
    from mmfr_assets.rl.configs import RlSelectedConfig

FILTERS = (
    Filter("rl_reference", ("rl_not_checkable",)),
    Filter("rl_sft_set", ("rl_in_sft_set",)),
    Filter("rl_rollouts", ("rl_too_easy", "rl_too_hard", "rl_blind_solvable", "rl_undecided")),
)
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}


@dataclass(frozen=True)
class Decision:
    """Keep (`reason` None) or drop with a reason and what decided it."""

    reason: str | None = None
    detail: str | None = None


KEEP = Decision()


def band_text(config: "RlSelectedConfig") -> str:
    """The kept band in words, e.g. "0 < pass rate < 1"."""
    low = "<=" if config.min_inclusive else "<"
    high = "<=" if config.max_inclusive else "<"
    return f"{config.min_pass_rate:g} {low} pass rate {high} {config.max_pass_rate:g}"


def _rate_text(low: float, high: float) -> str:
    return f"{low:.3g}" if low == high else f"between {low:.3g} and {high:.3g}"


def _missing(value: Any) -> bool:
    return value is None or value != value  # None or NaN


def rl_decision(row: Mapping[str, Any], config: "RlSelectedConfig") -> Decision:
    """Keep or (drop, reason) for one row of `deduplicated` with its rollouts' columns:
    `checkable`, `reference_form`, `in_sft_set`, `pass_rate_low`/`_high`,
    `blind_samples`, `blind_pass_rate_low`/`_high` and the `*_detail` texts."""
    if not row.get("checkable"):
        form = row.get("reference_form") or "none"
        return Decision("rl_not_checkable", f"reference of form {form!r}: no rule can check it"
                        + (f" ({row['reference_detail']})" if row.get("reference_detail") else ""))
    if row.get("in_sft_set"):
        return Decision("rl_in_sft_set", f"in {config.exclude_sft_asset} (exclude_sft_asset)")
    band = band_text(config)
    low, high = row.get("pass_rate_low"), row.get("pass_rate_high")
    undecided: list[str] = []
    if _missing(low) or _missing(high):
        undecided.append(f"no pass rate with the image ({row.get('pass_rate_detail') or 'no rollouts'})")
    else:
        def below(v: float) -> bool:
            return v < config.min_pass_rate if config.min_inclusive else v <= config.min_pass_rate

        def above(v: float) -> bool:
            return v > config.max_pass_rate if config.max_inclusive else v >= config.max_pass_rate

        if above(low):
            return Decision("rl_too_easy", f"pass rate {_rate_text(low, high)} is above the band {band}")
        if below(high):
            return Decision("rl_too_hard", f"pass rate {_rate_text(low, high)} is below the band {band}")
        if below(low) or above(high):
            undecided.append(f"pass rate {_rate_text(low, high)}: {band} holds for part of it only"
                             + (f" ({row['pass_rate_detail']})" if row.get("pass_rate_detail") else ""))
    limit = config.max_blind_pass_rate
    if limit is not None and (row.get("blind_samples") or 0) > 0:
        blow, bhigh = row.get("blind_pass_rate_low"), row.get("blind_pass_rate_high")
        if _missing(blow) or _missing(bhigh):
            undecided.append(f"no pass rate without the image ({row.get('blind_detail') or 'no rollouts'})")
        elif blow > limit:
            return Decision("rl_blind_solvable",
                            f"without the image the pass rate is {_rate_text(blow, bhigh)} > {limit:g} "
                            f"(max_blind_pass_rate)")
        elif bhigh > limit:
            undecided.append(f"pass rate without the image {_rate_text(blow, bhigh)}: "
                             f"<= {limit:g} holds for part of it only")
    if undecided:
        return Decision("rl_undecided", "; ".join(undecided))
    return KEEP


#: The columns `rl_decision` reads beside the row's own: dropped from the kept rows.
DECISION_COLUMNS = (
    "checkable", "reference_form", "reference_detail", "in_sft_set", "pass_rate_low", "pass_rate_high",
    "pass_rate_detail", "blind_samples", "blind_pass_rate_low", "blind_pass_rate_high", "blind_detail",
)


#: Of those, the ones the kept rows leave behind (the rest are the RL table's own columns).
WORKING_COLUMNS = ("checkable", "reference_detail", "in_sft_set", "pass_rate_detail", "blind_detail")


def select_rl(batch: pl.DataFrame, config: "RlSelectedConfig") -> Verdicts:
    """`rl_decision` on every row of the batch: the rows kept (without the decision's columns)
    and the drops with their reasons and details."""
    decisions = [rl_decision(row, config) for row in batch.select(
        [c for c in DECISION_COLUMNS if c in batch.columns]).iter_rows(named=True)]
    reason = pl.Series("reason", [d.reason for d in decisions], pl.String)
    detail = pl.Series("detail", [d.detail for d in decisions], pl.String)
    verdicts = split_by_reason(batch.with_columns(_rl_detail=detail), reason, FILTER_OF,
                               detail=pl.col("_rl_detail"))
    drop = [c for c in (*WORKING_COLUMNS, "_rl_detail") if c in verdicts.kept.columns]
    return Verdicts(verdicts.kept.drop(drop), verdicts.dropped)
