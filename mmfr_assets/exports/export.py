"""Export a selected table for training: its rows with their images, in Hugging Face hub layout
(`datasets.load_dataset(out, subset)`) or LLaMA-Factory's ShareGPT layout.

The lake stores each image once (`collected`, or `cleaned` where cleaning changed it); an export
joins them back in one streaming pass per subset (`exports/source.py`), from tables pinned at
the Delta versions current when it started. Subsets whose tables are missing or inconsistent are
refused by name before anything is written; the export folder appears whole, replacing any
previous one, or not at all (`files.atomic_folder`) — a LLaMA-Factory export into a folder that
holds one carries the other datasets over (hard links) and adds its own to `dataset_info.json`.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from mmfr_assets.errors import InputError
from mmfr_assets.files import atomic_folder
from mmfr_assets.exports.card import DEFAULT_LICENSE, dataset_card, front_matter
from mmfr_assets.exports.dataset_names import ExportName, export_name
from mmfr_assets.exports.hub import HubWriter
from mmfr_assets.exports.jsonl import DEFAULT_SHARD_BYTES
from mmfr_assets.exports.llamafactory import LlamaFactoryWriter, read_dataset_info
from mmfr_assets.exports.recipe import recorded_recipe
from mmfr_assets.exports.source import EXPORTABLE, ExportSource, lineage
from mmfr_assets.exports.thinking import THINK_FORMATS
from mmfr_assets.exports.turns import TrainingFormat
from mmfr_assets.exports.verl import VerlWriter
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lake.shards import check_lake
from mmfr_assets.lineage import NAME
from mmfr_assets.planning.spend import recipe_spend, spend_lines

FORMATS = {"hub": HubWriter, "llamafactory": LlamaFactoryWriter, "verl": VerlWriter}
CARDS = "cards"  # LLaMA-Factory layout: one card per dataset; README.md shows them all


@dataclass
class ExportResult:
    out: Path
    format: str
    counts: dict[str, int]
    versions: dict[str, int | None]
    origins: dict[str, Counter] = field(default_factory=dict)
    name: ExportName | None = None
    datasets: tuple[str, ...] = ()  # LLaMA-Factory: this export's dataset names
    all_datasets: tuple[str, ...] = ()  # LLaMA-Factory: every dataset now in dataset_info.json
    notes: Counter = field(default_factory=Counter)


def _counting_origins(rows, origins: Counter):
    for batch, images in rows:
        for column in ("caption_origin", "response_origin"):
            if column in batch.schema.names:
                for value in batch.column(column).to_pylist():
                    origins[f"{column.removesuffix('_origin')}: {value}"] += 1
        yield batch, images


def _link_or_copy(source: str, target: str) -> None:
    """Hard link (no bytes copied for the images of a large export), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _carry_over(previous: Path, staging: Path, info: dict, replaced: Sequence[str]) -> None:
    """Bring a previous LLaMA-Factory export into `staging`, minus the files of the datasets
    this export replaces (`replaced`: dataset names) and the README (rewritten). Hard links:
    the previous export stays untouched until the rename, and a failure leaves it whole."""
    kept_files = {entry.get("file_name") for k, entry in info.items() if k not in replaced}
    dropped = {info[k].get("file_name") for k in replaced if k in info} - kept_files
    dropped |= {f"{CARDS}/{k}.md" for k in replaced}
    dropped.add("README.md")

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(previous)
        return {n for n in names if (relative / n).as_posix() in dropped}

    shutil.copytree(previous, staging, dirs_exist_ok=True, copy_function=_link_or_copy, ignore=ignore)
    legacy_card = previous / "README.md"
    kept = [k for k in info if k not in replaced]
    if kept and legacy_card.is_file() and not (previous / CARDS).is_dir():
        # An export from before cards/ existed: its README is the card of what it holds.
        (staging / CARDS).mkdir(exist_ok=True)
        _link_or_copy(str(legacy_card), str(staging / CARDS / f"{kept[0]}.md"))


