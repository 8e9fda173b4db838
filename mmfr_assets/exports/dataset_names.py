"""What an export is called: the paper's recipe it reproduces (MMFineReason-123K / -586K) with
its rule written out, so a trainer can tell the two sets apart by their LLaMA-Factory dataset
name, their data folder and their card — not only by the table name `difficulty_filtered`.

The rule is read from what the recipe's materializations recorded (`max_pass_rate`,
`inclusive`) and the student's `num_samples`; without records it is the asset config's
default, and the card says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmfr_assets.lineage import NAME

# Table -> (short name, the paper's name of the set). Other exportable tables (earlier stages)
# are named after the table.
RECIPE_TABLES = {
    NAME.difficulty_filtered: ("123k", "MMFineReason-123K"),
    NAME.difficulty_filtered_586k: ("586k", "MMFineReason-586K"),
}


def recipe_config(table: str) -> Any:
    """The default config of a recipe's asset: the paper's rule (`max_pass_rate`,
    `inclusive`), written once in `selection/configs.py`."""
    from mmfr_assets.selection.configs import RECIPE_CONFIGS

    return RECIPE_CONFIGS[table]()


@dataclass(frozen=True)
class ExportName:
    table: str
    short: str  # "123k", "586k" or the table name
    pretty: str  # "MMFineReason-123K (mmfr-assets)"
    rule: str | None  # "pass rate = 0 over 4 student samples"; None: not a difficulty recipe
    max_pass_rate: float | None = None
    inclusive: bool | None = None
    recorded: bool = False  # the rule comes from materialization records (not config defaults)

    @property
    def dataset(self) -> str:
        """The LLaMA-Factory dataset name (also the JSON Lines folder): `mmfr_123k`."""
        return f"mmfr_{self.short}"

    @property
    def aliases(self) -> tuple[str, ...]:
        """Earlier dataset names kept working: `mmfr_<table>`."""
        legacy = f"mmfr_{self.table}"
        return () if legacy == self.dataset else (legacy,)

    @property
    def paper_rule(self) -> str | None:
        """The paper's rule when this export's differs from it (a reconfigured recipe), else None."""
        if self.table not in RECIPE_TABLES:
            return None
        paper = recipe_config(self.table)
        if (self.max_pass_rate, self.inclusive) == (paper.max_pass_rate, paper.inclusive):
            return None
        return rule_text(paper.max_pass_rate, paper.inclusive, None)

    @property
    def bound(self) -> str | None:
        """The setting behind the rule: "max_pass_rate 1.0, exclusive"."""
        if self.max_pass_rate is None:
            return None
        return f"max_pass_rate {self.max_pass_rate}, {'inclusive' if self.inclusive else 'exclusive'}"


def thresholds_note(recipe: Mapping[str, Mapping[str, Mapping[str, str]]]) -> str | None:
    """Where the quality thresholds `quality_filtered` recorded (`thresholds`) differ from the
    paper's, one sentence naming each, as `paper_rule` does for a reconfigured recipe; else
    None. The paper's are the `quality_thresholds` resource's defaults (`QualityThresholds()`),
    the one home of the values, not a copy here."""
    from mmfr_assets.rules.config import QualityThresholds

    paper = QualityThresholds().applied()
    differ: dict[str, set[str]] = {}
    for entries in recipe.get(NAME.quality_filtered, {}).values():
        try:
            used = json.loads(entries.get("thresholds", "{}"))
        except ValueError:
            continue
        for key, value in used.items():  # an older key, where a run set it, is in ngram_min_count
            if key in paper and value != paper[key]:
                differ.setdefault(key, set()).add(json.dumps(value))
    if not differ:
        return None
    parts = [f"`{key}` {' / '.join(sorted(values))} (paper: {json.dumps(paper[key])})"
             for key, values in sorted(differ.items())]
    return f"Quality thresholds differ from the paper's: {', '.join(parts)}."


def rule_text(max_pass_rate: float, inclusive: bool, samples: int | None) -> str:
    """"pass rate = 0 over 4 student samples" (a pass rate is never below 0), "pass rate < 1 …"."""
    if inclusive and max_pass_rate == 0:
        rule = "pass rate = 0"
    else:
        rule = f"pass rate {'<=' if inclusive else '<'} {max_pass_rate:g}"
    return f"{rule} over {samples} student samples" if samples else rule


def _agreed(per_subset: Mapping[str, Mapping[str, str]], key: str) -> str | None:
    """The value every recorded partition has for `key` (None when absent or they differ)."""
    values = {entries[key] for entries in per_subset.values() if key in entries}
    return values.pop() if len(values) == 1 else None


def export_name(table: str, recipe: Mapping[str, Mapping[str, Mapping[str, str]]]) -> ExportName:
    """The name of an export of `table`; `recipe` is what `recorded_recipe` read."""
    if table not in RECIPE_TABLES:
        return ExportName(table, table, f"mmfr-assets {table}", None)
    from mmfr_assets.selection.configs import StudentRolloutsConfig

    short, paper = RECIPE_TABLES[table]
    config = recipe_config(table)
    recorded = recipe.get(table, {})
    bound, inclusive = _agreed(recorded, "max_pass_rate"), _agreed(recorded, "inclusive")
    samples = _agreed(recipe.get(NAME.student_rollouts, {}), "num_samples")
    max_pass_rate = float(bound) if bound is not None else config.max_pass_rate
    is_inclusive = inclusive == "True" if inclusive is not None else config.inclusive
    return ExportName(
        table, short, f"{paper} (mmfr-assets)",
        rule_text(max_pass_rate, is_inclusive, int(samples) if samples else StudentRolloutsConfig().num_samples),
        max_pass_rate, is_inclusive, recorded=bound is not None and inclusive is not None,
    )
