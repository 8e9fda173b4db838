"""LLaMA-Factory layout, as its data/README.md documents for multimodal ShareGPT data:

    <root>/dataset_info.json         {"mmfr_123k": {"file_name": "mmfr_123k",
                                      "formatting": "sharegpt",
                                      "columns": {"messages", "images", "system"}, "tags": {...}},
                                      "mmfr_difficulty_filtered": {...the same...}}
    <root>/mmfr_123k/train-00000.jsonl  {"messages": [{"role": "user", "content": "<image>question"},
                                                      {"role": "assistant", "content": trace}],
                                         "images": ["images/<subset>/<sha256>.png"],
                                         "system": "...", "subset", "id", "answer"}  one per line
    <root>/images/<subset>/<sha256 of the bytes>.<ext>

`file_name` names a folder: LLaMA-Factory's loader reads every file in it (all must share one
extension; `.jsonl` is its `json` type) with `datasets`' JSON builder, which reads JSON Lines
block by block (`jsonl.py`). The dataset is named after the recipe (`mmfr_123k`,
`mmfr_586k`, `dataset_names.py`); the earlier name `mmfr_<table>` is kept as a second entry
for the same files. Image paths are relative to the folder holding dataset_info.json
(LLaMA-Factory's dataset_dir, its default media_dir). LLaMA-Factory counts `<image>`
placeholders against `images`: each user turn gets exactly one (`turns.user_turn`).

Exporting into a folder that already holds an export adds this export's datasets to the
`dataset_info.json` there (`previous_info`): entries of the same name are replaced, others kept;
images are named by their content, so the same image is one file however many rows and
exports show it (`files.py`, which also writes them from a few threads).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mmfr_assets.exports.dataset_names import ExportName
from mmfr_assets.files import ParallelFiles, content_name
from mmfr_assets.exports.jsonl import DEFAULT_SHARD_BYTES, ShardedJsonLines
from mmfr_assets.files import subset_folder
from mmfr_assets.exports.turns import (
    IMAGE_TOKEN,
    TrainingFormat,
    assistant_turn,
    trace_notes,
    user_turn,
    with_caption,
)
from mmfr_assets.files import image_extension

__all__ = ["IMAGE_TOKEN", "LlamaFactoryWriter", "dataset_entry", "sharegpt_record", "user_turn"]

DATASET_INFO = "dataset_info.json"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def sharegpt_record(row: dict, image_path: str | None, fmt: TrainingFormat = TrainingFormat()) -> tuple[dict, Counter]:
    """One training sample: the question (after the caption when `fmt.caption_context`) with its
    image placeholder as the user turn, the trace in the template's thinking markers as the
    assistant turn, the system prompt; and what had to be adapted (counts for the card)."""
    notes: Counter = Counter()
    question = row.get("question") or ""
    if fmt.caption_context:
        question, had_caption = with_caption(question, row.get("caption"))
        notes["rows without a caption to add"] += not had_caption
    user, rewritten = user_turn(question, image_path is not None)
    notes["extra <image> placeholders rewritten to [image]"] += rewritten
    assistant, _ = assistant_turn(row.get("response"), fmt)
    notes.update(trace_notes(row.get("response")))
    record = {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
        "images": [image_path] if image_path is not None else [],
    }
    if fmt.system_prompt:
        record["system"] = fmt.system_prompt
    # Always strings (never null) so every JSON Lines block infers the same column types.
    record.update(subset=row["subset"], id=row["id"], answer=row.get("answer") or "")
    return record, notes


def dataset_entry(folder: str, fmt: TrainingFormat) -> dict:
    """The dataset_info.json entry of a JSON Lines folder."""
    columns = {"messages": "messages", "images": "images"}
    if fmt.system_prompt:
        columns["system"] = "system"
    return {"file_name": folder, "formatting": "sharegpt", "columns": columns, "tags": TAGS}


def read_dataset_info(root: Path) -> dict:
    """The dataset_info.json of an existing export folder ({} when there is none)."""
    path = root / DATASET_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): cannot add datasets to it") from error
    if not isinstance(info, dict):
        raise ValueError(f"{path} is not a JSON object: cannot add datasets to it")
    return info


class LlamaFactoryWriter:
    name = "llamafactory"

    def __init__(
        self,
        root: Path,
        name: ExportName,
        fmt: TrainingFormat = TrainingFormat(),
        *,
        previous_info: dict | None = None,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
    ) -> None:
        self.root = root
        self.export_name = name
        self.fmt = fmt
        self.dataset = name.dataset
        self.datasets = (name.dataset, *name.aliases)
        self.previous_info = dict(previous_info or {})
        self.lines = ShardedJsonLines(root / name.dataset, shard_bytes)
        self.files = ParallelFiles()
        self.notes: Counter = Counter()

    @property
    def placeholders_rewritten(self) -> int:
        return self.notes["extra <image> placeholders rewritten to [image]"]

    def write_subset(self, subset: str, rows) -> int:
        folder = self.root / "images" / subset_folder(subset)
        folder_made = False
        written = 0
        for batch, images in rows:
            for row, data in zip(batch.to_pylist(), images):
                path = None
                if data is not None:
                    if not folder_made:
                        folder.mkdir(parents=True, exist_ok=True)
                        folder_made = True
                    name = content_name(data, image_extension(data))
                    self.files.write(folder / name, data)
                    path = f"images/{folder.name}/{name}"
                record, notes = sharegpt_record(row, path, self.fmt)
                self.notes.update(notes)
                self.lines.write(record)
                written += 1
        self.files.flush()
        return written

    def finish(self) -> None:
        if not self.lines.shards:
            self.lines.next_shard()  # an empty export still has its (empty) data folder
        self.lines.close()
        entry = dataset_entry(self.dataset, self.fmt)
        info = {k: v for k, v in self.previous_info.items() if k not in self.datasets}
        info.update({dataset: dict(entry) for dataset in self.datasets})
        (self.root / DATASET_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        self.dataset_info = info

    def close(self) -> None:
        self.files.close()
        self.lines.close()
