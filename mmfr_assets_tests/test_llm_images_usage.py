"""Image data URLs (bounded, re-encoded only when needed) and usage accounting."""

from __future__ import annotations

import base64
import io
import random

import pytest
from PIL import Image

from mmfr_assets.llm.images import data_url_digest, image_data_url, prepare_image, sniff_format, user_message
from mmfr_assets.llm.usage import UsageStats


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int, h: int) -> Image.Image:
    rng = random.Random(0)
    return Image.frombytes("RGB", (w, h), bytes(rng.getrandbits(8) for _ in range(w * h * 3)))


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_small_supported_images_pass_through_untouched(fmt, mime):
    data = _encode(Image.new("RGB", (64, 32), (1, 2, 3)), fmt)
    assert prepare_image(data) == (mime, data)


def test_unsupported_format_is_reencoded_losslessly():
    data = _encode(Image.new("RGB", (40, 20), (9, 9, 9)), "BMP")
    assert sniff_format(data) is None
    mime, out = prepare_image(data)
    assert mime == "image/png" and Image.open(io.BytesIO(out)).size == (40, 20)


def test_large_edge_is_downscaled_keeping_aspect():
    data = _encode(Image.new("RGB", (3000, 1000), (200, 10, 10)), "PNG")
    mime, out = prepare_image(data, max_edge=1024)
    assert mime == "image/png" and Image.open(io.BytesIO(out)).size == (1024, 341)


def test_byte_bound_falls_back_to_jpeg_and_smaller_sizes():
    data = _encode(_noise(400, 400), "PNG")
    mime, out = prepare_image(data, max_edge=2048, max_bytes=30_000)
    assert mime == "image/jpeg" and len(out) <= 30_000


def test_alpha_images_and_determinism():
    data = _encode(Image.new("RGBA", (50, 50), (0, 0, 255, 128)), "GIF")
    a, b = prepare_image(data), prepare_image(data)
    assert a == b and a[0] == "image/png"


def test_undecodable_image_raises_value_error():
    with pytest.raises(ValueError, match="cannot decode"):
        prepare_image(b"GIF89a-this-is-not-really-an-image")


def test_user_message_shapes_and_digest():
    png = _encode(Image.new("RGB", (8, 8)), "PNG")
    assert user_message("hi") == {"role": "user", "content": "hi"}
    msg = user_message("what?", [png, png])
    assert [p["type"] for p in msg["content"]] == ["image_url", "image_url", "text"]
    url = image_data_url(png)
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == png
    import hashlib
    assert data_url_digest(url) == "sha256:" + hashlib.sha256(png).hexdigest()
    assert data_url_digest("https://example.invalid/x.png") is None


def test_usage_stats_merge_quantiles_and_metadata():
    a, b = UsageStats(), UsageStats()
    for i in range(1, 101):
        a.record_latency(i / 100)       # 0.01 .. 1.00 s
    a.add(requests_sent=3, successes=2, retries=1, cache_misses=2, prompt_tokens=10, completion_tokens=20)
    b.add(cache_hits=2, failures=1, requests_sent=1, cache_misses=1)
    merged = a + b
    assert merged.requests_sent == 4 and merged.cache_hits == 2 and merged.failures == 1
    assert abs(merged.latency_p50_s - 0.50) < 0.03 and abs(merged.latency_p95_s - 0.95) < 0.04
    meta = merged.to_metadata(prefix="cot_")
    assert meta["cot_cache_hit_rate"] == 0.4 and meta["cot_prompt_tokens"] == 10
    assert all(isinstance(v, (int, float)) for v in meta.values())
    assert UsageStats().to_metadata()["llm_latency_p95_s"] == 0.0
    assert a.requests_sent == 3  # + does not mutate
