"""Benchmark decontamination: training rows whose question shares a long word n-gram with a
benchmark question, or whose image matches a benchmark image, are dropped as `contaminated`.

Benchmarks are whatever the user evaluates on, given in config as folders (or single files) of
parquet or JSON Lines with a question and optionally an image and an id; none is shipped or
downloaded. The benchmark's name is the folder's (or file's stem). Columns are detected from
the usual names (below). A question's lines of at least `ngram_words` words (13 by default, the
usual decontamination setting) contribute their word n-grams; a question with no such line
matches only a training question with the same normalized text (its n-gram would be the whole question, and a short
question such as "What is x?" inside a longer one is no evidence of a leak).
Images are compared by perceptual hash (the `deduplicated` keys and distance).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.collection.image_values import row_images
from mmfr_assets.dedup.images import hamming, image_hashes
from mmfr_assets.dedup.matching import MatchRules, candidate_keys
from mmfr_assets.dedup.text import text_key, words
from mmfr_assets.errors import InputError

QUESTION_NAMES = ("question", "problem", "query", "prompt", "instruction", "text")
IMAGE_NAMES = ("image", "images", "decoded_image", "img", "image_path", "picture")
ID_NAMES = ("id", "pid", "question_id", "qid", "idx", "index", "problem_id", "sample_id")
FILE_SUFFIXES = (".parquet", ".jsonl")


def _ngram_key(tokens: Sequence[str]) -> int:
    digest = hashlib.blake2b(" ".join(tokens).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def line_ngrams(question: str | None, n: int) -> list[list[str]]:
    """The question's word n-grams (normalized words), line by line: an n-gram never spans a
    line break, so an instruction line that training sets and benchmarks share ("First perform
    reasoning, then ...") stays apart from the question's own text (see `text_leaks`)."""
    grams = []
    for line in (question or "").splitlines():
        tokens = words(line)
        grams.extend(tokens[i:i + n] for i in range(len(tokens) - n + 1))
    return grams


def ngram_keys(question: str | None, n: int) -> list[int]:
    """Keys of the question's word n-grams (none when no line has n words)."""
    return [_ngram_key(g) for g in line_ngrams(question, n)]


@dataclass(frozen=True)
class BenchmarkItem:
    benchmark: str
    id: str
    question: str | None
    image: bytes | None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in FILE_SUFFIXES and p.is_file())
    return []


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def read_benchmark(path: Path) -> list[BenchmarkItem]:
    """One benchmark's items (every file of a folder). Refuses, with one line, a path that holds
    no parquet/JSON Lines file, or a file without a question column."""
    files = _files(path)
    if not files:
        raise InputError(f"benchmark {path}: no .parquet or .jsonl file there")
    name = path.stem if path.is_file() else path.name
    items = []
    for file in files:
        try:
            table = pq.read_table(file) if file.suffix == ".parquet" else _read_jsonl(file)
        except (OSError, pa.ArrowInvalid, json.JSONDecodeError) as error:
            raise InputError(f"benchmark {name}: {file} cannot be read: {error}") from None
        question = _pick(table.column_names, QUESTION_NAMES)
        if question is None:
            raise InputError(f"benchmark {name}: {file} has no question column (one of "
                             f"{', '.join(QUESTION_NAMES)}; it has {', '.join(table.column_names)})")
        image, id_ = _pick(table.column_names, IMAGE_NAMES), _pick(table.column_names, ID_NAMES)
        questions = table.column(question).to_pylist()
        images = (row_images(table.column(image), [file.parent, path if path.is_dir() else file.parent])
                  if image else [None] * len(questions))
        ids = table.column(id_).to_pylist() if id_ else [f"{file.name}#{i}" for i in range(len(questions))]
        for q, img, i in zip(questions, images, ids):
            items.append(BenchmarkItem(name, str(i), q if isinstance(q, str) else None,
                                       img.data if img is not None else None))
    return items


def _read_jsonl(file: Path) -> pa.Table:
    with file.open() as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return pa.Table.from_pylist(records)


