"""Image cleaning as in the paper: drop unreadable images, fix orientation, size and mode.

Pure functions over bytes. An image that needs no change keeps its original bytes (stored once,
in `collected`): it is decoded to prove it is readable, but never re-encoded. Large JPEGs are
decoded at reduced scale (`Image.draft`) when they will be downsized anyway.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from mmfr_assets.files import unreadable_image

ORIENTATION_TAG = 0x0112
# The paper's limits, the defaults of `clean_image` and of `cleaned`'s config.
MAX_LONG_EDGE = 2048  # longer images are downsized to this edge
MAX_IMAGE_PIXELS = 89_478_485  # more pixels: refused as a decompression bomb (Pillow's default bound)
JPEG_QUALITY = 95  # for JPEGs that had to be re-encoded
# Modes whose pixels carry transparency: flattened onto white rather than onto black.
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageRejected(Exception):
    """The image cannot be used; `reason` is the drop reason recorded for the row."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CleanImage:
    """A usable image: new bytes only when something had to change (`fixes` says what)."""

    data: bytes | None
    width: int
    height: int
    format: str
    source_mode: str
    sha256: str
    fixes: tuple[str, ...]


def _fit(width: int, height: int, max_edge: int) -> tuple[int, int]:
    scale = max_edge / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white.
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def clean_image(
    data: bytes | None,
    *,
    max_edge: int = MAX_LONG_EDGE,
    max_pixels: int = MAX_IMAGE_PIXELS,
    jpeg_quality: int = JPEG_QUALITY,
) -> CleanImage:
    """Validate and normalize one image; raises `ImageRejected` for a row to drop."""
    if not data:
        raise ImageRejected("image_missing", "the row has no image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    "image_decompression_bomb",
                    f"{width}x{height} = {width * height} pixels > {max_pixels}",
                )
            source_mode, source_format = image.mode, image.format or "PNG"
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            needs_resize = max(width, height) > max_edge
            if needs_resize and source_format == "JPEG":
                # Orientation 5-8 swaps the axes, but the longest edge is the same either way.
                image.draft("RGB", _fit(width, height, max_edge))
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected("image_decompression_bomb", str(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        # A sentence for the reader of the rejections (not "UnidentifiedImageError: cannot
        # identify image file <_io.BytesIO object at 0x…>").
        raise ImageRejected("image_corrupt", unreadable_image(data, error)) from None

    fixes = []
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
        fixes.append("exif_transposed")
    if image.mode != "RGB":
        image = _to_rgb(image)
        fixes.append(f"converted_{source_mode}_to_rgb")
    if max(image.size) > max_edge:
        image = image.resize(_fit(*image.size, max_edge), Image.Resampling.LANCZOS)
        fixes.append("resized")
    elif needs_resize:  # draft() already decoded it at (about) the target scale
        fixes.append("resized")
    if not fixes:
        return CleanImage(
            None, width, height, source_format, source_mode,
            hashlib.sha256(data).hexdigest(), (),
        )
    out = io.BytesIO()
    if source_format == "JPEG":
        image.save(out, format="JPEG", quality=jpeg_quality)
    else:  # lossless sources stay lossless
        image.save(out, format="PNG", compress_level=3)
    encoded = out.getvalue()
    return CleanImage(
        encoded, image.width, image.height, "JPEG" if source_format == "JPEG" else "PNG",
        source_mode, hashlib.sha256(encoded).hexdigest(), tuple(fixes),
    )
