"""LLaMA-Factory layout, as its data/README.md documents for multimodal ShareGPT data:

    <root>/dataset_info.json         {"mmfr_<asset>": {"file_name", "formatting": "sharegpt",
                                      "columns": {"messages", "images"}, "tags": {...}}}
    <root>/mmfr_<asset>.json         [{"messages": [{"role": "user", "content": "<image>question"},
                                                    {"role": "assistant", "content": trace}],
                                       "images": ["images/<subset>/<id>.png"], ...}, ...]
    <root>/images/<subset>/<id>.<ext>

Image paths are relative to the folder holding dataset_info.json (LLaMA-Factory's dataset_dir,
its default media_dir). LLaMA-Factory counts `<image>` placeholders against `images`, so a
literal `<image>` inside a question is rewritten to `[image]` (counted in the card).
The JSON array is written row by row, never held in memory.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from mmfr_assets.exports.names import file_stem, subset_folder

IMAGE_TOKEN = "<image>"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def image_extension(data: bytes) -> str:
    """The file extension of encoded image bytes, from the format Pillow detects in the header."""
    with Image.open(io.BytesIO(data)) as image:
        fmt = (image.format or "png").lower()
    return {"jpeg": "jpg", "mpo": "jpg"}.get(fmt, fmt)


def sharegpt_record(row: dict, image_path: str | None) -> dict:
    """One training sample: the question (after the image placeholder) as the user turn, the
    reasoning trace as the assistant turn."""
    question = (row.get("question") or "").replace(IMAGE_TOKEN, "[image]")
    user = f"{IMAGE_TOKEN}{question}" if image_path is not None else question
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": row.get("response") or ""},
        ],
        "images": [image_path] if image_path is not None else [],
        "subset": row["subset"],
        "id": row["id"],
        "answer": row.get("answer"),
    }


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
                if IMAGE_TOKEN in (row.get("question") or ""):
                    self.placeholders_rewritten += 1
                self._out.write(("\n" if self._first else ",\n") + json.dumps(sharegpt_record(row, path), ensure_ascii=False))
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
