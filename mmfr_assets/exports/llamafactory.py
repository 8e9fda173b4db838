"""LLaMA-Factory layout, as its data/README.md documents for multimodal ShareGPT data:

    <root>/dataset_info.json         {"mmfr_<asset>": {"file_name", "formatting": "sharegpt",
                                      "columns": {"messages", "images"}, "tags": {...}}}
    <root>/mmfr_<asset>.json         [{"messages": [{"role": "user", "content": "<image>question"},
                                                    {"role": "assistant", "content": trace}],
                                       "images": ["images/<subset>/<id>.png"], ...}, ...]
    <root>/images/<subset>/<id>.<ext>

Image paths are relative to the folder holding dataset_info.json (LLaMA-Factory's dataset_dir,
its default media_dir). LLaMA-Factory counts `<image>` placeholders against `images`: each user turn
gets exactly one (`user_turn`).
The JSON array is written row by row, never held in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmfr_assets.image_files import image_extension

from mmfr_assets.exports.names import file_stem, subset_folder

IMAGE_TOKEN = "<image>"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def user_turn(question: str, has_image: bool) -> tuple[str, bool]:
    """The user turn with exactly as many `<image>` placeholders as images (LLaMA-Factory checks
    the count). Published questions often carry the placeholder already, where the dataset put
    it: the first one is kept there; none gets one in front; extra ones become `[image]`.
    Returns the text and whether any placeholder had to be rewritten."""
    if not has_image:
        return question.replace(IMAGE_TOKEN, "[image]"), IMAGE_TOKEN in question
    if IMAGE_TOKEN not in question:
        return IMAGE_TOKEN + question, False
    head, tail = question.split(IMAGE_TOKEN, 1)
    rewritten = IMAGE_TOKEN in tail
    return head + IMAGE_TOKEN + tail.replace(IMAGE_TOKEN, "[image]"), rewritten


def sharegpt_record(row: dict, image_path: str | None) -> tuple[dict, bool]:
    """One training sample: the question with its image placeholder as the user turn, the
    reasoning trace as the assistant turn; and whether a placeholder was rewritten."""
    user, rewritten = user_turn(row.get("question") or "", image_path is not None)
    record = {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": row.get("response") or ""},
        ],
        "images": [image_path] if image_path is not None else [],
        "subset": row["subset"],
        "id": row["id"],
        "answer": row.get("answer"),
    }
    return record, rewritten


class LlamaFactoryWriter:
    name = "llamafactory"

    def __init__(self, root: Path, asset: str) -> None:
        self.root = root
        self.dataset = f"mmfr_{asset}"
        self.file_name = f"{self.dataset}.json"
        self._out = open(root / self.file_name, "w", encoding="utf-8")
        self._out.write("[")
        self._first = True
        self.placeholders_rewritten = 0

    def write_subset(self, subset: str, rows) -> int:
        folder = self.root / "images" / subset_folder(subset)
        written = 0
        for batch, images in rows:
            for row, data in zip(batch.to_pylist(), images):
                path = None
                if data is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    name = f"{file_stem(row['id'])}.{image_extension(data)}"
                    (folder / name).write_bytes(data)
                    path = f"images/{folder.name}/{name}"
                record, rewritten = sharegpt_record(row, path)
                self.placeholders_rewritten += rewritten
                self._out.write(("\n" if self._first else ",\n") + json.dumps(record, ensure_ascii=False))
                self._first = False
                written += 1
        return written

    def finish(self) -> None:
        self._out.write("\n]\n")
        self._out.close()
        info = {
            self.dataset: {
                "file_name": self.file_name,
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
                "tags": TAGS,
            }
        }
        (self.root / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")

    def close(self) -> None:
        if not self._out.closed:
            self._out.close()
