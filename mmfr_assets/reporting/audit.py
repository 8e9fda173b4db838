"""The audit of every removal: for each stage, filter and reason, the rows it removed per subset,
who decided (a rule, math-verify, the judge, the student's pass rate or only its bounds, the
dedup rule, the cleaner model), and a fixed-seed random sample of the removed rows with the
detail that decided each, so a user can check a filter's precision in minutes before trusting
it on millions of rows.

The sample is the `per_reason` rows of each (subset, stage, reason) whose keyed hash of
(seed, subset, stage, id) is smallest: a uniform sample that a re-run on the same rejections
draws again (blake2b rather than Python's or Polars' hash, which differ between processes or
versions), taken in one streaming pass that keeps `per_reason` rows per reason.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import polars as pl
import pyarrow.dataset as pads

from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import NAME

SAMPLE_SEED = 0
SAMPLE_PER_REASON = 20

#: Reasons a model decided (the rest of their filters' reasons are rules).
MODEL_DECIDED = {
    "text_non_answer_question": "cleaner model (question_review)",
    "text_review_failed": "cleaner model failed (question_review)",
}
#: Stages' filters whose every reason is decided the same way.
FILTER_DECIDED = {
    (NAME.deduplicated, "dedup"): "dedup rule (a near-duplicate of a row kept)",
    (NAME.deduplicated, "benchmark"): "decontamination rule (benchmark n-grams)",
}
_DECIDED_BY = re.compile(r"\(decided by ([\w-]+)\)")


def decided_by(stage: str, filter_: str, reason: str, detail: str | None) -> str:
    """Who removed a row, from its stage, filter, reason and the detail the stage recorded."""
    if reason in MODEL_DECIDED:
        return MODEL_DECIDED[reason]
    if (stage, filter_) in FILTER_DECIDED:
        return FILTER_DECIDED[(stage, filter_)]
    detail = detail or ""
    if filter_ == "correctness":
        if (found := _DECIDED_BY.search(detail)) is not None:
            return found.group(1)
        if "is_consistent" in detail:
            return "dataset label (is_consistent)"
        return "no verdict"
    if filter_ == "difficulty":
        if reason == "difficulty_pass_rate_missing":
            return "no pass rate"
        return "pass-rate bounds" if "between" in detail else "student pass rate"
    return "rule"


@dataclass(frozen=True)
class Removal:
    subset: str
    stage: str
    filter: str
    reason: str
    id: str
    detail: str | None


def _key(seed: int, subset: str, stage: str, row_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{subset}\x00{stage}\x00{row_id}".encode(), digest_size=8).digest()


def audit(
    lake: LakeResource, subsets: Sequence[str], stages: Sequence[str], *,
    per_reason: int = SAMPLE_PER_REASON, seed: int = SAMPLE_SEED,
) -> tuple[pl.DataFrame, list[Removal]]:
    """(subset, stage, filter, reason, decided_by, rows) over the rejections table, and the sample
    of removed rows (sorted by subset, stage, reason, id), in one pass of bounded memory."""
    counts: Counter = Counter()
    heaps: dict[tuple[str, str, str], list] = {}
    table = lake.location(REJECTIONS_TABLE).table()
    if table is not None and subsets and stages:
        scan = table.to_pyarrow_dataset().scanner(
            columns=["subset", "stage", "filter", "reason", "id", "detail"],
            filter=pads.field("subset").isin(list(subsets)) & pads.field("stage").isin(list(stages)),
            batch_size=65536, batch_readahead=1, fragment_readahead=1,
        )
        for batch in scan.to_batches():
            for row in batch.to_pylist():
                group = (row["subset"], row["stage"], row["reason"])
                counts[(row["subset"], row["stage"], row["filter"], row["reason"],
                        decided_by(row["stage"], row["filter"], row["reason"], row["detail"]))] += 1
                # a max-heap of the smallest keys (negated): the row leaves when a smaller one comes
                entry = (_negated(_key(seed, row["subset"], row["stage"], row["id"])), row["id"],
                         row["filter"], row["detail"])
                heap = heaps.setdefault(group, [])
                if len(heap) < per_reason:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:
                    heapq.heapreplace(heap, entry)
    frame = pl.DataFrame(
        [{"subset": k[0], "stage": k[1], "filter": k[2], "reason": k[3], "decided_by": k[4], "rows": n}
         for k, n in counts.items()],
        schema={"subset": pl.String, "stage": pl.String, "filter": pl.String, "reason": pl.String,
                "decided_by": pl.String, "rows": pl.Int64})
    order = {stage: k for k, stage in enumerate(stages)}
    frame = frame.with_columns(pl.col("stage").replace_strict(order, return_dtype=pl.Int32).alias("_o")) \
        .sort("subset", "_o", "reason", "decided_by").drop("_o")
    sample = sorted(
        (Removal(subset, stage, filter_, reason, row_id, detail)
         for (subset, stage, reason), heap in heaps.items() for _, row_id, filter_, detail in heap),
        key=lambda r: (r.subset, order[r.stage], r.reason, r.id))
    return frame, sample


def _negated(key: bytes) -> bytes:
    return bytes(255 - b for b in key)


def sampled_ids(sample: Sequence[Removal]) -> dict[tuple[str, str], dict[str, str]]:
    """(subset, stage) -> {id: reason} of the sampled rows: what the row viewer gives views of."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for removal in sample:
        out.setdefault((removal.subset, removal.stage), {})[removal.id] = removal.reason
    return out


