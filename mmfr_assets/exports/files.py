"""Image files of a LLaMA-Factory export: named by their content, written from a few threads.

LLaMA-Factory reads images by path, so the export writes one file per distinct image. The
name is the SHA-256 of the bytes (`content_name`): rows showing the same image share one file,
and exports combined in one folder (export.py carries a previous one over by hard links) share
theirs — a file already there under that name holds those very bytes, so it is never written
again nor written through. Files are created exclusively (`xb`): two threads writing the same
image cannot interleave, the second finds the file and stops.

File creation, not bytes, is the cost (~1-1.5 ms per file on this machine's virtual disk, most
of it waiting on the filesystem with the GIL released), so a few threads write them. At most
`max_pending` writes are queued (memory stays bounded) and a failure is raised on the next
call, so an export never finishes with a file missing.
"""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path


def content_name(data: bytes, extension: str) -> str:
    """`<sha256 of the bytes>.<extension>`."""
    return f"{hashlib.sha256(data).hexdigest()}.{extension}"


def write_once(path: Path, data: bytes) -> bool:
    """Create `path` with `data` unless a file of that (content) name exists; whether written."""
    try:
        with open(path, "xb") as out:
            out.write(data)
    except FileExistsError:
        return False
    return True


class ParallelFiles:
    def __init__(self, workers: int = 4, max_pending: int = 256) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export-files")
        self._pending: deque[Future] = deque()
        self._max_pending = max_pending
        self.written = 0

    def write(self, path: Path, data: bytes) -> None:
        self._pending.append(self._pool.submit(write_once, path, data))
        while len(self._pending) > self._max_pending or (self._pending and self._pending[0].done()):
            self.written += self._pending.popleft().result()

    def flush(self) -> None:
        """Wait for every queued write (raising the first failure)."""
        while self._pending:
            self.written += self._pending.popleft().result()

    def close(self) -> None:
        """Stop the threads; queued writes not yet started are dropped (after a failure)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
