"""The dataset card (README.md) of an export: the hub YAML `load_dataset` reads (configs,
`dataset_info`, license, categories), usage for `datasets` and LLaMA-Factory, the training
format (thinking markers, system prompt, caption as context), and the recipe a trained model can be traced back to: the tables and their Delta
versions, thresholds, models and prompt versions recorded by each materialization, where each
row's caption and trace came from, and the funnel."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from mmfr_assets.lineage import NAME


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


DEFAULT_LICENSE = "other"
DEFAULT_LICENSE_NAME = "research-only"
LICENSE_WORDING = (
    "Research use only. Rows, images and answers come from public datasets under their own "
    "terms (see each source dataset); captions and traces were written by models whose terms "
    "may restrict use. Check every source's license before any other use."
)
TASK_CATEGORIES = ["image-text-to-text", "visual-question-answering"]
ALL_CONFIG = "all"


def size_category(rows: int) -> str:
    """The hub's `size_categories` bucket of a row count."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if rows < bound:
            return label
    return "n>10M"


def _split_info(features, num_examples: int, num_bytes: int, download_size: int):
    import datasets

    return datasets.DatasetInfo(
        features=features,
        splits=datasets.SplitDict({"train": datasets.SplitInfo("train", num_bytes, num_examples)}),
        download_size=download_size,
        dataset_size=num_bytes,
    )


