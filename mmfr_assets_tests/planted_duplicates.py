"""Planted near-duplicates built from the real published rows (issue 21), for the dedup tests
and `bench/dedup.py`: each real row with an image is copied into other subsets re-encoded as
JPEG at another quality, resized, and with its question reworded by two words; negatives pair a
real figure with another row's question (the same figure with a different question, and that
question over a different figure)."""

from __future__ import annotations

import glob
import io
import random
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from PIL import Image

from mmfr_assets.dedup.images import image_hashes

# Two-word rewordings: a synonym where the question has one, else an inserted filler word.
SYNONYMS = {
    "figure": "diagram", "diagram": "figure", "find": "determine", "shown": "depicted",
    "given": "provided", "provided": "given", "calculate": "compute", "what": "which",
    "image": "picture", "picture": "image", "length": "size", "value": "measure",
    "following": "below", "options": "choices", "correct": "right", "select": "choose",
}
FILLERS = ("please", "now", "then", "carefully")
VARIANTS = ("jpeg", "resize", "reword")


@dataclass(frozen=True)
class Row:
    subset: str
    id: str
    question: str
    image: bytes
    origin: str  # the real row's "subset/id" it was made from ("" for negatives)


def real_rows(real_sample: Path) -> list[Row]:
    rows = []
    for path in sorted(glob.glob(str(real_sample / "*" / "*.parquet"))):
        subset = Path(path).parent.name
        for r in pl.read_parquet(path).iter_rows(named=True):
            image = (r["image"] or {}).get("bytes")
            if image and r["question"]:
                rows.append(Row(subset, str(r["id"]), r["question"], image, f"{subset}/{r['id']}"))
    return rows


def reword(question: str, rng: random.Random, edits: int = 2) -> str:
    words = question.split(" ")
    swappable = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
    rng.shuffle(swappable)
    for i in swappable[:edits]:
        words[i] = SYNONYMS[words[i].lower()]
    for _ in range(edits - min(edits, len(swappable))):
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    return " ".join(words)


def reencode(image: bytes, *, quality: int, scale: float = 1.0) -> bytes:
    with Image.open(io.BytesIO(image)) as opened:
        rgb = opened.convert("RGB")
    if scale != 1.0:
        rgb = rgb.resize((max(8, int(rgb.width * scale)), max(8, int(rgb.height * scale))),
                         Image.Resampling.BICUBIC)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def planted(real: list[Row], seed: int = 0) -> tuple[list[Row], list[Row]]:
    """(near-duplicates, negatives). Copies go to subsets `copies_<variant>`; a reworded copy
    keeps the original image bytes; negatives go to `negatives`."""
    rng = random.Random(seed)
    copies = []
    for row in real:
        quality = rng.choice((40, 60, 75, 90))
        scale = rng.choice((0.5, 0.7, 1.3))
        variants = {
            "jpeg": (row.question, reencode(row.image, quality=quality)),
            "resize": (row.question, reencode(row.image, quality=85, scale=scale)),
            "reword": (reword(row.question, rng), row.image),
        }
        for name, (question, image) in variants.items():
            copies.append(Row(f"copies_{name}", f"{row.subset}/{row.id}", question, image, row.origin))
    negatives = []
    for k, row in enumerate(real):
        other = real[(k + 1 + rng.randrange(len(real) - 1)) % len(real)]
        mine, theirs = image_hashes(row.image), image_hashes(other.image)
        if other.question == row.question or bin((mine.phash ^ theirs.phash) & (2**64 - 1)).count("1") <= 16:
            continue  # the other row shows this figure too (the real sample reuses figures)
        negatives.append(Row("negatives", f"figure-of-{row.origin}", other.question, row.image, ""))
    return copies, negatives
