"""Image columns as sources publish them, reduced to one row's bytes, path and image count.

A source image column can hold an `Image` feature (a struct of bytes and path), raw bytes, a
file path (absolute, or relative to the dataset folder or the subset's folder), or a list of
any of these (`images`). `collected` stores the first image's bytes and the number of images
the row had, so that cleaning can reject a row with several images with its own reason instead
of silently training on the first one.

Row-wise Python on purpose: one value per row, and files must be read one by one anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class RowImage:
    data: bytes | None
    path: str | None
    count: int


def _one(value: Any, folders: Sequence[Path]) -> tuple[bytes | None, str | None]:
    """(bytes, path) of one image value (struct dict, bytes or path string)."""
    if value is None:
        return None, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data), path
        return (_read(path, folders), path) if path else (None, None)
    if isinstance(value, str):
        return _read(value, folders), value
    return None, None


def _read(path: str, folders: Sequence[Path]) -> bytes | None:
    """The file's bytes, or None (cleaning then rejects the row as `image_missing`)."""
    if "://" in path:  # never fetched: collection reads local files only
        return None
    candidate = Path(path).expanduser()
    tries = [candidate] if candidate.is_absolute() else [f / candidate for f in folders]
    for file in tries:
        if file.is_file():
            return file.read_bytes()
    return None


def row_images(column: pa.Array | pa.ChunkedArray, folders: Sequence[Path]) -> list[RowImage]:
    """Per row: the first image's bytes and path, and how many images the row holds."""
    out = []
    for value in column.to_pylist():
        images = [v for v in (value if isinstance(value, list) else [value]) if _present(v)]
        data, path = _one(images[0], folders) if images else (None, None)
        out.append(RowImage(data, path, len(images)))
    return out


def _present(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value.get("bytes")) or bool(value.get("path"))
    return value is not None and len(value) > 0
