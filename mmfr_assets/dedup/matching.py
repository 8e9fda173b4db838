"""Which rows of one subset duplicate a row ranked before them, anywhere in the lake.

A pair of rows is a duplicate when their questions match (same normalized text; or estimated
Jaccard similarity of their character shingles >= `jaccard_threshold`, at most
`max_shingle_difference` shingles differing, and the same numbers) and their images match
(perceptual-hash Hamming distance <= `max_image_distance`), or, with `match: question`, when
their questions match alone.

**Which row is kept.** Rows are ranked by subset (the subsets listed in `subset_order` first,
in that order, then every other subset by name), then by id (string order). A row is dropped
when it duplicates a row ranked before it, and its detail names the best-ranked such row: in a
cluster of copies of one problem that is the one row kept. A row's fate depends only on the
rows ranked before it that it matches, so re-running, adding rows or adding subsets ranked after
it never changes it; only a new matching row ranked before it can drop it.

**Bounded work.** Pairs are never enumerated over the whole lake: candidates are rows sharing
an exact key with a row of the subset, read in one streaming pass over the signatures (and only
the candidates are kept). With images, the keys are the perceptual hash cut into three
21-22-bit pieces (two hashes within distance 2 share one piece: pigeonhole) and the exact
difference and average hashes; without, the MinHash LSH bands datasketch chooses for the
threshold. Only candidate pairs are verified (vectorized numpy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from datasketch import MinHashLSH

from mmfr_assets.dedup.images import hamming
from mmfr_assets.dedup.text import as_matrix, estimated_difference, estimated_jaccard

PHASH_PIECES = ((0, 22), (22, 21), (43, 21))  # (first bit, bits): pigeonhole for distance <= 2
KEY_KINDS = {"phash_piece_0": 0, "phash_piece_1": 1, "phash_piece_2": 2, "dhash": 3, "ahash": 4}
LSH_KIND_BASE = 16  # band i of the text-only keys is kind 16 + i
PAIR_CHUNK_ROWS = 20_000  # own rows joined with their candidates at a time (bounds the pairs held)
CANDIDATE_COLUMNS = ["subset", "id", "text_key", "minhash", "shingle_count", "numbers_key",
                     "image_sha256", "phash", "dhash", "ahash"]
CANDIDATE_TYPES = (pl.String, pl.String, pl.Int64, pl.Binary, pl.Int32, pl.Int64, pl.String,
                   pl.Int64, pl.Int64, pl.Int64)


@dataclass(frozen=True)
class MatchRules:
    """What counts as a duplicate (the `deduplicated` config's thresholds)."""

    jaccard_threshold: float = 0.5
    max_shingle_difference: int | None = 60  # ~3 words replaced; None: Jaccard alone
    same_numbers: bool = True  # the questions' numbers must be the same multiset
    max_image_distance: int = 4
    require_image: bool = True  # False: the question alone decides (`match: question`)
    num_perm: int = 128
    subset_order: tuple[str, ...] = ()

    def lsh_bands(self) -> tuple[int, int]:
        """(bands, rows per band) datasketch picks for the threshold (text-only candidates)."""
        lsh = MinHashLSH(threshold=self.jaccard_threshold, num_perm=self.num_perm)
        return lsh.b, lsh.r


def subset_ranks(subsets: Iterable[str], order: Sequence[str]) -> dict[str, int]:
    """Rank of each subset: those in `order` first (in that order), then the others by name."""
    listed = [s for s in dict.fromkeys(order)]
    rest = sorted(set(subsets) - set(listed))
    return {s: i for i, s in enumerate([*listed, *rest])}


def _band_keys(minhash: pl.Series, rules: MatchRules) -> list[np.ndarray]:
    """One int64 key per row and LSH band. The band's values are mixed with a multiply-xorshift
    in numpy: the keys only live within one run (never stored), so any well-spread, fast
    combination does; a per-row cryptographic hash would cost seconds per million rows."""
    bands, rows = rules.lsh_bands()
    matrix = as_matrix(minhash.to_list(), rules.num_perm).astype(np.uint64)
    keys = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = np.full(matrix.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
            for column in matrix[:, band * rows:(band + 1) * rows].T:
                key = (key ^ column) * np.uint64(0xBF58476D1CE4E5B9)
                key ^= key >> np.uint64(31)
            keys.append(key.view(np.int64))
    return keys


def candidate_keys(signatures: pl.DataFrame, rules: MatchRules) -> pl.DataFrame:
    """(row, kind, key) for every row of `signatures`: the exact keys a duplicate shares with it.
    `row` is the row's position in `signatures`."""
    n = signatures.height
    position = np.arange(n, dtype=np.int64)
    frames = []
    if rules.require_image:
        phash = signatures["phash"]
        present = phash.is_not_null().to_numpy()
        bits = phash.fill_null(0).to_numpy().astype(np.int64).view(np.uint64)
        for kind, (first, width) in enumerate(PHASH_PIECES):
            piece = ((bits >> np.uint64(first)) & np.uint64((1 << width) - 1)).astype(np.int64)
            frames.append((position[present], kind, piece[present]))
        for name in ("dhash", "ahash"):
            values = signatures[name]
            ok = values.is_not_null().to_numpy() & present
            frames.append((position[ok], KEY_KINDS[name], values.fill_null(0).to_numpy()[ok]))
    else:
        for band, key in enumerate(_band_keys(signatures["minhash"], rules)):
            frames.append((position, LSH_KIND_BASE + band, key))
    if not frames:
        return pl.DataFrame(schema={"row": pl.Int64, "kind": pl.Int8, "key": pl.Int64})
    return pl.concat([
        pl.DataFrame({"row": rows, "kind": np.full(len(rows), kind, dtype=np.int8), "key": keys},
                     schema={"row": pl.Int64, "kind": pl.Int8, "key": pl.Int64})
        for rows, kind, keys in frames
    ])


@dataclass
class Candidates:
    """The rows of the lake sharing a key with the subset's rows, gathered batch by batch."""

    own_keys: pl.DataFrame  # (kind, key) of the subset's rows, distinct
    rules: MatchRules
    parts: list[pl.DataFrame] = field(default_factory=list)
    rows_scanned: int = 0
    subsets_seen: dict[str, int] = field(default_factory=dict)

    def add(self, batch: pl.DataFrame) -> None:
        """Keep the rows of `batch` (signature columns, any subsets) sharing a key."""
        self.rows_scanned += batch.height
        for subset, n in batch.group_by("subset").len().iter_rows():
            self.subsets_seen[subset] = self.subsets_seen.get(subset, 0) + n
        keys = candidate_keys(batch, self.rules).join(self.own_keys, on=["kind", "key"], how="semi")
        if keys.height:
            rows = keys["row"].unique().sort()
            self.parts.append(batch[rows.to_list()].select(CANDIDATE_COLUMNS))

    @property
    def candidate_rows(self) -> int:
        return sum(p.height for p in self.parts)

    def frame(self) -> pl.DataFrame:
        if not self.parts:
            return pl.DataFrame(schema=dict(zip(CANDIDATE_COLUMNS, CANDIDATE_TYPES)))
        return pl.concat(self.parts).unique(["subset", "id"], keep="first", maintain_order=True)


def start_candidates(own: pl.DataFrame, rules: MatchRules) -> Candidates:
    keys = candidate_keys(own, rules).select("kind", "key").unique()
    return Candidates(keys, rules)


DUPLICATE_SCHEMA = {"id": pl.String, "kept_subset": pl.String, "kept_id": pl.String,
                    "exact": pl.Boolean, "jaccard": pl.Float64, "image_distance": pl.Int64}


def matched_pairs(own: pl.DataFrame, candidates: pl.DataFrame, rules: MatchRules) -> pl.DataFrame:
    """Every (own row, candidate row) pair that is a duplicate, with its similarity; self-pairs
    excluded. Own rows are joined with candidates PAIR_CHUNK_ROWS at a time."""
    own_keys = candidate_keys(own, rules)
    other_keys = candidate_keys(candidates, rules).rename({"row": "other"})
    own_hash = as_matrix(own["minhash"].to_list(), rules.num_perm)
    other_hash = as_matrix(candidates["minhash"].to_list(), rules.num_perm)
    out = []
    for start in range(0, own.height, PAIR_CHUNK_ROWS):
        chunk = own_keys.filter(pl.col("row").is_between(start, start + PAIR_CHUNK_ROWS - 1))
        pairs = chunk.join(other_keys, on=["kind", "key"]).select("row", "other").unique()
        if not pairs.height:
            continue
        mine, theirs = pairs["row"].to_numpy(), pairs["other"].to_numpy()
        same_text = own["text_key"].to_numpy()[mine] == candidates["text_key"].to_numpy()[theirs]
        jaccard = estimated_jaccard(own_hash[mine], other_hash[theirs])
        near = jaccard >= rules.jaccard_threshold
        if rules.max_shingle_difference is not None:
            near &= estimated_difference(
                jaccard, own["shingle_count"].to_numpy()[mine].astype(np.float64),
                candidates["shingle_count"].to_numpy()[theirs].astype(np.float64),
            ) <= rules.max_shingle_difference
        if rules.same_numbers:
            near &= own["numbers_key"].to_numpy()[mine] == candidates["numbers_key"].to_numpy()[theirs]
        text_ok = same_text | near
        if rules.require_image:
            distance = hamming(own["phash"].fill_null(0).to_numpy()[mine],
                               candidates["phash"].fill_null(0).to_numpy()[theirs])
            ok = text_ok & (distance <= rules.max_image_distance)
        else:
            distance = np.full(len(mine), -1, dtype=np.int64)
            ok = text_ok
        out.append(pl.DataFrame({
            "row": mine[ok], "other": theirs[ok], "same_text": same_text[ok],
            "jaccard": np.where(same_text, 1.0, jaccard)[ok], "image_distance": distance[ok].astype(np.int64),
        }))
    if not out:
        return pl.DataFrame(schema={"row": pl.Int64, "other": pl.Int64, "same_text": pl.Boolean,
                                    "jaccard": pl.Float64, "image_distance": pl.Int64})
    pairs = pl.concat(out)
    return pairs.with_columns(
        own_subset=own["subset"].gather(pairs["row"]), own_id=own["id"].gather(pairs["row"]),
        other_subset=candidates["subset"].gather(pairs["other"]),
        other_id=candidates["id"].gather(pairs["other"]),
        exact=pairs["same_text"] & (own["image_sha256"].gather(pairs["row"])
                                    == candidates["image_sha256"].gather(pairs["other"])).fill_null(False),
    ).filter((pl.col("own_subset") != pl.col("other_subset")) | (pl.col("own_id") != pl.col("other_id")))


def duplicates_of(own: pl.DataFrame, pairs: pl.DataFrame, ranks: dict[str, int]) -> pl.DataFrame:
    """The own rows to drop: those matching a row ranked before them, with the best-ranked one
    (`kept_subset`, `kept_id`). `ranks` must rank every subset of `pairs`."""
    if not pairs.height:
        return pl.DataFrame(schema=DUPLICATE_SCHEMA)
    rank = pl.col("other_subset").replace_strict(ranks, return_dtype=pl.Int64)
    own_rank = pl.col("own_subset").replace_strict(ranks, return_dtype=pl.Int64)
    earlier = pairs.with_columns(_rank=rank, _own_rank=own_rank).filter(
        (pl.col("_rank") < pl.col("_own_rank"))
        | ((pl.col("_rank") == pl.col("_own_rank")) & (pl.col("other_id") < pl.col("own_id")))
    )
    best = earlier.sort("_rank", "other_id").group_by("own_id", maintain_order=True).first()
    return best.select(
        pl.col("own_id").alias("id"), pl.col("other_subset").alias("kept_subset"),
        pl.col("other_id").alias("kept_id"), "exact", "jaccard", "image_distance",
    )


def find_duplicates(
    own: pl.DataFrame, lake_batches: Iterable[pl.DataFrame], rules: MatchRules
) -> tuple[pl.DataFrame, Candidates]:
    """The rows of `own` (one subset's signatures, with `subset`) to drop as duplicates, given
    the signatures of every subset (`lake_batches`, streamed once; may include `own`'s own
    rows, which are then compared with each other too)."""
    gathered = start_candidates(own, rules)
    for batch in lake_batches:
        gathered.add(batch)
    candidates = gathered.frame()
    # `own`'s rows are always compared with each other, whether or not the lake had them yet.
    candidates = pl.concat([own.select(CANDIDATE_COLUMNS), candidates]).unique(
        ["subset", "id"], keep="first", maintain_order=True)
    pairs = matched_pairs(own, candidates, rules)
    ranks = subset_ranks({*gathered.subsets_seen, *candidates["subset"].unique()},
                         rules.subset_order)
    return duplicates_of(own, pairs, ranks), gathered
