"""`dedup_signatures` and `deduplicated`: per subset, between `cleaned` and the teachers.

The Dagster shape. Both assets are partitioned by subset like the rest of the line, so one
subset's run (`mmfr run --subsets X`, a backfill's run of X) holds the whole chain and the
teachers of X never wait for other subsets. `deduplicated[X]` declares the identity dependency
on `dedup_signatures[X]` and also reads the signatures of every other subset materialized so
far: a dependency on all partitions (`AllPartitionMapping`) would make a backfill wait for every
subset's signatures before any teacher starts and split each subset's run in two. What each
materialization compared with is in its metadata (`dedup/compared_subsets`, with the signature
table's version), and the kept-row rule (matching.py) makes the order subsets run in matter only
for cost: a row is dropped only for a row ranked before it, so running subsets in rank order
(`subset_order`, then by name) drops every duplicate before its teachers run, and a subset run
before a better-ranked duplicate of it keeps its row until it is run again.
"""

# No `from __future__ import annotations`: Dagster reads the config class from the annotation.

import contextlib
import functools
import operator
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable
from pydantic import Field

from mmfr_assets.cleaning.assets import CLEANED_SCHEMA
from mmfr_assets.dedup.answers import ANSWER_COLUMNS, reference_answers
from mmfr_assets.dedup.benchmarks import BenchmarkIndex
from mmfr_assets.dedup.filters import FILTERS
from mmfr_assets.dedup.matching import (CANDIDATE_COLUMNS, CANDIDATE_TYPES, MatchRules, find_duplicates,
                                        subset_ranks)
from mmfr_assets.dedup.signatures import SIGNATURE_SCHEMA, pool_map, signature_batch
from mmfr_assets.errors import InputError
from mmfr_assets.lineage import NAME, upstream_of
from mmfr_assets.lake.delta import DeltaLocation, count_rows, read_partition
from mmfr_assets.lake.ordered import PartitionImages
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.partitions import SUBSET, lake_partition, subset_of
from mmfr_assets.progress import for_partition
from mmfr_assets.stage import Verdicts, run_stage, split_by_reason, stage_asset, stage_result, upstream_batches

SIGNATURES, DEDUPLICATED = NAME.dedup_signatures, NAME.deduplicated
# A row both contaminated and a duplicate is dropped as contaminated (the stronger reason).
FILTER_OF = {r: f.name for f in FILTERS for r in f.reasons}
# `cleaned` without the image bytes: readers take them from `cleaned` (by id, in row order).
DEDUPLICATED_SCHEMA = pa.schema([f for f in CLEANED_SCHEMA if f.name != "image_bytes"])
CAPTION, RESPONSE = "qwen3vl_235b_instruct_caption", "qwen3vl_235b_thinking_response"
ANSWERS = [c for c in ANSWER_COLUMNS if c in CLEANED_SCHEMA.names]  # the verifier's references
SCAN_BATCH = 16_384  # signature rows read at a time from the whole table (~1 KB a row)


class DedupSignaturesConfig(dg.Config):
    """How signatures are computed (must be the same for every subset compared)."""

    num_perm: int = Field(default=128, description="MinHash permutations per question "
                          "(datasketch). Subsets signed with another value are not comparable.")
    batch_size: int = Field(default=256, description="Cleaned rows read at a time.")
    image_workers: int = Field(default=0, description="Threads hashing images; 0 = one per core.")