@dataclass
class BenchmarkIndex:
    """The n-grams, short questions and image hashes of every configured benchmark, held while
    one partition is checked (benchmarks are evaluation sets: thousands of items)."""

    ngram_words: int
    rules: MatchRules
    ngrams: dict[int, tuple[str, str]] = field(default_factory=dict)  # key -> (benchmark, id)
    short: dict[int, tuple[str, str]] = field(default_factory=dict)  # text key -> ...
    images: pl.DataFrame | None = None  # signature-like frame: benchmark, id, phash, dhash, ahash
    items: dict[str, int] = field(default_factory=dict)  # benchmark -> items
    removed: dict[str, int] = field(default_factory=dict)  # benchmark -> rows dropped

    @classmethod
    def build(cls, paths: Sequence[str], ngram_words: int, rules: MatchRules) -> BenchmarkIndex:
        index = cls(ngram_words, rules)
        rows = []
        for path in paths:
            items = read_benchmark(Path(path).expanduser())
            name = items[0].benchmark if items else Path(path).name
            if name in index.items:
                raise InputError(f"benchmark {name} is named twice in benchmarks")
            index.items[name] = len(items)
            index.removed[name] = 0
            for item in items:
                origin = (item.benchmark, item.id)
                keys = ngram_keys(item.question, ngram_words)
                for key in keys:
                    index.ngrams.setdefault(key, origin)
                if not keys and words(item.question):
                    index.short.setdefault(text_key(item.question), origin)
                hashes = image_hashes(item.image)
                if hashes is not None:
                    rows.append((item.benchmark, item.id, hashes.phash, hashes.dhash, hashes.ahash))
        index.images = pl.DataFrame(
            rows, schema={"benchmark": pl.String, "id": pl.String, "phash": pl.Int64,
                          "dhash": pl.Int64, "ahash": pl.Int64}, orient="row")
        return index

    def text_hits(self, question: str | None) -> list[tuple[int, str]]:
        """(key, n-gram) of every benchmark n-gram the question holds, in text order."""
        hits = []
        for gram in line_ngrams(question, self.ngram_words):
            key = _ngram_key(gram)
            if key in self.ngrams:
                hits.append((key, " ".join(gram)))
        return hits

    def text_leaks(self, rows: Iterable[tuple[str, str | None]], max_ngram_rows: int
                   ) -> tuple[dict[str, str], dict[str, str]]:
        """(id -> detail of the rows leaking a benchmark question, template n-grams ignored).

        A benchmark n-gram held by more than `max_ngram_rows` of the rows given (a subset's,
        every shard's) is a template (an instruction such as "first perform reasoning, then
        finally select the question from the choices ..." that training sets and benchmarks
        share), not evidence that one benchmark item leaked: it is ignored, and a row is
        contaminated only by an n-gram of no such template (or by the same short question)."""
        hits: dict[str, list[tuple[int, str]]] = {}
        rows_of: Counter = Counter()
        leaks: dict[str, str] = {}
        for row_id, question in rows:
            found = self.text_hits(question)
            if found:
                hits[row_id] = found
                rows_of.update({key for key, _ in found})
            elif self.short:
                hit = self.short.get(text_key(question))
                if hit is not None:
                    leaks[row_id] = f"benchmark {hit[0]} item {hit[1]}: the same question"
        templates = {k for k, n in rows_of.items() if n > max_ngram_rows}
        ignored = {}
        for row_id, found in hits.items():
            specific = [(k, g) for k, g in found if k not in templates]
            for k, g in found:
                if k in templates:
                    ignored.setdefault(g, f"{rows_of[k]} rows")
            if specific:
                key, gram = specific[0]
                benchmark, item = self.ngrams[key]
                leaks[row_id] = (f"benchmark {benchmark} item {item}: shares the "
                                 f"{self.ngram_words}-gram '{gram}'")
        return leaks, ignored

    def image_matches(self, own: pl.DataFrame) -> dict[str, str]:
        """id -> detail for the rows of `own` (signatures) whose image matches a benchmark's."""
        if self.images is None or not self.images.height or not own.height:
            return {}
        image_rules = MatchRules(require_image=True, max_image_distance=self.rules.max_image_distance)
        mine = candidate_keys(own, image_rules)
        theirs = candidate_keys(self.images, image_rules).rename({"row": "item"})
        pairs = mine.join(theirs, on=["kind", "key"]).select("row", "item").unique()
        if not pairs.height:
            return {}
        rows, items = pairs["row"].to_numpy(), pairs["item"].to_numpy()
        distance = hamming(own["phash"].fill_null(0).to_numpy()[rows],
                           self.images["phash"].to_numpy()[items])
        close = pairs.with_columns(distance=pl.Series(distance.astype(np.int64))).filter(
            pl.col("distance") <= self.rules.max_image_distance).sort("row", "distance", "item")
        out = {}
        for row, item, d in close.iter_rows():
            row_id = own["id"][row]
            if row_id not in out:
                out[row_id] = (f"benchmark {self.images['benchmark'][item]} item "
                               f"{self.images['id'][item]}: image (perceptual-hash distance {d})")
        return out

    def count(self, detail: str) -> None:
        name = detail.removeprefix("benchmark ").split(" item ", 1)[0]
        self.removed[name] = self.removed.get(name, 0) + 1