def _llamafactory_readme(staging: Path, info: dict) -> str:
    cards = sorted((staging / CARDS).glob("*.md"))
    lines = [
        "# mmfr-assets export for LLaMA-Factory",
        "",
        "Train with `dataset_dir:` this folder and `dataset:` one or more of: "
        + ", ".join(f"`{k}`" for k in info) + " (see `dataset_info.json`).",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(c.read_text(encoding="utf-8") for c in cards)


def export(
    lake: LakeResource,
    asset: str,
    subsets: Sequence[str],
    out_dir: str | Path,
    *,
    fmt: str = "hub",
    instance: dg.DagsterInstance | None = None,
    batch_size: int = 256,
    training: TrainingFormat = TrainingFormat(),
    license: str = DEFAULT_LICENSE,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> ExportResult:
    """Export `asset` for `subsets` into `out_dir` in format `fmt`. A hub export replaces the
    folder whole; a LLaMA-Factory export into a folder holding one adds its datasets to it."""
    if fmt not in FORMATS:
        raise InputError(f"export: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if training.think_format not in THINK_FORMATS:
        raise InputError(f"export: unknown think format {training.think_format!r}; choose one of "
                         f"{', '.join(THINK_FORMATS)}")
    if (fmt == "verl") != (asset == NAME.rl_selected) and fmt != "hub":
        raise InputError(f"export: --format {fmt} does not fit --asset {asset}: verl writes the RL set's "
                         "prompts (--asset rl_selected), llamafactory the SFT tables' traces")
    check_lake(lake.location(NAME.collected))  # a subset's shards are read together: all of them
    source = ExportSource(lake, asset)
    source.refuse_unusable(subsets)
    recipe = recorded_recipe(instance, lineage(asset), subsets)
    name = export_name(asset, recipe)
    out = Path(out_dir)
    previous_info: dict = {}
    if fmt == "llamafactory" and out.is_dir():
        try:
            previous_info = read_dataset_info(out)
        except ValueError as error:
            raise InputError(f"export: {error}") from error
    result = ExportResult(out, fmt, {}, dict(source.versions), name=name)
    with atomic_folder(out) as staging:
        writer = FORMATS[fmt](staging, name, training, previous_info=previous_info, shard_bytes=shard_bytes)
        if previous_info:
            _carry_over(out.absolute(), staging, previous_info, getattr(writer, "datasets", ()))
        try:
            for subset in subsets:
                origins = result.origins.setdefault(subset, Counter())
                rows = source.rows(subset, batch_size=batch_size)
                try:
                    result.counts[subset] = writer.write_subset(subset, _counting_origins(rows, origins))
                finally:
                    rows.close()  # ends the table scans now, even when the writer failed
            writer.finish()
        finally:
            if hasattr(writer, "close"):
                writer.close()
        result.notes = writer.notes
        result.datasets = getattr(writer, "datasets", ())
        card = dataset_card(
            asset=asset,
            lake_uri=lake.uri,
            fmt=fmt,
            counts=result.counts,
            versions=result.versions,
            recipe=recipe,
            origins=result.origins,
            funnel=source.funnel(subsets),
            name=name,
            training=training,
            notes=writer.notes,
            out=str(out_dir),
            datasets_named=result.datasets,
            license=license,
            spend=spend_lines(recipe_spend(lake, subsets)),
        )
        if fmt == "hub":
            header = front_matter(writer.configs, writer.sizes, pretty_name=name.pretty, license=license)
            (staging / "README.md").write_text(header + "\n" + card, encoding="utf-8")
        elif fmt == "verl":
            (staging / "README.md").write_text(card, encoding="utf-8")
        else:
            (staging / CARDS).mkdir(exist_ok=True)
            (staging / CARDS / f"{name.dataset}.md").write_text(card, encoding="utf-8")
            info = writer.dataset_info
            result.all_datasets = tuple(info)
            (staging / "README.md").write_text(_llamafactory_readme(staging, info), encoding="utf-8")
    return result


def export_table(
    lake: LakeResource, table: str, subsets: Sequence[str], out_dir: str | Path
) -> dict[str, int]:
    """Hub-layout export of `table` (rows per subset); see `export`."""
    return export(lake, table, subsets, out_dir).counts


__all__ = ["EXPORTABLE", "FORMATS", "ExportResult", "TrainingFormat", "export", "export_table"]