class DeduplicatedConfig(dg.Config):
    """What counts as a duplicate and which copy is kept (defaults: measured on planted copies
    of the real sample, bench/RESULTS.md)."""

    match: Literal["question_and_image", "question"] = Field(
        default="question_and_image", description="question_and_image: a duplicate needs the "
        "same question and the same figure (the same figure with another question, or the same "
        "question over another figure, are different problems); question: the text alone.")
    jaccard_threshold: float = Field(default=0.5, description="Least estimated Jaccard "
                                     "similarity of the questions' character 4-grams.")
    max_shingle_difference: int | None = Field(default=60, description="Most 4-grams in one "
        "question and not the other (~3 words replaced); null: Jaccard alone.")
    same_numbers: bool = Field(default=True, description="Near-duplicate questions must hold the "
                               "same numbers (a template filled with other numbers differs).")
    min_ask_jaccard: float | None = Field(default=0.5, description="Where both questions have "
        "a preamble (a lecture, a game's rules: their asking line, the last line of the stem, is "
        "at most half the text), least estimated Jaccard similarity of the asking lines: a "
        "shared preamble counts for less than the part that differs. null: off.")
    same_answer: bool = Field(default=True, description="Duplicates must have answers that mean "
        "the same thing (the verifier's reading: option letters resolved to their text, numbers "
        "as numbers); a row without a reference answer is matched on question and image alone.")
    max_image_distance: int = Field(default=4, description="Most differing bits of the 64-bit "
                                    "perceptual hashes (imagehash.phash) of two matching images.")
    subset_order: list[str] = Field(default=[], description="Subsets whose rows are kept first, "
        "in this order; the others follow by name; inside a subset the smallest id is kept.")
    benchmarks: list[str] = Field(default=[], description="Benchmarks to decontaminate against: "
        "folders (or files) of parquet / JSON Lines with a question column and optionally an "
        "image and an id; the benchmark's name is the folder's (or file's stem). Rows sharing a "
        "`ngram_words`-gram with a benchmark question, or whose image matches a benchmark "
        "image (max_image_distance), are dropped as `contaminated`.")
    ngram_words: int = Field(default=13, description="Words of the n-grams compared with "
                             "benchmark questions (13: the usual decontamination setting).")
    max_ngram_rows: int = Field(default=5, description="A benchmark n-gram held by more rows "
        "of the subset (all its shards) than this is a shared template (an instruction), not a leak: ignored.")
    batch_size: int = Field(default=1024, description="Cleaned rows read at a time.")

    def rules(self, num_perm: int) -> MatchRules:
        """The thresholds as matching reads them (`num_perm`: the signatures'); refuses values
        outside their range with one line."""
        problems = [
            f"{name} must be {rule}, got {value!r}"
            for name, value, ok, rule in (
                ("jaccard_threshold", self.jaccard_threshold, 0 < self.jaccard_threshold <= 1, "in (0, 1]"),
                ("min_ask_jaccard", self.min_ask_jaccard,
                 self.min_ask_jaccard is None or 0 < self.min_ask_jaccard <= 1, "in (0, 1] or null"),
                ("max_image_distance", self.max_image_distance, 0 <= self.max_image_distance <= 64, "in [0, 64]"),
                ("max_shingle_difference", self.max_shingle_difference,
                 self.max_shingle_difference is None or self.max_shingle_difference >= 0, ">= 0 or null"),
                ("ngram_words", self.ngram_words, self.ngram_words >= 1, ">= 1"),
                ("max_ngram_rows", self.max_ngram_rows, self.max_ngram_rows >= 1, ">= 1"),
            ) if not ok]
        if problems:
            raise InputError(f"deduplicated: {'; '.join(problems)}")
        return MatchRules(
            jaccard_threshold=self.jaccard_threshold,
            max_shingle_difference=self.max_shingle_difference,
            same_numbers=self.same_numbers, same_answer=self.same_answer,
            min_ask_jaccard=self.min_ask_jaccard,
            max_image_distance=self.max_image_distance,
            require_image=self.match == "question_and_image", num_perm=num_perm,
            subset_order=tuple(self.subset_order),
        )


