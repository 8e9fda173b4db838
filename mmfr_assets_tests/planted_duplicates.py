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
    answer: str | None = None  # the reference answer (None: unknown)


def real_rows(real_sample: Path) -> list[Row]:
    rows = []
    for path in sorted(glob.glob(str(real_sample / "*" / "*.parquet"))):
        subset = Path(path).parent.name
        for r in pl.read_parquet(path).iter_rows(named=True):
            image = (r["image"] or {}).get("bytes")
            if image and r["question"]:
                rows.append(Row(subset, str(r["id"]), r["question"], image, f"{subset}/{r['id']}",
                                r["answer"]))
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
            copies.append(Row(f"copies_{name}", f"{row.subset}/{row.id}", question, image, row.origin,
                              row.answer))
    negatives = []
    for k, row in enumerate(real):
        other = real[(k + 1 + rng.randrange(len(real) - 1)) % len(real)]
        mine, theirs = image_hashes(row.image), image_hashes(other.image)
        if other.question == row.question or bin((mine.phash ^ theirs.phash) & (2**64 - 1)).count("1") <= 16:
            continue  # the other row shows this figure too (the real sample reuses figures)
        negatives.append(Row("negatives", f"figure-of-{row.origin}", other.question, row.image, "",
                             other.answer))
    return copies, negatives


# --- Templated families (issue 30): near-identical text over one or similar simple figures ---

# (organism, role, answer): one food-web template, the entity and its answer changed
FOOD_WEB = (("grass", "producer", "It makes its own food."),
            ("rabbit", "consumer", "It eats another living thing."),
            ("algae", "producer", "It makes its own food."),
            ("heron", "consumer", "It eats another living thing."))
SHAPES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}


def entity_negatives(real: list[Row]) -> list[Row]:
    """ScienceQA-like pairs: each real row's question as a long shared lecture, then "the
    <organism> is a <role>. Why?" with the organism and the role changed, over the same
    figure; the answers differ ("It makes its own food." / "It eats another living thing.")."""
    out = []
    for k, row in enumerate(real):
        lecture = " ".join([row.question.replace("<image>", "")] * 2)
        for organism, role, answer in (FOOD_WEB[(2 * k) % 4], FOOD_WEB[(2 * k + 1) % 4]):
            out.append(Row("negatives_entity", f"{row.origin}/{organism}",
                           f"<image>{lecture}\nIn this food web, the {organism} is a {role}. Why?",
                           row.image, "", answer))
    return out


def shape_figure(sides: int, cell: int = 64) -> bytes:
    """A simple generated puzzle figure (raven-like): a 3x3 grid of cells holding one circle
    each, the last cell a regular polygon of `sides` sides. The grid dominates the picture, so
    figures differing in the last cell only are a few perceptual-hash bits apart."""
    import math

    from PIL import ImageDraw

    size = 3 * cell
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for i in range(4):
        draw.line([(i * cell, 0), (i * cell, size)], fill="black", width=2)
        draw.line([(0, i * cell), (size, i * cell)], fill="black", width=2)
    r = cell * 0.3
    for k in range(8):
        x, y = (k % 3 + 0.5) * cell, (k // 3 + 0.5) * cell
        draw.ellipse([x - r, y - r, x + r, y + r], outline="black", width=2)
    x = y = 2.5 * cell
    draw.polygon([(x + r * math.sin(2 * math.pi * i / sides), y - r * math.cos(2 * math.pi * i / sides))
                  for i in range(sides)], outline="black", width=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def shape_negatives(real: list[Row]) -> list[Row]:
    """Puzzle-template pairs: each real puzzle question (the subsets named *raven* or
    *GameQA*) as the template's instructions, then "Which shape is shown?" over two different
    generated polygons; the answers differ ("pentagon" / "triangle")."""
    puzzles = [r for r in real if "raven" in r.subset.lower() or "gameqa" in r.subset.lower()]
    out = []
    names = list(SHAPES)
    for k, row in enumerate(puzzles):
        for shape in (names[k % 4], names[(k + 1) % 4]):
            out.append(Row("negatives_shape", f"{row.origin}/{shape}",
                           f"{row.question}\nWhich shape is shown in the figure?",
                           shape_figure(SHAPES[shape]), "", shape))
    return out


def shuffled_copies(row: Row, copies: int = 8, seed: int = 0) -> list[Row]:
    """`row` (a multiple-choice question, options one a line, answer a letter) repeated with
    its options shuffled and the answer's letter moved with its option: one problem."""
    from mmfr_assets.rules.verify.rules import options

    choices = dict(options(row.question))
    letters = sorted(choices)
    answer_text = choices[row.answer.strip()]
    rng = random.Random(seed)
    lines = row.question.splitlines()
    marks = [i for i, line in enumerate(lines)
             if any(line.strip().startswith(letter) and line.strip().endswith(choices[letter])
                    for letter in letters)]
    assert len(marks) == len(letters), "options must be one a line"
    out, seen = [], {tuple(choices[x] for x in letters)}
    while len(out) < copies:
        order = [choices[x] for x in letters]
        rng.shuffle(order)
        if tuple(order) in seen:
            continue
        seen.add(tuple(order))
        shuffled = list(lines)
        for i, letter, text in zip(marks, letters, order):
            line = lines[i].rstrip()  # "A: 12": the letter's marker kept, the option text moved
            shuffled[i] = line[: len(line) - len(choices[letter])] + text
        letter = letters[order.index(answer_text)]
        out.append(Row("shuffled", f"{row.origin}/shuffle-{len(out)}", "\n".join(shuffled),
                       row.image, row.origin, letter))
    return out
