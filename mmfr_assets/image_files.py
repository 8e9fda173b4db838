"""Image bytes written out as files (the row viewer, the LLaMA-Factory export): the extension
comes from the format Pillow reads in the header, without decoding the pixels."""

from __future__ import annotations

import io
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