def build_dedup_signatures(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @stage_asset(
        partitions,
        group="cleaning",
        description="What comparing a cleaned row needs, and no image or text: a key of its "
        "normalized question, a MinHash of its character 4-grams (datasketch) and of its asking "
        "line, its numbers, a key of its reference answer as the verifier reads it, its "
        "image's perceptual hashes (imagehash) and SHA-256. One row per cleaned row.",
    )
    def dedup_signatures(
        context: dg.AssetExecutionContext, config: DedupSignaturesConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        workers = config.image_workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool, contextlib.ExitStack() as stack:
            images = stack.enter_context(PartitionImages(lake, subset))

            def decide(batch: pl.DataFrame) -> Verdicts:
                ids = batch["id"].to_list()
                data = images.take(ids, batch["image_bytes"].to_list())
                frame = signature_batch(
                    ids, batch["question"].to_list(), data, batch["image_sha256"].to_list(),
                    num_perm=config.num_perm, map_images=pool_map(pool),
                    captions=batch[CAPTION].to_list(), traces=batch[RESPONSE].to_list(),
                    answers=reference_answers(batch.select(ANSWERS).iter_rows(named=True)))
                return Verdicts.no_drops(frame.with_columns(subset=pl.lit(subset_of(subset))))

            run = run_stage(
                lake, stage=SIGNATURES, subset=subset,
                batches=upstream_batches(lake, upstream_of(SIGNATURES), subset, batch_size=config.batch_size,
                                         columns=["id", "question", "image_sha256", "image_bytes",
                                                  CAPTION, RESPONSE, *ANSWERS]),
                decide=decide, schema=SIGNATURE_SCHEMA,
                progress=for_partition(context, SIGNATURES, count_rows(
                    lake.location(upstream_of(SIGNATURES)), lake_partition(subset))),
            )
        return stage_result(lake, run, upstream=upstream_of(SIGNATURES))

    return dedup_signatures


@dataclass(frozen=True)
class SignatureSnapshot:
    """The signature table at one version, opened once per run of `deduplicated`: its Delta log
    is read once (on an object store, one listing and a replay of every commit), and everything
    the run reads of it (its own rows, the rows ranked before, the counts, the version it
    records) is of that one version, while other subsets' runs go on committing."""

    location: DeltaLocation
    table: DeltaTable | None

    @classmethod
    def of(cls, lake: LakeResource) -> "SignatureSnapshot":
        location = lake.location(SIGNATURES)
        return cls(location, location.table())

    @property
    def version(self) -> int | None:
        return self.table.version() if self.table is not None else None

    def columns(self) -> list[str]:
        """The matching columns the table holds. A table written before `answer_key` existed
        lacks it: its rows are read with a null answer key (the answer rule then does not apply
        to them, as for a row without a reference) until `dedup_signatures` is re-materialized."""
        names = set(self.table.schema().to_arrow().names) if self.table is not None else set(CANDIDATE_COLUMNS)
        return [c for c in [*CANDIDATE_COLUMNS, "num_perm"] if c in names]

    def read(self, partition: dict[str, str], where: pads.Expression | None = None):
        return read_partition(self.location, partition, columns=self.columns(), batch_size=SCAN_BATCH,
                              where=where, table=self.table)


def _with_all_columns(frame: pl.DataFrame) -> pl.DataFrame:
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in zip(CANDIDATE_COLUMNS, CANDIDATE_TYPES)
               if c not in frame.columns]
    return frame.with_columns(missing).select([*CANDIDATE_COLUMNS, "num_perm"]) if missing else frame


def lake_signatures(snapshot: SignatureSnapshot, num_perm: int, where: pads.Expression | None = None):
    """Every subset's signatures, streamed (the columns matching reads); refuses rows signed
    with another `num_perm`, which cannot be compared. `where` (`needed_signatures`) reads only
    the rows a partition's matching can use."""
    with snapshot.read({}, where) as reader:
        for batch in reader:
            frame = _with_all_columns(pl.from_arrow(batch))
            other = frame.filter(pl.col("num_perm") != num_perm)
            if other.height:
                raise InputError(
                    f"deduplicated: dedup_signatures of {', '.join(sorted(set(other['subset'])))} "
                    f"were computed with num_perm {other['num_perm'][0]}, not {num_perm}: "
                    "re-materialize them with the same num_perm")
            yield frame.drop("num_perm")


def signature_counts(snapshot: SignatureSnapshot) -> dict[str, int]:
    """Rows per subset of the signature table, from its log (no file is read)."""
    table = snapshot.table
    if table is None:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True))
    if not actions.num_rows:
        return {}
    counts = pl.from_arrow(actions.select([f"partition.{SUBSET}", "num_records"]))
    return dict(counts.group_by(f"partition.{SUBSET}").agg(pl.col("num_records").sum()).iter_rows())


def needed_signatures(own: pl.DataFrame, partition: str, subsets: Iterable[str],
                      rules: MatchRules) -> tuple[list[str], pads.Expression]:
    """The subsets, and the filter of the signature rows, that can decide the fate of
    `partition`'s rows (`own`, its signatures, held already): the same decisions as reading
    the whole table, from fewer rows.

    - A row is dropped only for a row ranked before it, and subsets rank as wholes: a subset
      ranked after the partition's holds no row that can drop one of its rows (not read).
    - The partition's own rows are held (`own`): its other shards only are read.
    - Under `same_numbers` every candidate key carries the numbers key (matching.py), and a
      duplicate has the same numbers: only rows whose `numbers_key` one of `own`'s has can
      become candidates. Rows signed with another `num_perm` are read too, to be refused.
    """
    mine = subset_of(partition)
    ranks = subset_ranks({*subsets, mine}, rules.subset_order)
    needed = sorted(s for s in ranks if ranks[s] <= ranks[mine])
    where = pads.field(SUBSET).isin(needed)
    held = lake_partition(partition)
    where &= ~functools.reduce(operator.and_, (pads.field(k) == v for k, v in held.items()))
    if rules.same_numbers:
        keys = own["numbers_key"]
        values = keys.drop_nulls().unique()
        same = pads.field("numbers_key").isin(pa.array(values.to_list(), pa.int64()))
        if keys.null_count() or (values == 0).any():  # a null key is matched as 0 (matching.py)
            same |= pads.field("numbers_key").is_null() | (pads.field("numbers_key") == 0)
        where &= same | (pads.field("num_perm") != rules.num_perm)
    return needed, where


