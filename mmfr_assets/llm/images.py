"""Images as bounded data URLs.

Vision endpoints take images inline (``data:image/...;base64,...``).  Source
datasets ship every format and size, so images are passed through untouched
when the endpoint can read them and they are within bounds (no quality loss, no
CPU), and re-encoded deterministically otherwise: same input bytes and bounds
give the same output bytes, hence the same cache key on a re-run.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any, Iterable, Optional, Union

DEFAULT_MAX_IMAGE_EDGE = 2048
DEFAULT_MAX_IMAGE_BYTES = 5_000_000

_PASSTHROUGH = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

ImageInput = Union[bytes, bytearray, memoryview]


def sniff_format(data: bytes) -> Optional[str]:
    """Return 'jpeg' / 'png' / 'webp' from magic bytes, or None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def prepare_image(data: ImageInput, *, max_edge: int = DEFAULT_MAX_IMAGE_EDGE,
                  max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> tuple[str, bytes]:
    """Return ``(mime, bytes)`` ready to send.

    Passed through if JPEG/PNG/WebP, longest edge <= ``max_edge`` and size <=
    ``max_bytes``; otherwise decoded with Pillow, downscaled to ``max_edge`` and
    saved as PNG (lossless, kept for line art) or, if that is still too large or
    the source was a photo format, JPEG at decreasing quality, then smaller
    edges until it fits.  Raises ``ValueError`` for undecodable data.
    """
    data = bytes(data)
    fmt = sniff_format(data)
    if fmt is not None and len(data) <= max_bytes:
        try:
            size: Optional[tuple[int, int]] = _size(data)
        except Exception:  # unreadable header: let the re-encode path report it
            size = None
        if size is not None and max(size) <= max_edge:
            return _PASSTHROUGH[fmt], data
    return _reencode(data, fmt, max_edge=max_edge, max_bytes=max_bytes)


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:  # reads the header only
        return im.size


def _reencode(data: bytes, fmt: Optional[str], *, max_edge: int, max_bytes: int) -> tuple[str, bytes]:
    from PIL import Image, ImageOps

    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as exc:
        raise ValueError(f"cannot decode image ({len(data)} bytes): {type(exc).__name__}: {exc}") from exc
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:
        pass
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    lossless_first = fmt != "jpeg"
    edge = min(max_edge, max(im.size))
    while True:
        scaled = _fit(im, edge)
        if lossless_first:
            out = _save(scaled.convert("RGBA" if has_alpha else "RGB"), "PNG")
            if len(out) <= max_bytes:
                return "image/png", out
        rgb = _flatten(scaled) if has_alpha else scaled.convert("RGB")
        for quality in (92, 85, 75, 60):
            out = _save(rgb, "JPEG", quality=quality)
            if len(out) <= max_bytes:
                return "image/jpeg", out
        if edge <= 64:
            raise ValueError(f"image cannot be made smaller than {max_bytes} bytes")
        edge = int(edge * 0.75)


def _fit(im: Any, edge: int) -> Any:
    from PIL import Image

    w, h = im.size
    if max(w, h) <= edge:
        return im
    scale = edge / max(w, h)
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


def _flatten(im: Any) -> Any:
    from PIL import Image

    rgba = im.convert("RGBA")
    bg = Image.new("RGB", rgba.size, (255, 255, 255))
    bg.paste(rgba, mask=rgba.getchannel("A"))
    return bg


def _save(im: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", optimize=True, **kw)
    else:
        im.save(buf, fmt, optimize=True)
    return buf.getvalue()


def image_data_url(data: ImageInput, *, max_edge: int = DEFAULT_MAX_IMAGE_EDGE,
                   max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> str:
    """``data:<mime>;base64,<...>`` for ``data`` after :func:`prepare_image`."""
    mime, out = prepare_image(data, max_edge=max_edge, max_bytes=max_bytes)
    return f"data:{mime};base64,{base64.b64encode(out).decode('ascii')}"


def user_message(text: str, image: Union[None, ImageInput, Iterable[ImageInput]] = None, *,
                 max_edge: int = DEFAULT_MAX_IMAGE_EDGE, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 images_first: bool = True) -> dict[str, Any]:
    """A user chat message from text plus zero, one or several images (raw bytes).

    Without images the content is the plain string (what text-only models
    expect); with images it is the OpenAI content-part list, images first by
    default (Qwen-VL's own chat template order).
    """
    if image is None:
        return {"role": "user", "content": text}
    imgs = [image] if isinstance(image, (bytes, bytearray, memoryview)) else list(image)
    if not imgs:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(b, max_edge=max_edge, max_bytes=max_bytes)}}
        for b in imgs
    ]
    text_part = {"type": "text", "text": text}
    content = parts + [text_part] if images_first else [text_part] + parts
    return {"role": "user", "content": content}


def data_url_digest(url: str) -> Optional[str]:
    """``sha256:<hex>`` of the decoded bytes of a base64 data URL, None for other URLs.

    Used for cache keys: hashing the image rather than keeping its base64 keeps
    the canonical request small and independent of base64 line wrapping.
    """
    if not url.startswith("data:"):
        return None
    head, sep, payload = url.partition(",")
    if not sep:
        return None
    if head.endswith(";base64"):
        try:
            raw = base64.b64decode(payload, validate=False)
        except Exception:
            raw = payload.encode("utf-8")
    else:
        raw = payload.encode("utf-8")
    return "sha256:" + hashlib.sha256(raw).hexdigest()
