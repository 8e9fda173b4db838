"""Image bytes written out as files (the row viewer, the LLaMA-Factory export): the extension
comes from the format Pillow reads in the header, without decoding the pixels."""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image


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
