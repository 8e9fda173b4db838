"""JSON Lines written in shards of bounded size.

One JSON array cannot be read in pieces: `datasets` (which LLaMA-Factory loads files with)
falls back to pandas and holds the whole file — many GB at 586K rows of real-length traces.
JSON Lines are read block by block by pyarrow's JSON reader, and shards keep each file to a
size a reader, a copy or an upload handles; we write one record at a time, so memory on the
writing side is one record too.
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


class ShardedJsonLines:
    """`folder/train-00000.jsonl`, `train-00001.jsonl`, …: a new shard once one holds
    `max_bytes` (a record is never split). Nothing but shards is written in `folder`: a loader
    given the folder (LLaMA-Factory's `file_name` of a folder) reads every file in it."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.folder = folder
        self.max_bytes = max_bytes
        self.shards: list[Path] = []
        self.records = 0
        self._out = None
        self._size = 0

    def write(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        if self._out is None or (self._size and self._size + len(line) > self.max_bytes):
            self.next_shard()
        self._out.write(line)
        self._size += len(line)
        self.records += 1

    def next_shard(self) -> None:
        """Close the current shard and start the next (also: an empty export's one shard)."""
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"train-{len(self.shards):05d}.jsonl"
        self._out = open(path, "wb")
        self.shards.append(path)
        self._size = 0

    def close(self) -> None:
        if self._out is not None and not self._out.closed:
            self._out.close()
