"""Which rows of one subset duplicate a row ranked before them, anywhere in the lake.

A pair of rows is a duplicate when their questions match (same normalized text, options in a
canonical order; or estimated Jaccard similarity of their character shingles >=
`jaccard_threshold`, at most `max_shingle_difference` shingles differing, the same numbers, and
asking lines (text.ask) at least `min_ask_jaccard` alike: a shared lecture or rules preamble
counts for less than the line that asks), their answers mean the same thing where both are
known (`same_answer`, answers.py), and their images match (perceptual-hash Hamming distance <=
`max_image_distance`), or, with `match: question`, when their questions and answers match.

**Which row is kept.** Rows are ranked by subset (the subsets listed in `subset_order` first,
in that order, then every other subset by name), then by id (string order). A row is dropped
when it duplicates a row ranked before it, and its detail names the best-ranked such row: in a
cluster of copies of one problem that is the one row kept. A row's fate depends only on the
rows ranked before it that it matches, so re-running, adding rows or adding subsets ranked after
it never changes it, nor does how a subset is split into shards; only a new matching row ranked
before it can drop it.

**Bounded work.** Pairs are never enumerated over the whole lake: candidates are rows sharing
an exact key with a row of the subset, read in one streaming pass over the signatures (and only
the candidates are kept). With images, the keys are the perceptual hash cut into three
21-22-bit pieces (two hashes within distance 2 share one piece: pigeonhole) and the exact
difference and average hashes; without, the MinHash LSH bands datasketch chooses for the
threshold; under `same_numbers` every key also carries the numbers key (a template family over
one figure, each row with its own numbers, shares no key). Candidates equal in every matched
field collapse to their best-ranked member (k exact copies cost k pairs, not k squared). The
remaining pairs are joined `PAIR_BUDGET` at a time and verified `VERIFY_BATCH` at a time
(vectorized numpy, cheap rules first), and only each row's best match is kept: memory is
bounded by the budget and the subset, never by the square of a family's size (measured in
bench/RESULTS.md: 9.9 GB before on a 20,000-row templated subset). Time still grows with the
pairs a family really shares: 20,000 rows of one figure whose questions differ only in a number,
with `same_numbers` off, take ~26 s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mmfr_assets.dedup.images import hamming
from mmfr_assets.dedup.text import ASK_PERM, estimated_difference, estimated_jaccard, series_matrix

PHASH_PIECES = ((0, 22), (22, 21), (43, 21))  # (first bit, bits): pigeonhole for distance <= 2
KEY_KINDS = {"phash_piece_0": 0, "phash_piece_1": 1, "phash_piece_2": 2, "dhash": 3, "ahash": 4}
LSH_KIND_BASE = 16  # band i of the text-only keys is kind 16 + i
PAIR_BUDGET = 1_000_000  # (own row, candidate) key pairs joined at a time
VERIFY_BATCH = 65_536  # pairs verified at a time (two MinHash gathers of 512 bytes a pair)
CANDIDATE_COLUMNS = ["subset", "id", "text_key", "minhash", "shingle_count", "ask_minhash",
                     "ask_shingle_count", "numbers_key", "answer_key", "image_sha256", "phash",
                     "dhash", "ahash"]
CANDIDATE_TYPES = (pl.String, pl.String, pl.Int64, pl.Binary, pl.Int32, pl.Binary, pl.Int32,
                   pl.Int64, pl.Int64, pl.String, pl.Int64, pl.Int64, pl.Int64)


@dataclass(frozen=True)
class MatchRules:
    """What counts as a duplicate (the `deduplicated` config's thresholds)."""

    jaccard_threshold: float = 0.5
    max_shingle_difference: int | None = 60  # ~3 words replaced; None: Jaccard alone
    same_numbers: bool = True  # the questions' numbers must be the same multiset
    same_answer: bool = True  # answers known on both sides must read the same (answers.py)
    min_ask_jaccard: float | None = 0.5  # the asking lines of questions with a preamble; None: off
    max_image_distance: int = 4
    require_image: bool = True  # False: the question alone decides (`match: question`)
    num_perm: int = 128
    subset_order: tuple[str, ...] = ()

    def lsh_bands(self) -> tuple[int, int]:
        """(bands, rows per band) datasketch picks for the threshold (text-only candidates)."""
        from datasketch import MinHashLSH  # here: datasketch imports scipy, ~0.25 s of every run worker's start

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
    matrix = series_matrix(minhash, rules.num_perm).astype(np.uint64)
    keys = []
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = np.full(matrix.shape[0], 0x9E3779B97F4A7C15, dtype=np.uint64)
            for column in matrix[:, band * rows:(band + 1) * rows].T:
                key = (key ^ column) * np.uint64(0xBF58476D1CE4E5B9)
                key ^= key >> np.uint64(31)
            keys.append(key.view(np.int64))
    return keys


def _mix(keys: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Two int64 key arrays combined into one (multiply-xorshift; in-run keys only)."""
    with np.errstate(over="ignore"):
        key = (keys.view(np.uint64) ^ other.astype(np.int64).view(np.uint64)) * np.uint64(0x94D049BB133111EB)
        key ^= key >> np.uint64(29)
    return key.view(np.int64)


def candidate_keys(signatures: pl.DataFrame, rules: MatchRules, *, with_numbers: bool = False) -> pl.DataFrame:
    """(row, kind, key) for every row of `signatures`: the exact keys a duplicate shares with it.
    `row` is the row's position in `signatures`. `with_numbers`: each key mixed with the row's
    `numbers_key`, which every duplicate shares under `same_numbers` (exact text has the same
    numbers too): a template family over one figure, each row with its own numbers, then
    shares no key at all instead of every row pairing with every other."""
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
    if with_numbers:
        numbers = signatures["numbers_key"].fill_null(0).to_numpy()
        frames = [(rows, kind, _mix(keys, numbers[rows])) for rows, kind, keys in frames]
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
    own_rows: pl.DataFrame  # (subset, id) of the subset's rows: held already, not gathered twice
    parts: list[pl.DataFrame] = field(default_factory=list)
    rows_scanned: int = 0
    candidate_rows: int = 0
    subsets_seen: dict[str, int] = field(default_factory=dict)

    def add(self, batch: pl.DataFrame) -> None:
        """Keep the rows of `batch` (signature columns, any subsets) sharing a key."""
        self.rows_scanned += batch.height
        for subset, n in batch.group_by("subset").len().iter_rows():
            self.subsets_seen[subset] = self.subsets_seen.get(subset, 0) + n
        batch = batch.join(self.own_rows, on=["subset", "id"], how="anti")
        keys = candidate_keys(batch, self.rules, with_numbers=self.rules.same_numbers).join(self.own_keys, on=["kind", "key"], how="semi")
        if keys.height:
            rows = keys["row"].unique().sort()
            self.parts.append(batch[rows.to_list()].select(CANDIDATE_COLUMNS))
            self.candidate_rows += rows.len()

    def take(self) -> pl.DataFrame:
        """The gathered rows, once (the parts are released: only the counts stay)."""
        parts, self.parts = self.parts, []
        if not parts:
            return pl.DataFrame(schema=dict(zip(CANDIDATE_COLUMNS, CANDIDATE_TYPES)))
        return pl.concat(parts, rechunk=False).unique(["subset", "id"], keep="first", maintain_order=True)


def start_candidates(own: pl.DataFrame, rules: MatchRules) -> Candidates:
    keys = candidate_keys(own, rules, with_numbers=rules.same_numbers).select("kind", "key").unique()
    return Candidates(keys, rules, own.select("subset", "id"))


DUPLICATE_SCHEMA = {"id": pl.String, "kept_subset": pl.String, "kept_id": pl.String,
                    "exact": pl.Boolean, "jaccard": pl.Float64, "image_distance": pl.Int64}
# Everything a match depends on: candidates equal in all of these are interchangeable, so only
# the best-ranked of them can ever be a row's kept row (`collapse_identical`).
# Every field a match reads, but the question's MinHash (equal where `text_key` is): rows equal
# in all of them match the same rows. The asking line is not implied by `text_key` (the same
# words broken over other lines end in another last line), so it is listed.
MATCH_FIELDS = ["text_key", "shingle_count", "ask_minhash", "ask_shingle_count", "numbers_key",
                "answer_key", "image_sha256", "phash", "dhash", "ahash"]


def ordered_candidates(own: pl.DataFrame, candidates: pl.DataFrame,
                       ranks: dict[str, int]) -> tuple[pl.DataFrame, np.ndarray]:
    """Candidates (with `own`'s rows) sorted by rank then id, with their position `_order` in
    that ranking; and each own row's `_order`. A row can only be dropped for a row of lower
    `_order`, and is kept as the best-ranked (lowest `_order`) row it matches."""
    merged = pl.concat([own.select(CANDIDATE_COLUMNS), candidates.select(CANDIDATE_COLUMNS)]).unique(
        ["subset", "id"], keep="first", maintain_order=True)  # `own` rows are not gathered again
    ranked = merged.lazy().with_columns(
        _rank=pl.col("subset").replace_strict(ranks, return_dtype=pl.Int64)
    ).sort("_rank", "id").with_row_index("_order").with_columns(pl.col("_order").cast(pl.Int64)).collect()
    del merged
    own_order = own.select("subset", "id").join(
        ranked.select("subset", "id", "_order"), on=["subset", "id"], how="left",
        maintain_order="left")["_order"].to_numpy()
    return ranked, own_order


def collapse_identical(ranked: pl.DataFrame) -> pl.DataFrame:
    """The best-ranked candidate of each group equal in every `MATCH_FIELDS` (`ranked` sorted
    by `_order`). Exact: a row matching one member matches all, and the best-ranked member is
    the only one that can be its kept row (a row is never its own duplicate, and every other
    member of its own group ranks after the group's first). A family of k exact copies then
    costs k pairs, not k squared."""
    return ranked.unique(MATCH_FIELDS, keep="first", maintain_order=True)


def _pair_chunks(own_keys: pl.DataFrame, other_keys: pl.DataFrame, budget: int) -> list[tuple[int, int]]:
    """Ranges of own rows whose joined (row, candidate) key pairs number at most `budget`
    (a range holds one row at least): the join of each range is bounded, however large a
    family sharing one figure is."""
    sizes = other_keys.group_by("kind", "key").len()
    per_row = (own_keys.join(sizes, on=["kind", "key"], how="left")
               .group_by("row").agg(pl.col("len").fill_null(0).sum()).sort("row"))
    rows, counts = per_row["row"].to_numpy(), per_row["len"].to_numpy().astype(np.int64)
    chunks, start, total = [], None, 0
    for row, n in zip(rows.tolist(), counts.tolist()):
        if n == 0:
            continue
        if start is not None and total + n > budget:
            chunks.append((start, previous))
            start, total = None, 0
        if start is None:
            start = row
        total, previous = total + n, row
    if start is not None:
        chunks.append((start, previous))
    return chunks


def best_matches(own: pl.DataFrame, own_order: np.ndarray, candidates: pl.DataFrame,
                 rules: MatchRules) -> pl.DataFrame:
    """For every own row matching a candidate ranked before it, the best-ranked such candidate
    (its position in `candidates`, `other`) with the match's similarity. Pairs are joined
    `PAIR_BUDGET` at a time and verified `VERIFY_BATCH` at a time, cheap rules first; only each
    row's best match is kept, so memory is bounded by the budget and the subset, never by the
    square of a family's size."""
    own_keys = candidate_keys(own, rules, with_numbers=rules.same_numbers)
    other_keys = candidate_keys(candidates, rules, with_numbers=rules.same_numbers).rename({"row": "other"})
    mine_cols = _columns(own)
    theirs_cols = _columns(candidates)
    other_order = candidates["_order"].to_numpy()
    own_keys = own_keys.sort("row")
    key_rows = own_keys["row"].to_numpy()
    out = []
    for first, last in _pair_chunks(own_keys, other_keys, PAIR_BUDGET):
        lo, hi = np.searchsorted(key_rows, [first, last + 1])
        chunk = own_keys.slice(int(lo), int(hi - lo))
        pairs = chunk.join(other_keys, on=["kind", "key"]).select("row", "other").unique()
        mine, theirs = pairs["row"].to_numpy(), pairs["other"].to_numpy()
        earlier = other_order[theirs] < own_order[mine]
        mine, theirs = mine[earlier], theirs[earlier]
        for start in range(0, len(mine), VERIFY_BATCH):
            found = _verify(mine[start:start + VERIFY_BATCH], theirs[start:start + VERIFY_BATCH],
                            mine_cols, theirs_cols, rules)
            if found is not None and found.height:
                out.append(found)
        if len(out) > 1:  # keep the best of each row only: the held matches stay bounded
            out = [_best_per_row(pl.concat(out), other_order)]
    if not out:
        return pl.DataFrame(schema={"row": pl.Int64, "other": pl.Int64, "same_text": pl.Boolean,
                                    "jaccard": pl.Float64, "image_distance": pl.Int64})
    return _best_per_row(pl.concat(out), other_order)


def _columns(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The compared columns as numpy arrays (nulls: phash 0, answer_key None as a mask)."""
    asks = frame["ask_shingle_count"]
    return {
        "text_key": frame["text_key"].to_numpy(),
        # MinHashes stay in their Arrow columns: gathered for the pairs verified only
        "minhash": frame["minhash"],
        "ask": frame["ask_minhash"],
        "has_ask": (asks.fill_null(0) > 0).to_numpy(),  # null: signed before asking lines
        "numbers_key": frame["numbers_key"].to_numpy(),
        "shingle_count": frame["shingle_count"].to_numpy().astype(np.float64),
        "phash": frame["phash"].fill_null(0).to_numpy(),
        "answer_key": frame["answer_key"].fill_null(0).to_numpy(),
        "has_answer": frame["answer_key"].is_not_null().to_numpy(),
    }


def _gathered(column: pl.Series, rows: np.ndarray, num_perm: int) -> np.ndarray:
    """The MinHashes of `rows` as a matrix (null, a signature without one: zeros, unused)."""
    return series_matrix(column.gather(rows).fill_null(b"\0" * 4 * num_perm), num_perm)


def _verify(mine: np.ndarray, theirs: np.ndarray, a: dict, b: dict,
            rules: MatchRules) -> pl.DataFrame | None:
    """The candidate pairs (`mine[i]`, `theirs[i]`) that are duplicates."""
    ok = np.ones(len(mine), dtype=bool)
    if rules.same_answer:
        # answers that mean different things are different problems; an unknown answer
        # (no reference) leaves the question and image rules to decide
        known = a["has_answer"][mine] & b["has_answer"][theirs]
        ok &= ~known | (a["answer_key"][mine] == b["answer_key"][theirs])
    if rules.require_image:
        distance = hamming(a["phash"][mine], b["phash"][theirs])
        ok &= distance <= rules.max_image_distance
    else:
        distance = np.full(len(mine), -1, dtype=np.int64)
    if rules.same_numbers:
        ok &= a["numbers_key"][mine] == b["numbers_key"][theirs]
    mine, theirs, distance = mine[ok], theirs[ok], distance[ok]
    if not len(mine):
        return None
    same_text = a["text_key"][mine] == b["text_key"][theirs]
    jaccard = np.ones(len(mine))
    fuzzy = ~same_text
    if fuzzy.any():
        j = estimated_jaccard(_gathered(a["minhash"], mine[fuzzy], rules.num_perm),
                              _gathered(b["minhash"], theirs[fuzzy], rules.num_perm))
        near = j >= rules.jaccard_threshold
        if rules.max_shingle_difference is not None:
            near &= estimated_difference(j, a["shingle_count"][mine[fuzzy]],
                                         b["shingle_count"][theirs[fuzzy]]) <= rules.max_shingle_difference
        if rules.min_ask_jaccard is not None:
            # a shared preamble counts for less than the asking line that differs: the asking
            # lines must match at their own scale too (without a preamble, the question's)
            m, t = mine[fuzzy], theirs[fuzzy]
            judged = a["has_ask"][m] & b["has_ask"][t]
            near &= ~judged | (estimated_jaccard(_gathered(a["ask"], m, ASK_PERM),
                                                 _gathered(b["ask"], t, ASK_PERM)) >= rules.min_ask_jaccard)
        jaccard[fuzzy] = np.where(near, j, -1.0)
    keep = jaccard >= 0
    return pl.DataFrame({"row": mine[keep], "other": theirs[keep], "same_text": same_text[keep],
                         "jaccard": jaccard[keep], "image_distance": distance[keep].astype(np.int64)})


def _best_per_row(matches: pl.DataFrame, other_order: np.ndarray) -> pl.DataFrame:
    """Each own row's match with the best-ranked candidate."""
    return (matches.with_columns(_order=pl.Series(other_order[matches["other"].to_numpy()]))
            .sort("row", "_order").unique("row", keep="first", maintain_order=True).drop("_order"))


def find_duplicates(
    own: pl.DataFrame, lake_batches: Iterable[pl.DataFrame], rules: MatchRules
) -> tuple[pl.DataFrame, Candidates]:
    """The rows of `own` (one subset's signatures, with `subset`) to drop as duplicates, given
    the signatures of every subset (`lake_batches`, streamed once; may include `own`'s own
    rows, which are then compared with each other too): those matching a row ranked before
    them, with the best-ranked one (`kept_subset`, `kept_id`)."""
    gathered = start_candidates(own, rules)
    if not own.height:  # no row of this partition to decide (cleaning dropped them all): nothing read
        return pl.DataFrame(schema=DUPLICATE_SCHEMA), gathered
    for batch in lake_batches:
        gathered.add(batch)
    candidates = gathered.take()
    ranks = subset_ranks({*gathered.subsets_seen, *candidates["subset"].unique(), *own["subset"].unique()},
                         rules.subset_order)
    # `own`'s rows are always compared with each other, whether or not the lake had them yet.
    ranked, own_order = ordered_candidates(own, candidates, ranks)
    del candidates
    ranked = collapse_identical(ranked)
    best = best_matches(own, own_order, ranked, rules)
    if not best.height:
        return pl.DataFrame(schema=DUPLICATE_SCHEMA), gathered
    rows, others = best["row"], best["other"]
    return pl.DataFrame({
        "id": own["id"].gather(rows), "kept_subset": ranked["subset"].gather(others),
        "kept_id": ranked["id"].gather(others),
        "exact": best["same_text"] & (own["image_sha256"].gather(rows)
                                      == ranked["image_sha256"].gather(others)).fill_null(False),
        "jaccard": best["jaccard"], "image_distance": best["image_distance"],
    }, schema=DUPLICATE_SCHEMA), gathered
