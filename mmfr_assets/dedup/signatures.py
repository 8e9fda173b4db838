"""The signature of a cleaned row: everything deduplication and decontamination compare, and
nothing else (no image, no full text), so the cross-subset step reads ~0.6 KB per row.

`signature_batch` is the pure row logic; the `dedup_signatures` asset streams one partition of
`cleaned` through it with the image each row is trained on (cleaning's bytes where it changed
the image, else the original from `collected`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import polars as pl
import pyarrow as pa

from mmfr_assets.dedup.images import ImageHashes, image_hashes
from mmfr_assets.dedup.text import minhashes, numbers_key, text_key

SIGNATURE_SCHEMA = pa.schema([
    ("subset", pa.string()),
    ("id", pa.string()),
    ("text_key", pa.int64()),  # blake2b-64 of the normalized question
    ("minhash", pa.binary()),  # num_perm little-endian uint32 (datasketch MinHash, seed 1)
    ("num_perm", pa.int32()),
    ("shingle_count", pa.int32()),  # distinct character 4-grams of the normalized question
    ("numbers_key", pa.int64()),  # blake2b-64 of the sorted numbers in the question
    ("image_sha256", pa.string()),  # of the bytes trained on (cleaned's digest)
    ("phash", pa.int64()),  # 64-bit perceptual hashes (null: no image)
    ("dhash", pa.int64()),
    ("ahash", pa.int64()),
])
SIGNATURE_COLUMNS = SIGNATURE_SCHEMA.names[2:]


def signature_batch(
    ids: Sequence[str],
    questions: Sequence[str | None],
    images: Sequence[bytes | None],
    image_sha256: Sequence[str | None],
    *,
    num_perm: int,
    map_images: Callable = map,
) -> pl.DataFrame:
    """Signatures of one batch (without `subset`); `map_images` may be a pool's `map`."""
    hashes: list[ImageHashes | None] = list(map_images(image_hashes, images))
    values, sizes = minhashes(questions, num_perm)
    return pl.DataFrame(
        {
            "id": list(ids),
            "text_key": [text_key(q) for q in questions],
            "minhash": values,
            "num_perm": [num_perm] * len(ids),
            "shingle_count": sizes,
            "numbers_key": [numbers_key(q) for q in questions],
            "image_sha256": list(image_sha256),
            "phash": [h.phash if h else None for h in hashes],
            "dhash": [h.dhash if h else None for h in hashes],
            "ahash": [h.ahash if h else None for h in hashes],
        },
        schema={"id": pl.String, "text_key": pl.Int64, "minhash": pl.Binary,
                "num_perm": pl.Int32, "shingle_count": pl.Int32, "numbers_key": pl.Int64,
                "image_sha256": pl.String, "phash": pl.Int64,
                "dhash": pl.Int64, "ahash": pl.Int64},
    )


def pool_map(pool: Executor | None) -> Callable:
    return pool.map if pool is not None else map