def teacher_asks(rows: pl.DataFrame) -> dict[str, int]:
    """Rows the two teachers would have had to write (no usable dataset annotation), by
    teacher: what dropping `rows` saves with the teachers' default `regenerate: false`."""
    def missing(column: str) -> int:
        if column not in rows.columns:
            return rows.height
        value = pl.col(column)
        return rows.select((value.is_null() | (value.str.strip_chars() == "")).sum()).item()
    return {"caption_teacher": missing(CAPTION), "cot_teacher": missing(RESPONSE)}


def dedup_verdicts(batch: pl.DataFrame, leaks: dict[str, str], duplicates: dict[str, str]) -> Verdicts:
    """A batch of cleaned rows split: `contaminated` where `leaks` has the row (id -> detail),
    else `duplicate_of` where `duplicates` has it (id -> the kept row), else kept."""
    ids = batch["id"].to_list()
    reasons = ["contaminated" if i in leaks else "duplicate_of" if i in duplicates else None
               for i in ids]
    details = [leaks.get(i) or duplicates.get(i) for i in ids]
    tagged = batch.with_columns(_dedup_reason=pl.Series(reasons, dtype=pl.String),
                                _dedup_detail=pl.Series(details, dtype=pl.String))
    verdicts = split_by_reason(tagged, pl.col("_dedup_reason"), FILTER_OF,
                               detail=pl.col("_dedup_detail"))
    return Verdicts(verdicts.kept.drop("_dedup_reason", "_dedup_detail"), verdicts.dropped)


