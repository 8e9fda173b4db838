"""Image encodings, faults and repairs: the odd files real crawls contain.

Normal rows get JPEG/PNG encodings of a drawn figure. Fault rows get bytes no
decoder accepts, or a decompression bomb; repair rows get 4000 px images,
palette/alpha/grayscale/CMYK modes and EXIF-rotated JPEGs. The cleaning stage
must drop the first two and repair the rest, so each has a precise recipe here.
Encoder settings are fixed and nothing time-dependent is written.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

def encode(img: Image.Image, fmt: str, **opts) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    return buf.getvalue()


def encode_normal(img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    """Most real rows are JPEG (like the hub sample); some are PNG."""
    if rng.random() < 0.75:
        return encode(img, "JPEG", quality=rng.choice([80, 85, 90, 95])), "jpg"
    return encode(img, "PNG", optimize=False), "png"


def _transparent_background(img: Image.Image) -> Image.Image:
    """RGBA copy whose white background is fully transparent *and black*.

    Many diagram PNGs store transparent pixels as (0, 0, 0, 0); a naive
    ``convert("RGB")`` then yields black-on-black, which is exactly the trap a
    repair step has to avoid (composite onto white first).
    """
    rgba = img.convert("RGBA")
    gray = img.convert("L")
    alpha = gray.point(lambda v: 0 if v > 245 else 255)
    black = Image.new("RGBA", img.size, (0, 0, 0, 0))
    return Image.composite(rgba, black, alpha)


def repaired_variant(repair: str, img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    """Encode ``img`` in the awkward form named by ``repair`` (see plan.REPAIRS)."""
    if repair == "resize_jpeg":  # caller drew it at 4000 px
        return encode(img, "JPEG", quality=75), "jpg"
    if repair == "resize_png":
        return encode(img, "PNG", compress_level=9), "png"
    if repair == "mode_p":
        return encode(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=32), "PNG"), "png"
    if repair == "mode_p_transparency":
        p = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        return encode(p, "PNG", transparency=p.getpixel((0, 0))), "png"
    if repair == "mode_rgba":
        return encode(_transparent_background(img), "PNG"), "png"
    if repair == "mode_la":
        return encode(_transparent_background(img).convert("LA"), "PNG"), "png"
    if repair == "mode_l":
        g = img.convert("L")
        return (encode(g, "JPEG", quality=90), "jpg") if rng.random() < 0.5 else (encode(g, "PNG"), "png")
    if repair == "mode_cmyk":
        return encode(img.convert("CMYK"), "JPEG", quality=90), "jpg"
    if repair in ("exif_rotate_6", "exif_rotate_8"):
        orientation = int(repair[-1])
        # Store the pixels rotated so that applying the EXIF tag restores ``img``.
        stored = img.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[0x0112] = orientation
        return encode(stored, "JPEG", quality=90, exif=exif.tobytes()), "jpg"
    raise ValueError(f"unknown repair {repair!r}")


# Sizes of the big images that must be downscaled (longest edge 4000 px).
REPAIR_SIZES = {"resize_jpeg": (4000, 3000), "resize_png": (1500, 4000)}


def corrupt_bytes(variant: str, img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    """Bytes that no decoder can turn into an image.

    ``jpeg_truncated`` is a half-downloaded JPEG: ``Image.open`` succeeds but
    ``load()`` fails (it would only "decode" with LOAD_TRUNCATED_IMAGES, which
    a cleaner must not enable). The other variants fail already at open.
    """
    if variant == "jpeg_truncated":
        data = encode(img, "JPEG", quality=90)
        return data[: len(data) * 11 // 20], "jpg"
    if variant == "png_header_only":
        data = encode(img, "PNG")
        return data[: data.find(b"IDAT") - 4], "png"
    if variant == "html_error_page":
        return (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
                b"<body><h1>Forbidden</h1><p>You don't have permission to access this resource.</p></body></html>\n"), "jpg"
    if variant == "random_bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1500, 6000))), "jpg"
    raise ValueError(f"unknown corruption {variant!r}")


CORRUPT_VARIANTS = ("jpeg_truncated", "png_header_only", "html_error_page", "random_bytes")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int, palette: bool = False) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` blank pixels.

    All-zero scanlines deflate ~1000:1, so a 144-megapixel image is ~18 KB on
    disk; it is written directly (Pillow would need the full raster in RAM).
    """
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    block = row * 256
    parts = []
    for done in range(0, height, 256):
        parts.append(comp.compress(block if height - done >= 256 else row * (height - done)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 3 if palette else 0, 0, 0, 0)
    chunks = [_chunk(b"IHDR", ihdr)]
    if palette:
        chunks.append(_chunk(b"PLTE", bytes((255, 255, 255, 0, 0, 0))))
    chunks.append(_chunk(b"IDAT", b"".join(parts)))
    chunks.append(_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


# (width, height, palette): all declare more than Pillow's 89,478,485-pixel limit;
# the last two even exceed twice the limit, where Pillow raises instead of warning.
BOMB_SHAPES = ((12000, 12000, False), (9500, 9500, True), (15000, 13000, False), (20000, 10000, True))
