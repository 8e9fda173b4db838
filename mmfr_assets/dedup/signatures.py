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

from mmfr_assets.dedup.answers import answer_key
from mmfr_assets.dedup.images import ImageHashes, image_hashes
from mmfr_assets.dedup.text import ASK_PERM, ask, minhashes, numbers_key, text_key

SIGNATURE_SCHEMA = pa.schema([
    ("subset", pa.string()),
    ("id", pa.string()),
    ("text_key", pa.int64()),  # blake2b-64 of the normalized question
    ("minhash", pa.binary()),  # num_perm little-endian uint32 (datasketch MinHash, seed 1)
    ("num_perm", pa.int32()),
    ("shingle_count", pa.int32()),  # distinct character 4-grams of the normalized question
    ("ask_minhash", pa.binary()),  # ASK_PERM uint32 of the question's asking line (text.ask)
    ("ask_shingle_count", pa.int32()),
    ("numbers_key", pa.int64()),  # blake2b-64 of the sorted numbers in the question
    ("answer_key", pa.int64()),  # blake2b-64 of the reference answer's form (answers.py; null: none)
    ("image_sha256", pa.string()),  # of the bytes trained on (cleaned's digest)
    ("phash", pa.int64()),  # 64-bit perceptual hashes (null: no image)
    ("dhash", pa.int64()),
    ("ahash", pa.int64()),
    # No usable dataset caption / trace: a teacher would be asked for it (`regenerate: false`),
    # so dropping the row saves that ask (the funnel and the report count it).
    ("needs_caption", pa.bool_()),
    ("needs_trace", pa.bool_()),
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
    captions: Sequence[str | None] | None = None,
    traces: Sequence[str | None] | None = None,
    answers: Sequence[str | None] | None = None,
) -> pl.DataFrame:
    """Signatures of one batch (without `subset`); `map_images` may be a pool's `map`;
    `answers`: the reference answers (None: unknown, the answer rule then does not apply)."""
    hashes: list[ImageHashes | None] = list(map_images(image_hashes, images))
    values, sizes = minhashes(questions, num_perm)
    ask_values, ask_sizes = minhashes([ask(q) for q in questions], ASK_PERM)
    return pl.DataFrame(
        {
            "id": list(ids),
            "text_key": [text_key(q) for q in questions],
            "minhash": values,
            "num_perm": [num_perm] * len(ids),
            "shingle_count": sizes,
            "ask_minhash": ask_values,
            "ask_shingle_count": ask_sizes,
            "numbers_key": [numbers_key(q) for q in questions],
            "answer_key": ([answer_key(q, a) for q, a in zip(questions, answers)]
                           if answers is not None else [None] * len(ids)),
            "image_sha256": list(image_sha256),
            "phash": [h.phash if h else None for h in hashes],
            "dhash": [h.dhash if h else None for h in hashes],
            "ahash": [h.ahash if h else None for h in hashes],
            "needs_caption": _missing(captions, len(ids)),
            "needs_trace": _missing(traces, len(ids)),
        },
        schema={"id": pl.String, "text_key": pl.Int64, "minhash": pl.Binary,
                "num_perm": pl.Int32, "shingle_count": pl.Int32,
                "ask_minhash": pl.Binary, "ask_shingle_count": pl.Int32, "numbers_key": pl.Int64,
                "answer_key": pl.Int64, "image_sha256": pl.String, "phash": pl.Int64,
                "dhash": pl.Int64, "ahash": pl.Int64, "needs_caption": pl.Boolean,
                "needs_trace": pl.Boolean},
    )


def _missing(texts: Sequence[str | None] | None, n: int) -> list[bool]:
    """Per row: no usable annotation (absent or blank, as the teachers' `usable` reads it)."""
    if texts is None:
        return [True] * n
    return [not (t and t.strip()) for t in texts]


def pool_map(pool: Executor | None) -> Callable:
    return pool.map if pool is not None else map
