"""The dataset card (README.md) of an export: the hub `configs` front matter `load_dataset`
reads, and the recipe a trained model can be traced back to: the tables and their Delta
versions, thresholds, models and prompt versions recorded by each materialization, where each
row's caption and trace came from, and the funnel."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

import yaml


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def front_matter(configs: Mapping[str, str]) -> str:
    """configs: config name (the subset) -> its folder."""
    data = {
        "configs": [
            {"config_name": name, "data_files": [{"split": "train", "path": f"{folder}/train-*.parquet"}]}
            for name, folder in configs.items()
        ],
        "tags": ["mmfr-assets", "multimodal", "reasoning"],
    }
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n"


def dataset_card(
    *,
    asset: str,
    lake_uri: str,
    fmt: str,
    counts: Mapping[str, int],
    versions: Mapping[str, int | None],
    recipe: Mapping[str, Mapping[str, Mapping[str, str]]],
    origins: Mapping[str, Counter],
    funnel: Sequence[Mapping],
) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# `{asset}` from the mmfr-assets lake",
        "",
        f"{sum(counts.values())} rows in {len(counts)} subsets with their images, exported "
        f"{now} ({fmt} layout) from `{lake_uri}`.",
        "",
        "## Rows per subset",
        *_table(["subset", "rows"], sorted(counts.items())),
        "",
        "## Source tables",
        "Each table was read at this Delta version (`DeltaTable(uri, version=...)` reads it again):",
        *_table(["table", "Delta version"], [(t, v if v is not None else "absent") for t, v in versions.items()]),
        "",
        "## Recipe",
    ]
    if recipe:
        lines.append(
            "What the latest materialization of each partition recorded (thresholds, models, "
            "prompt versions):"
        )
        rows = []
        for step, per_subset in recipe.items():
            by_value: dict[tuple[str, str], list[str]] = {}
            for subset, entries in per_subset.items():
                for key, value in entries.items():
                    if key != "run_id":
                        by_value.setdefault((key, value), []).append(subset)
            for (key, value), subsets in sorted(by_value.items()):
                scope = "all" if len(subsets) == len(counts) else ", ".join(sorted(subsets))
                rows.append((step, key, value, scope))
        lines += _table(["step", "setting", "value", "subsets"], rows)
    else:
        lines.append(
            "No materialization records were available (the export ran without the Dagster "
            "instance that made the tables): thresholds, models and prompt versions are unknown."
        )
    lines += ["", "Where each exported row's caption and trace came from (`dataset`: the source "
              "dataset's own annotation; `generated`: our teacher endpoint):"]
    lines += _table(
        ["subset", "origin", "rows"],
        [(s, o, n) for s, c in sorted(origins.items()) for o, n in sorted(c.items())],
    )
    lines += ["", *decontamination_lines(recipe, funnel)]
    lines += ["", "## Funnel", "Rows kept by each stage, and rows dropped by filter and reason:"]
    lines += _table(
        ["subset", "stage", "filter", "reason", "rows"],
        [(r["subset"], r["stage"], r["filter"], r["reason"], r["rows"]) for r in funnel],
    )
    return "\n".join(lines) + "\n"


def decontamination_lines(recipe: Mapping[str, Mapping[str, Mapping[str, str]]],
                          funnel: Sequence[Mapping]) -> list[str]:
    """Which benchmarks `deduplicated` checked and how many rows each removed (summed over the
    exported subsets, from the materializations' `decontamination/benchmarks`), and the
    near-duplicates removed (from the funnel)."""
    checked: dict[str, list[int]] = {}  # benchmark -> [items, rows removed]
    for entries in recipe.get("deduplicated", {}).values():
        for name, figures in json.loads(entries.get("decontamination/benchmarks", "{}")).items():
            seen = checked.setdefault(name, [figures["items"], 0])
            seen[1] += figures["rows_removed"]
    removed = {r: sum(int(x["rows"]) for x in funnel
                      if x["stage"] == "deduplicated" and x["reason"] == r)
               for r in ("duplicate_of", "contaminated")}
    lines = ["## Near-duplicates and benchmark decontamination",
             f"`deduplicated` removed {removed['duplicate_of']} near-duplicates of rows kept "
             f"elsewhere and {removed['contaminated']} rows leaked from benchmarks."]
    if checked:
        lines += ["Benchmarks checked (13-word n-grams of the questions, perceptual hashes of "
                  "the images):"]
        lines += _table(["benchmark", "items", "rows removed"],
                        [(n, v[0], v[1]) for n, v in sorted(checked.items())])
    elif recipe.get("deduplicated"):
        lines.append("No benchmark was configured: the rows were not checked against any.")
    else:
        lines.append("Which benchmarks were checked is unknown (no materialization records).")
    return lines