def _detail(removal: Removal) -> str:
    return " ".join(str(removal.detail or "").split())[:200]


def audit_markdown(frame: pl.DataFrame, sample: Sequence[Removal], pages: Mapping[tuple[str, str, str], str],
                   *, base_url: str = "", per_reason: int = SAMPLE_PER_REASON, seed: int = SAMPLE_SEED) -> str:
    """The audit as Markdown (the report's metadata): removals per subset, stage, reason and
    decider; then the sampled rows with their detail and their card in the viewer (`pages`:
    (subset, stage, reason) -> the page relative to the report folder; a link under `base_url`
    where the report is served, else that path)."""
    lines = ["**Rows removed, per subset, stage, reason and who decided**", "",
             "| subset | stage | filter | reason | decided by | rows |",
             "| --- | --- | --- | --- | --- | ---: |"]
    lines += [f"| {s} | {st} | {f} | {r} | {d} | {n} |" for s, st, f, r, d, n in frame.iter_rows()]
    where = "linked" if base_url else "their pages in the report folder"
    lines += ["", f"**A random sample of removed rows** (at most {per_reason} per subset, stage and "
              f"reason, seed {seed}: the same rows on every report of the same lake; viewer cards {where})", "",
              "| subset | stage | reason | id | detail | viewer |", "| --- | --- | --- | --- | --- | --- |"]
    for r in sample:
        page = pages.get((r.subset, r.stage, r.reason))
        card = "not in the viewer" if page is None else (
            f"[card]({base_url.rstrip('/')}/{quote(page)}#{quote(r.id, safe='')})" if base_url else f"{page}#{r.id}")
        lines.append(f"| {r.subset} | {r.stage} | {r.reason} | {r.id} | {_detail(r).replace('|', '/')} | {card} |")
    return "\n".join(lines)


def audit_html(frame: pl.DataFrame, sample: Sequence[Removal], pages: Mapping[tuple[str, str, str], str],
               *, per_reason: int = SAMPLE_PER_REASON, seed: int = SAMPLE_SEED) -> str:
    """The audit section of the report page: the same tables, each sampled row linked to its
    card (`pages` relative to the report folder, where the page is)."""
    from html import escape

    from mmfr_assets.viewer.render import counts_table, link

    removed = counts_table(["subset", "stage", "filter", "reason", "decided by", "rows"],
                           [[escape(str(v)) if not isinstance(v, int) else v for v in row] for row in frame.iter_rows()])
    rows = []
    for r in sample:
        page = pages.get((r.subset, r.stage, r.reason))
        rows.append([escape(r.subset), escape(r.stage), escape(r.reason),
                     link(f"{page}#{quote(r.id, safe='')}", r.id) if page else escape(r.id), escape(_detail(r))])
    return ("<h2 id=\"audit\">Audit: who removed what</h2>" + removed
            + f"<h3>A random sample of removed rows</h3><p>At most {per_reason} per subset, stage and reason "
            f"(seed {seed}: the same rows on every report of the same lake). Open a row's card to check "
            "the decision.</p>" + counts_table(["subset", "stage", "reason", "id", "detail"], rows))
