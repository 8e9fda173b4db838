"""Files the package writes out of lake rows: their names, image bytes as files, folders that
appear whole, and content-named files written from a few threads. The exports, the row viewer
and the report all write files; this is the one home of how (they import it, never each other).

- Names (`file_stem`, `subset_folder`): ids come from the source dataset and may contain `/`,
  `..`, parentheses, spaces or anything else; a file name made from one must stay inside its
  folder and be unique. The readable part is kept (so a person can find a row's image) and a
  short digest of the full id makes it unique ("a/b" and "a_b" would otherwise collide).
- Image bytes (`image_extension`, `unreadable_image`): the extension comes from the format
  Pillow reads in the header, without decoding the pixels (the row viewer, the LLaMA-Factory
  export); bytes Pillow cannot use are described in words (the rejections' detail).
- `viewer_page`: where the row viewer writes a subset's page of a stage (the report writes
  it, every stage's materialization links it).
- `atomic_folder`: an export (or the report) folder appears whole or not at all.
- `content_name`, `write_once`, `ParallelFiles`: the image files of a LLaMA-Factory export.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from mmfr_assets.lineage import STEP_SHOWN_IN

# --- names from row ids and subset names ---


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
# Subset folders may keep parentheses and '+': hub configs such as `FineVision-geo170k(qa)`
# are read back by their folder glob, and those characters are harmless in a path segment.
_SAFE_SUBSET = re.compile(r"^[A-Za-z0-9_()+-][A-Za-z0-9._()+-]{0,99}$")


def digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_stem(row_id: str) -> str:
    """A safe, unique file stem for a row id: `[A-Za-z0-9._-]`, no leading dot, bounded length."""
    readable = _UNSAFE_ID.sub("_", row_id).strip("._")[:80]
    return f"{readable}-{digest(row_id)}" if readable else digest(row_id)


def subset_folder(subset: str) -> str:
    """The folder of a subset: its name when that is a safe path segment, else a sanitized one."""
    if _SAFE_SUBSET.match(subset) and subset not in {".", ".."}:
        return subset
    return file_stem(subset)


def viewer_page(subset: str, stage: str, root: Path) -> Path:
    """The viewer's index page of one subset and stage under the report folder `root`; for a
    model step, the page of the stage that shows its columns (`lineage.STEP_SHOWN_IN`)."""
    return root / "viewer" / subset_folder(subset) / STEP_SHOWN_IN.get(stage, stage) / "index.html"


# --- image bytes written out as files ---
# Image bytes written out as files (the row viewer, the LLaMA-Factory export): the extension
# comes from the format Pillow reads in the header, without decoding the pixels.

def image_extension(data: bytes) -> str:
    """`jpg`, `png`, ... for encoded image bytes. Only the header is read, so a very large image
    (the decompression bombs cleaning drops) costs nothing here and its warning is not noise;
    bytes Pillow cannot identify raise `PIL.UnidentifiedImageError` (an `OSError`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "png").lower()
    return {"jpeg": "jpg", "mpo": "jpg"}.get(fmt, fmt)


# File signatures of things that are often stored where an image should be.
_NOT_IMAGES = (
    (b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"), (b"<?xml", "an XML document"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip file"),
    (b"{", "JSON text"),
)


def unreadable_image(data: bytes, error: BaseException | None = None) -> str:
    """What is wrong with image bytes Pillow cannot use, as a sentence for a person (the
    rejections' detail, the row viewer), never Python's exception text with object addresses:
    "not an image: 2,048 bytes that look like an HTML page"."""
    size = f"{len(data):,} bytes"
    if not data:
        return "the image is empty (0 bytes)"
    head = data[:32].lstrip().lower()
    for signature, what in _NOT_IMAGES:
        if head.startswith(signature.lower()):
            return f"not an image: {size} that look like {what}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format or "image", image.size
    except Exception:
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in data[:256]) / min(len(data), 256)
        if printable > 0.95:
            text = data[:40].decode("ascii", "replace").strip()
            return f"not an image: {size} of text (\"{text}…\")"
        return f"not an image: {size} in no image format Pillow reads (starting {data[:4].hex(' ')})"
    message = str(error or "")
    if "truncated" in message or "broken data stream" in message or isinstance(error, EOFError):
        return f"the {fmt} file is cut short: {size} of a {width}x{height} image (truncated or damaged)"
    reason = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the file", message).strip()
    return f"the {fmt} file ({width}x{height}, {size}) cannot be decoded" + (f": {reason}" if reason else "")


# --- a folder that appears whole or not at all ---
# An export folder that appears whole or not at all.
#
# Everything is written into a hidden temporary folder beside the destination; only when the
# writer finishes is it renamed into place (replacing a previous export, whose subsets are thus
# never left behind). A failure removes the temporary folder and leaves the previous export, if
# any, untouched.

@contextmanager
def atomic_folder(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `destination` (replacing it)."""
    destination = Path(destination).absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = destination.parent / f".{destination.name}.tmp-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if destination.exists():
        # Two renames: the old export moves aside, the new one takes its name, the old one is
        # removed. A crash between them leaves the old export under `.NAME.old-*`, never a mix.
        retired = destination.parent / f".{destination.name}.old-{token}"
        os.replace(destination, retired)
        os.replace(staging, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, destination)


# --- content-named files written from a few threads ---
# Image files of a LLaMA-Factory export: named by their content, written from a few threads.
#
# LLaMA-Factory reads images by path, so the export writes one file per distinct image. The
# name is the SHA-256 of the bytes (`content_name`): rows showing the same image share one file,
# and exports combined in one folder (exports/export.py carries a previous one over by hard links) share
# theirs — a file already there under that name holds those very bytes, so it is never written
# again nor written through. Files are created exclusively (`xb`): two threads writing the same
# image cannot interleave, the second finds the file and stops.
#
# File creation, not bytes, is the cost (~1-1.5 ms per file on this machine's virtual disk, most
# of it waiting on the filesystem with the GIL released), so a few threads write them. At most
# `max_pending` writes are queued (memory stays bounded) and a failure is raised on the next
# call, so an export never finishes with a file missing.

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
