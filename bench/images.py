"""Image cleaning on large photos: ours (`clean_image`, and `clean_batch` with the asset's
thread pool) against the naive path (`datasets` with a PIL image: open, convert to RGB, LANCZOS
resize, re-encode as PNG), with the output checked (same size, PSNR of ours vs naive)."""

from __future__ import annotations

import io
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from mmfr_assets.cleaning.assets import CleanedConfig, clean_batch
from mmfr_assets.cleaning.images import clean_image


def photo(width: int, height: int, seed: int, quality: int = 90) -> bytes:
    """A photo-like JPEG: smooth colour fields, shapes with edges, and sensor-like noise (flat
    or synthetic-clean images decode and compress unrealistically fast)."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(field)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(width // 60, width // 8))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x - r, y - r, x + r, y + r // 2), fill=colour)
    pixels = np.asarray(field, dtype=np.int16)
    noise = rng.normal(0.0, 10.0, (height, width, 1)) + rng.normal(0.0, 4.0, (height, width, 3))
    pixels = np.clip(pixels + noise.astype(np.int16), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def naive(data: bytes, max_edge: int = 2048) -> bytes:
    """What `datasets` does with a PIL image: open, RGB, LANCZOS resize, PNG."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if max(image.size) > max_edge:
        scale = max_edge / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def ours(data: bytes) -> bytes:
    result = clean_image(data)
    return result.data if result.data is not None else data


def psnr(a: bytes, b: bytes) -> tuple[float, tuple[int, int], tuple[int, int]]:
    x = Image.open(io.BytesIO(a)).convert("RGB")
    y = Image.open(io.BytesIO(b)).convert("RGB")
    if x.size != y.size:
        return float("nan"), x.size, y.size
    mse = np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2)
    return (math.inf if mse == 0 else 10 * math.log10(255**2 / mse)), x.size, y.size


@dataclass
class Scenario:
    name: str
    images: int
    megapixels: float
    naive_seconds: float  # one thread
    naive_pool_seconds: float  # naive over the same thread pool as ours
    ours_seconds: float  # clean_image, one thread
    ours_batch_seconds: float  # clean_batch with the asset's thread pool
    min_psnr: float
    sizes_equal: bool

    def per_second(self, seconds: float) -> float:
        return self.images / seconds


def _timed(function, items) -> tuple[float, list]:
    t = time.perf_counter()
    out = [function(x) for x in items]
    return time.perf_counter() - t, out


def run_scenario(name: str, photos: list[bytes], workers: int | None = None) -> Scenario:
    workers = workers or os.cpu_count() or 1
    naive(photos[0]), ours(photos[0])  # warm up codecs
    naive_s, naive_out = _timed(naive, photos)
    ours_s, ours_out = _timed(ours, photos)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t = time.perf_counter()
        list(pool.map(naive, photos))
        naive_pool_s = time.perf_counter() - t
        batch = pl.DataFrame(
            {
                "subset": ["bench"] * len(photos),
                "id": [str(i) for i in range(len(photos))],
                "question": ["q"] * len(photos),
                "answer": ["a"] * len(photos),
                "image_bytes": photos,
                "image_path": [None] * len(photos),
            },
            schema_overrides={"image_path": pl.String},
        )
        t = time.perf_counter()
        verdicts = clean_batch(batch, CleanedConfig(), pool)
        batch_s = time.perf_counter() - t
    assert verdicts.kept.height == len(photos), "ours dropped a photo"
    checks = [psnr(o, n) for o, n in zip(ours_out, naive_out)]
    pixels = sum(Image.open(io.BytesIO(p)).size[0] * Image.open(io.BytesIO(p)).size[1] for p in photos)
    return Scenario(
        name, len(photos), pixels / len(photos) / 1e6, naive_s, naive_pool_s, ours_s, batch_s,
        min(c[0] for c in checks), all(c[1] == c[2] for c in checks),
    )


def run(count: int, *, large=(4000, 3000), medium=(1600, 1200), log=print) -> list[Scenario]:
    t = time.perf_counter()
    big = [photo(*large, seed=i) for i in range(count)]
    small = [photo(*medium, seed=100 + i) for i in range(count * 4)]
    log(f"generated {len(big)} {large[0]}x{large[1]} and {len(small)} {medium[0]}x{medium[1]} "
        f"photos in {time.perf_counter() - t:.0f} s")
    return [
        run_scenario(f"{large[0]}x{large[1]} JPEG photos (resized to 2048 px)", big),
        run_scenario(f"{medium[0]}x{medium[1]} JPEG photos (within limits: unchanged)", small),
    ]
