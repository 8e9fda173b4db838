"""`mmfr export`: a selected table with its images, for training (hub, LLaMA-Factory or verl
layout; mmfr_assets/exports)."""

from __future__ import annotations

import argparse
import os
import sys

from mmfr_assets.cli.inputs import build_partition_keys, lake_of, open_instance, parse_subsets
from mmfr_assets.exports.thinking import DEFAULT_THINK_FORMAT, THINK_FORMATS
from mmfr_assets.exports.turns import DEFAULT_SYSTEM_PROMPT
from mmfr_assets.lineage import EXPORTABLE as _EXPORTABLE, NAME, NODES

# Tables of training rows (question, answer, response, ...): the model steps' own tables
# (answer_verdicts, student_rollouts) hold verdicts and pass rates, not rows to train on.
EXPORTABLE = tuple(name for name in NODES if name in _EXPORTABLE)  # in lineage order


def add_parser(commands) -> None:
    """`mmfr export`'s arguments."""
    parser = commands.add_parser(
        "export", help="write a selected table with its images for training (hub or LLaMA-Factory)"
    )
    parser.add_argument(
        "out", nargs="?",
        help="output folder (default exports/mmfr_<123k|586k|table>-<format>); a hub export "
        "replaces it whole, a LLaMA-Factory export adds its datasets to the one there",
    )
    parser.add_argument(
        "--asset", default=NAME.difficulty_filtered, choices=EXPORTABLE,
        help="difficulty_filtered (123K recipe), difficulty_filtered_586k (586K recipe), "
        "rl_selected (the RL set), quality_filtered or distilled",
    )
    parser.add_argument("--format", default="hub", choices=["hub", "llamafactory", "verl"],
                               help="hub, llamafactory (SFT traces), or verl (the RL set, --asset rl_selected)")
    parser.add_argument("--subsets", default="all")
    parser.add_argument(
        "--think-format", default=DEFAULT_THINK_FORMAT, choices=list(THINK_FORMATS),
        help="thinking markers of the chat template trained with: qwen3 (default; '<think>\\n' "
        "... '\\n</think>\\n\\n': qwen3_vl, qwen3_5, qwen3_6, glm4_5v, mimo_vl), plain ('<think>' "
        "... '</think>': no LLaMA-Factory template with images), kimi (kimi_vl), gemma4 (gemma4), "
        "raw (the trace as stored)",
    )
    parser.add_argument(
        "--system-prompt", default=DEFAULT_SYSTEM_PROMPT,
        help="LLaMA-Factory system prompt (default: one stating the <think>/<answer> format)",
    )
    parser.add_argument("--no-system-prompt", action="store_true", help="set no system prompt")
    parser.add_argument(
        "--caption-context", action="store_true",
        help="LLaMA-Factory: start the user turn with the image's caption (off: as the paper trains)",
    )
    parser.add_argument(
        "--license", default="other",
        help="the card's license (default 'other', named research-only: the sources' terms)",
    )
    parser.add_argument(
        "--shard-mb", type=int, default=256, help="LLaMA-Factory: JSON Lines shard size in MB",
    )
    parser.set_defaults(handler=export)



def _default_export_folder(asset: str, fmt: str) -> str:
    """`exports/mmfr_123k-hub`: the recipe (or table) and the layout in the folder's name."""
    from mmfr_assets.exports.dataset_names import RECIPE_TABLES

    short = RECIPE_TABLES.get(asset, (asset,))[0]
    return f"exports/mmfr_{short}-{fmt}"


def export(args: argparse.Namespace) -> int:
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.errors import InputError
    from mmfr_assets.exports.export import TrainingFormat
    from mmfr_assets.exports.export import export as export_rows

    defs = build_definitions()
    subsets = parse_subsets(args.subsets, build_partition_keys(defs))
    out = args.out or _default_export_folder(args.asset, args.format)
    if args.shard_mb < 1:
        raise InputError(f"export: --shard-mb must be at least 1 (got {args.shard_mb})")
    training = TrainingFormat(
        think_format=args.think_format,
        system_prompt="" if args.no_system_prompt else args.system_prompt,
        caption_context=args.caption_context,
    )
    # The instance of DAGSTER_HOME holds what each materialization recorded (thresholds,
    # models, prompt versions) for the dataset card; without one the card says it is unknown.
    instance = open_instance() if os.environ.get("DAGSTER_HOME") else None
    try:
        result = export_rows(
            lake_of(defs), args.asset, subsets, out, fmt=args.format, instance=instance,
            training=training, license=args.license, shard_bytes=args.shard_mb * 1024 * 1024,
        )
    except InputError as error:
        print(f"mmfr: {error}", file=sys.stderr)
        return 2
    finally:
        if instance is not None:
            instance.dispose()
    for subset, rows in result.counts.items():
        print(f"{subset}: {rows} rows")
    name = result.name
    if name is not None and name.rule is not None:
        print(f"recipe {name.short.upper()}: {name.rule} ({name.bound})")
    if args.format == "hub":
        print(f"wrote {out}: datasets.load_dataset({out!r}) (every subset) or "
              f"datasets.load_dataset({out!r}, <subset>)")
    elif args.format == "verl":
        print(f"wrote {out}: verl data.train_files={out}/train.parquet")
    else:
        others = [d for d in result.all_datasets if d not in result.datasets]
        print(f"wrote {out}: LLaMA-Factory dataset_dir={out!r}, dataset={result.datasets[0]}"
              + (f" (also in dataset_info.json: {', '.join(others)})" if others else ""))
    return 0