def front_matter(
    configs: Mapping[str, str],
    sizes: Mapping | None = None,
    *,
    pretty_name: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """The card's YAML: `configs` (one per subset, plus `all`, the default, over every subset:
    `load_dataset(folder)` reads it), `dataset_info` (features, splits, num_examples, num_bytes
    per config, written by `datasets`' own `DatasetInfosDict`, which `load_dataset` reads back),
    license, task categories, size category, pretty name, tags.

    configs: config name (the subset) -> its folder; sizes: config name -> `hub.SplitSize`."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    sizes = dict(sizes or {})
    entries = [
        {"config_name": name, "data_files": [{"split": "train", "path": f"{folder}/train-*.parquet"}]}
        for name, folder in configs.items()
    ]
    if configs and ALL_CONFIG not in configs:
        entries.insert(0, {
            "config_name": ALL_CONFIG,
            "default": True,
            "data_files": [{"split": "train",
                            "path": [f"{folder}/train-*.parquet" for folder in configs.values()]}],
        })
    total = sum(size.num_examples for size in sizes.values())
    extra = {"license_name": DEFAULT_LICENSE_NAME} if license == DEFAULT_LICENSE else {}
    data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        task_categories=TASK_CATEGORIES,
        size_categories=[size_category(total)],
        tags=["mmfr-assets", "multimodal", "reasoning"],
        configs=entries,
        **extra,
    )
    infos = {name: _split_info(size.features, size.num_examples, size.num_bytes, size.download_size)
             for name, size in sizes.items()}
    if sizes and ALL_CONFIG not in configs:
        first = next(iter(sizes.values()))
        infos[ALL_CONFIG] = _split_info(
            first.features, total, sum(s.num_bytes for s in sizes.values()),
            sum(s.download_size for s in sizes.values()))
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return "---\n" + data.to_yaml() + "\n---\n"


def _usage(fmt: str, out: str, name, datasets_named: Sequence[str], configs: Sequence[str],
           think_format: str) -> list[str]:
    """How to load the export with `datasets` and with LLaMA-Factory."""
    from mmfr_assets.exports.thinking import TEMPLATES

    templates = TEMPLATES[think_format]
    if think_format == "raw":
        template = "template: qwen2_vl  # traces as stored (--think-format raw): a template without thinking markers"
    elif not templates:
        template = (f"# no LLaMA-Factory template takes images with the `{think_format}` thinking markers: "
                    "export with --think-format qwen3 for qwen3_vl")
    else:
        others = f"  # thinking markers `{think_format}`; also {', '.join(templates[1:])}" if templates[1:] else ""
        template = f"template: {templates[0]}{others}"
    subset = configs[0] if configs else "<subset>"  # a subset with rows: only those have a config
    if fmt == "verl":
        return [
            "verl (PPO/GRPO trainer config; `RLHFDataset` reads `prompt`, `images`, `data_source`, "
            "`reward_model`, `extra_info`):",
            "```yaml",
            f"data.train_files: {out}/train.parquet",
            "data.image_key: images",
            "custom_reward_function.path: <path of mmfr_assets/rl/reward.py>  # data_source is mmfr/<subset>",
            "```",
        ]
    if fmt == "hub":
        return [
            "```python",
            "from datasets import load_dataset",
            f'rows = load_dataset("{out}", split="train")  # every subset (config "all", the default)',
            f'one = load_dataset("{out}", "{subset}", split="train")  # one subset',
            "```",
            "For LLaMA-Factory, export the same table with `mmfr export OUT --format llamafactory "
            f"--asset {name.table}` and train with `dataset_dir: OUT` and `dataset: {name.dataset}`.",
        ]
    return [
        "LLaMA-Factory (training YAML):",
        "```yaml",
        f"dataset_dir: {out}",
        f"dataset: {datasets_named[0]}",
        template,
        "```",
        "`datasets` (the same JSON Lines LLaMA-Factory reads):",
        "```python",
        "from datasets import load_dataset",
        f'rows = load_dataset("json", data_files="{out}/{name.dataset}/*.jsonl", split="train")',
        "```",
    ]


def _training_format(fmt: str, training, notes: Mapping[str, int]) -> list[str]:
    from mmfr_assets.exports.thinking import THINK_FORMATS

    if fmt == "verl":
        lines = [
            "Prompts for RL with a rule reward: the user turn is the RL rollout prompt "
            "(`prompts/rl_rollout.user.txt`, the text the pass rates were measured with) with one "
            "`<image>` per image; `reward_model.ground_truth` is the reference as the verifier reads "
            "it; `extra_info` holds the subset, id, pass rates and reference form.",
        ]
        if any(notes.values()):
            lines += ["", *_table(["adapted", "rows"], [(k, v) for k, v in sorted(notes.items()) if v])]
        return lines

    markers = THINK_FORMATS[training.think_format]
    marks = ("as the trace was written" if markers is None
             else f"`{markers[0]!r}` … `{markers[1]!r}`".replace("`'", "`").replace("'`", "`"))
    lines = [
        "The targets are reasoning traces that end in `<answer>…</answer>` (most questions do "
        "not ask for that format; subsets whose published answers carry no tags are counted "
        "below).",
        f"- thinking markers: `{training.think_format}` ({marks}); "
        + ("the assistant turn is written with them" if fmt == "llamafactory"
           else "`response_normalized` holds the trace with them, `response` the trace as stored"),
    ]
    if fmt == "llamafactory":
        system = f"`{training.system_prompt}`" if training.system_prompt else "none"
        lines += [
            f"- system prompt (the `system` column): {system}",
            "- caption as context: " + ("on: the user turn starts with the image's caption"
                                        if training.caption_context else "off (as the paper trains)"),
            "- `<image>`: exactly one placeholder per image in the user turn.",
        ]
    else:
        lines += [
            f"- recommended system prompt: `{training.system_prompt}`" if training.system_prompt
            else "- system prompt: none",
            "- `question` keeps the dataset's `<image>` placeholders; `question_plain` is the "
            "question without them, for chat templates that place the image themselves.",
        ]
    if any(notes.values()):
        lines += ["", *_table(["adapted", "rows"], [(k, v) for k, v in sorted(notes.items()) if v])]
    return lines


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
    name=None,
    training=None,
    notes: Mapping[str, int] | None = None,
    out: str = "OUT",
    datasets_named: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
    spend: Sequence[str] = (),
) -> str:
    """The card; `spend` is the "what each kept row cost" section's lines (`planning.spend`)."""
    from mmfr_assets.exports.dataset_names import export_name, thresholds_note
    from mmfr_assets.exports.turns import TrainingFormat

    name = name or export_name(asset, recipe)
    training = training or TrainingFormat()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {name.pretty}: `{asset}` from the mmfr-assets lake",
        "",
    ]
    if name.rule is not None:
        source = ("as the materializations recorded" if name.recorded
                  else "the asset's config default: no materialization record was available")
        lines += [f"**Recipe {name.short.upper()}: keep the rows with {name.rule}** "
                  f"({name.bound}; {source})."
                  + (f" This differs from the paper's {name.short.upper()} rule ({name.paper_rule}): "
                     "the asset was configured otherwise." if name.paper_rule else ""), ""]
    note = thresholds_note(recipe)
    lines += [f"**{note}**", ""] if note else []
    lines += _coverage_lines(asset, funnel, recipe)
    with_rows = sorted(subset for subset, rows in counts.items() if rows)
    empty = len(counts) - len(with_rows)
    lines += [
        f"{sum(counts.values())} rows in {len(with_rows)} subsets with their images, exported "
        f"{now} ({fmt} layout) from `{lake_uri}`"
        + (f" ({empty} more subsets selected have no rows here: no config is written for them)." if empty else "."),
        "",
        "## Usage",
        *_usage(fmt, out, name, list(datasets_named) or [name.dataset], with_rows,
               training.think_format),
        "",
        "## Training format",
        *_training_format(fmt, training, notes or {}),
        "",
        "## License",
        f"`{license}`" + (f" ({DEFAULT_LICENSE_NAME}): {LICENSE_WORDING}" if license == DEFAULT_LICENSE else ""),
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
    if spend:
        lines += ["", "## What each kept row cost", *spend]
    lines += ["", "## Funnel", "Rows kept by each stage, and rows dropped by filter and reason:"]
    lines += _table(
        ["subset", "stage", "filter", "reason", "rows"],
        [(r["subset"], r["stage"], r["filter"], r["reason"], r["rows"]) for r in funnel],
    )
    return "\n".join(lines) + "\n"


def _coverage_lines(asset: str, funnel: Sequence[Mapping],
                    recipe: Mapping[str, Mapping[str, Mapping[str, str]]] = {}) -> list[str]:  # noqa: B006
    """Where the lake was built in the student-first order (issue 33), what the set covers, in
    plain words at the top of the card; nothing for the paper's order. A difficulty recipe is the
    paper order's set only where the target's rule keeps every pass rate the recipe keeps (the
    123K recipe in a 586K-target lake; not the 586K recipe in a 123K-target lake)."""
    from mmfr_assets.student_first.coverage import coverage_text, skipped_counts
    from mmfr_assets.student_first.target import TARGETS, covers

    skipped, distilled = skipped_counts(funnel)
    if not skipped:
        return []
    built = next((TARGETS[entries["target"]] for entries in recipe.get(NAME.distilled, {}).values()
                  if entries.get("target") in TARGETS), None)
    kept_by = next((t for t in TARGETS.values() if t.recipe == asset), None)
    if kept_by is None or built is None:
        return [f"**This set {coverage_text(skipped, distilled)}.**", ""]
    head = (f"**Built in the student-first order for the {built.label} target: {skipped:,} deduplicated rows "
            f"whose pass rate cannot pass the {built.label} rule ({built.rule}) were never distilled (`teacher_skipped_easy`, in the "
            "funnel). ")
    if covers(built, kept_by):
        return [head + "This recipe's rows are the ones the paper's order keeps; the tables before it "
                f"(`distilled`, `quality_filtered`) cover only the {distilled:,} distilled rows.**", ""]
    return [head + f"This {kept_by.label} recipe therefore holds only its rows that also pass the {built.label} rule: "
            f"a subset of the paper's {kept_by.label} set, not the set itself.**", ""]


def decontamination_lines(recipe: Mapping[str, Mapping[str, Mapping[str, str]]],
                          funnel: Sequence[Mapping]) -> list[str]:
    """Which benchmarks `deduplicated` checked and how many rows each removed (summed over the
    exported subsets, from the materializations' `decontamination/benchmarks`), and the
    near-duplicates removed (from the funnel)."""
    checked: dict[str, list[int]] = {}  # benchmark -> [items, rows removed]
    for entries in recipe.get(NAME.deduplicated, {}).values():
        for name, figures in json.loads(entries.get("decontamination/benchmarks", "{}")).items():
            seen = checked.setdefault(name, [figures["items"], 0])
            seen[1] += figures["rows_removed"]
    removed = {r: sum(int(x["rows"]) for x in funnel
                      if x["stage"] == NAME.deduplicated and x["reason"] == r)
               for r in ("duplicate_of", "contaminated")}
    lines = ["## Near-duplicates and benchmark decontamination",
             f"`deduplicated` removed {removed['duplicate_of']} near-duplicates of rows kept "
             f"elsewhere and {removed['contaminated']} rows leaked from benchmarks."]
    if checked:
        lines += ["Benchmarks checked (13-word n-grams of the questions, perceptual hashes of "
                  "the images):"]
        lines += _table(["benchmark", "items", "rows removed"],
                        [(n, v[0], v[1]) for n, v in sorted(checked.items())])
    elif recipe.get(NAME.deduplicated):
        lines.append("No benchmark was configured: the rows were not checked against any.")
    else:
        lines.append("Which benchmarks were checked is unknown (no materialization records).")
    return lines