def build_deduplicated(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @stage_asset(
        partitions,
        group="cleaning",
        all_shards=[SIGNATURES],
        description="Cleaned rows minus near-duplicates of rows ranked before them in any "
        "subset materialized so far (`duplicate_of`, the kept row's (subset, id) in the detail) "
        "and minus rows leaked from the configured benchmarks (`contaminated`). "
        "What the teachers read: a duplicate costs no teacher call. Images stay in `cleaned`.",
    )
    def deduplicated(
        context: dg.AssetExecutionContext, config: DeduplicatedConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset = context.partition_key
        snapshot = SignatureSnapshot.of(lake)
        own, num_perm = _own_signatures(snapshot, subset)
        rules = config.rules(num_perm)
        in_lake = signature_counts(snapshot)
        compared, where = needed_signatures(own, subset, in_lake, rules)
        duplicates, gathered = find_duplicates(own, lake_signatures(snapshot, rules.num_perm, where), rules)
        duplicate_detail = {i: f"({s}, {k})" for i, s, k in
                            duplicates.select("id", "kept_subset", "kept_id").iter_rows()}
        benchmarks = (BenchmarkIndex.build(config.benchmarks, config.ngram_words, rules)
                      if config.benchmarks else None)
        leaks, templates = {}, {}
        if benchmarks is not None:
            leaks.update(benchmarks.image_matches(own))
            # Every shard's questions, not only this run's: whether a benchmark n-gram is a
            # template is decided over the subset (`max_ngram_rows` rows of it), so a shard's
            # verdicts do not depend on MMFR_SHARDS; only this shard's rows are decided below.
            with contextlib.closing(upstream_batches(
                    lake, upstream_of(DEDUPLICATED), subset_of(subset), batch_size=config.batch_size,
                    columns=["id", "question"])) as questions:
                text, templates = benchmarks.text_leaks(
                    (row for batch in questions for row in batch.iter_rows()),
                    config.max_ngram_rows)
            leaks.update(text)  # a text leak's detail wins over an image match's
        signed = set(own["id"].to_list())
        stale = own["ask_shingle_count"].null_count()
        del own  # the subset's signatures are not needed while its rows are written
        unsigned: list[str] = []
        saved = {"caption_teacher": 0, "cot_teacher": 0}

        def decide(batch: pl.DataFrame) -> Verdicts:
            unsigned.extend(i for i in batch["id"].to_list() if i not in signed)
            verdicts = dedup_verdicts(batch, leaks, duplicate_detail)
            dropped = batch.join(verdicts.dropped.select("id", "detail"), on="id", how="inner")
            for teacher, n in teacher_asks(dropped).items():
                saved[teacher] += n
            if benchmarks is not None:
                for detail in verdicts.dropped.filter(pl.col("reason") == "contaminated")["detail"]:
                    benchmarks.count(detail)
            return verdicts

        run = run_stage(
            lake, stage=DEDUPLICATED, subset=subset,
            batches=upstream_batches(lake, upstream_of(DEDUPLICATED), subset, batch_size=config.batch_size,
                                     columns=DEDUPLICATED_SCHEMA.names),
            decide=decide, schema=DEDUPLICATED_SCHEMA, filters=FILTERS,
            progress=for_partition(context, DEDUPLICATED, count_rows(
                lake.location(upstream_of(DEDUPLICATED)), lake_partition(subset))),
        )
        if stale:
            context.log.warning(
                f"deduplicated {subset}: {stale} signatures predate answer keys and asking lines "
                "(an older dedup_signatures): they were matched on question and image alone; "
                "re-materialize dedup_signatures for the answer and asking-line rules")
        if unsigned:
            context.log.warning(
                f"deduplicated {subset}: {len(unsigned)} cleaned rows have no signature (e.g. "
                f"{unsigned[0]!r}): dedup_signatures is older than cleaned; they were kept")
        return stage_result(lake, run, upstream=upstream_of(DEDUPLICATED), extra={
            # the subsets ranked up to this one, whole: those whose rows can drop its rows
            "dedup/compared_subsets": dg.MetadataValue.json(
                {s: in_lake[s] for s in compared if in_lake.get(s)}),
            "dedup/signatures_version": dg.MetadataValue.text(str(snapshot.version)),
            "dedup/candidate_rows": dg.MetadataValue.text(str(gathered.candidate_rows)),
            "dedup/signature_rows_scanned": dg.MetadataValue.text(str(gathered.rows_scanned)),
            "dedup/duplicates": dg.MetadataValue.json({
                "exact": int(duplicates["exact"].sum()), "near": int((~duplicates["exact"]).sum()),
                "within_subset": int((duplicates["kept_subset"] == subset_of(subset)).sum()),
                "other_subsets": int((duplicates["kept_subset"] != subset_of(subset)).sum())}),
            "dedup/teacher_calls_saved": dg.MetadataValue.json(saved),
            "dedup/rules": dg.MetadataValue.json(config.model_dump()),
            "dedup/rows_without_signature": dg.MetadataValue.text(str(len(unsigned))),
            "dedup/signatures_without_answer_rules": dg.MetadataValue.text(str(stale)),
            # benchmark -> items checked and rows this partition dropped for it
            "decontamination/benchmarks": dg.MetadataValue.json(
                {name: {"items": benchmarks.items[name], "rows_removed": benchmarks.removed[name]}
                 for name in sorted(benchmarks.items)} if benchmarks is not None else {}),
            "decontamination/template_ngrams_ignored": dg.MetadataValue.json(
                dict(sorted(templates.items())[:20])),
        })

    return deduplicated


def _own_signatures(snapshot: SignatureSnapshot, subset: str) -> tuple[pl.DataFrame, int]:
    """The subset's own signatures, whole (one subset's signatures: ~0.6 KB a row), and the
    MinHash size they were computed with (every other subset must have the same)."""
    parts = []
    with snapshot.read(lake_partition(subset)) as reader:
        for batch in reader:
            parts.append(_with_all_columns(pl.from_arrow(batch)))
    if not parts:  # no signatures: an empty subset, or dedup_signatures not materialized
        return pl.from_arrow(pa.table(
            {c: pa.array([], SIGNATURE_SCHEMA.field(c).type) for c in CANDIDATE_COLUMNS})), 128
    own = pl.concat(parts, rechunk=False)  # no second copy of the subset
    sizes = own["num_perm"].unique().to_list()
    if len(sizes) != 1:
        raise InputError(f"deduplicated: dedup_signatures of {subset} mix num_perm {sizes}: "
                         "re-materialize them")
    return own.drop("num_perm"), int(sizes[0])
