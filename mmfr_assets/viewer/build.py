"""Write the row viewer as static HTML: for each subset and stage, an index of views (all rows,
kept rows, and the rows of each drop reason: the reason filter) and paginated pages of rows.

One streaming pass per (subset, stage) over the stage's input table, joined in step with the
rejections, the kept ids and the image bytes (`reporting.lookup.SubsequenceLookup`); each view
shows its first `rows_per_view` rows (the index counts them all), written a page at a time, so
memory holds one batch and one page, and the disk holds at most that many images per view.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmfr_assets.image_files import image_extension

from mmfr_assets.exports.names import file_stem, subset_folder
from mmfr_assets.lake.delta import count_rows, read_partition
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.reporting.lookup import SubsequenceLookup
from mmfr_assets.reporting.stats import closing_iter, table_columns
from mmfr_assets.viewer.render import counts_table, link, page, row_card

# The table whose rows each stage decided on (its input), as the viewer shows them.
STAGE_INPUT = {
    "collected": "collected",
    "cleaned": "collected",
    "deduplicated": "cleaned",
    "distilled": "distilled",
    "quality_filtered": "distilled",
    "difficulty_filtered": "quality_filtered",
    "difficulty_filtered_586k": "quality_filtered",
}
# Viewer field -> the columns that hold it, in preference order (collected keeps the card's
# model-specific names; distilled renamed them).
FIELDS = {
    "question": ("question", "original_question"),
    "answer": ("answer", "original_answer"),
    "trace": ("response", "qwen3vl_235b_thinking_response"),
    "trace_origin": ("response_origin",),
    "caption": ("caption", "qwen3vl_235b_instruct_caption"),
    "caption_origin": ("caption_origin",),
    "pass_rate": ("pass_rate", "qwen3vl_4b_pass_rate"),
    "is_consistent": ("is_consistent",),
    "consistency_analysis": ("consistency_analysis",),
}
# Per-row verdict tables other steps add; every column is shown when the table exists.
VERDICT_TABLES = ("answer_verdicts", "student_rollouts")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:80] or "_"


class _View:
    """One filter of a stage's rows, written as pages of `page_size` rows."""

    def __init__(self, folder: Path, slug: str, title: str, *, page_size: int, limit: int) -> None:
        self.folder, self.slug, self.title = folder, slug, title
        self.page_size, self.limit = page_size, limit
        self.total = 0
        self.shown = 0
        self._cards: list[str] = []
        self._pages = 0
        self._dangling = False

    def wants(self) -> bool:
        return self.shown < self.limit

    def add(self, card: str | None) -> None:
        self.total += 1
        if card is not None and self.wants():
            self._cards.append(card)
            self.shown += 1
            if len(self._cards) == self.page_size:
                self._flush(last=False)

    def file(self, number: int) -> str:
        return f"{self.slug}-{number}.html"

    def _flush(self, *, last: bool) -> None:
        if not self._cards and self._pages:
            return
        self._pages += 1
        n = self._pages
        nav = link("index.html", "↑ views") + (link(self.file(n - 1), "← previous") if n > 1 else "")
        nav += link(self.file(n + 1), "next →") if not last else ""
        self._dangling = not last
        body = "\n".join(self._cards) or "<p>No rows.</p>"
        (self.folder / self.file(n)).write_text(page(f"{self.title} · page {n}", body, nav=nav), "utf-8")
        self._cards = []

    def close(self) -> None:
        self._flush(last=True)
        # A page written before we knew it was the last one links to a next page that may not
        # exist: write it as an empty page saying so, rather than leave a dead link.
        if self._dangling:
            (self.folder / self.file(self._pages + 1)).write_text(page(f"{self.title} · end", f"<p>End: {self.shown} rows shown.</p>",
                                nav=link("index.html", "↑ views")), "utf-8")


@dataclass
class StagePages:
    subset: str
    stage: str
    index: Path
    rows: int
    reasons: Counter


def _pick(row: dict[str, Any], columns: Sequence[str]) -> Any:
    for column in columns:
        if column in row and row[column] is not None:
            return row[column]
    return None


def _write_image(folder: Path, row_id: str, data: bytes | None) -> str | None:
    """Write the row's image once per subset; returns its path relative to a stage folder."""
    if data is None:
        return None
    try:
        ext = image_extension(data)
    except Exception:  # corrupt bytes (rows cleaning dropped): shown as "not decodable"
        return None
    name = f"{file_stem(row_id)}.{ext}"
    target = folder / name
    if not target.exists():
        target.write_bytes(data)
    return f"../images/{name}"


def write_stage_pages(
    lake: LakeResource, subset: str, stage: str, root: Path, *,
    page_size: int = 25, rows_per_view: int = 100, batch_size: int = 256,
) -> StagePages | None:
    """The pages of one subset and stage under `root/<subset>/<stage>/`; None when the stage's
    input table does not exist."""
    source = lake.location(STAGE_INPUT[stage])
    if source.table() is None or lake.location(stage).table() is None:
        return None
    if count_rows(source, {"subset": subset}) == 0:  # subset not materialized this far
        return None
    subset_dir = root / subset_folder(subset)
    folder = subset_dir / stage
    images = subset_dir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    images.mkdir(exist_ok=True)
    partition = {"subset": subset}
    views: dict[str, _View] = {}

    def view(slug: str, title: str) -> _View:
        if slug not in views:
            views[slug] = _View(folder, slug, f"{subset} · {stage} · {title}",
                                page_size=page_size, limit=rows_per_view)
        return views[slug]

    view("all", "all rows")
    view("kept", "kept")
    names = [c for c in table_columns(lake, STAGE_INPUT[stage]) if c not in ("image_bytes", "image_path")]
    verdict_tables = [t for t in VERDICT_TABLES if lake.location(t).table() is not None] \
        if STAGE_INPUT[stage] != "collected" else []
    reasons: Counter = Counter()
    lookups = [
        SubsequenceLookup(lake.location(stage), partition, batch_size=batch_size),
        SubsequenceLookup(lake.location(REJECTIONS_TABLE), {"stage": stage, **partition},
                          ["filter", "reason", "detail"], batch_size=batch_size),
        SubsequenceLookup(lake.location("cleaned"), partition, ["image_bytes"], batch_size=64),
        SubsequenceLookup(lake.location("collected"), partition, ["image_bytes"], batch_size=64),
        *[SubsequenceLookup(lake.location(t), partition, [c for c in table_columns(lake, t) if c not in ("subset", "id")], batch_size=batch_size)
          for t in verdict_tables],
    ]
    kept, drops, cleaned, collected, *verdicts = lookups
    rows = 0
    try:
        for batch in closing_iter(read_partition(source, partition, columns=names, batch_size=batch_size)):
            records = batch.to_pylist()
            ids = [r["id"] for r in records]
            is_kept = kept.get(ids)
            dropped = drops.get(ids)
            changed = cleaned.get(ids)
            original = collected.get(ids)
            extra = [lookup.get(ids) for lookup in verdicts]
            for k, record in enumerate(records):
                rows += 1
                drop = dropped[k]
                targets = [views["all"]]
                if drop is not None:
                    reasons[drop["reason"]] += 1
                    targets.append(view(f"reason-{_slug(drop['reason'])}", f"dropped: {drop['reason']}"))
                elif is_kept[k] is not None:
                    targets.append(views["kept"])
                card = None
                if any(v.wants() for v in targets):
                    data = (changed[k] or {}).get("image_bytes") or (original[k] or {}).get("image_bytes")
                    fields = {name: _pick(record, cols) for name, cols in FIELDS.items()}
                    fields["id"] = record["id"]
                    verdict_fields = {
                        f"{table}.{key}": value
                        for table, found in zip(verdict_tables, extra) if found[k] is not None
                        for key, value in found[k].items() if key != "id"
                    }
                    card = row_card(fields, image_src=_write_image(images, record["id"], data),
                                    drop=drop, stage=stage, verdicts=verdict_fields)
                for v in targets:
                    v.add(card)
    finally:
        for lookup in lookups:
            lookup.close()
    for v in views.values():
        v.close()
    table = [[link(v.file(1), v.title.split(" · ")[-1]), v.total, v.shown] for v in views.values()]
    body = (f"<p>{rows} rows entered {stage} from {STAGE_INPUT[stage]}; "
            f"{views['kept'].total} kept, {sum(reasons.values())} dropped. Pick a view "
            "(each drop reason is its own filter):</p>"
            + counts_table(["view", "rows", "shown"], table))
    index = folder / "index.html"
    index.write_text(page(f"{subset} · {stage}", body, nav=link("../../index.html", "↑ all subsets")), "utf-8")
    return StagePages(subset, stage, index, rows, reasons)


def write_viewer(
    lake: LakeResource, subsets: Sequence[str], stages: Sequence[str], root: Path, **options: int
) -> list[StagePages]:
    """All subsets x stages, and `root/index.html` linking them."""
    root.mkdir(parents=True, exist_ok=True)
    written = [p for s in subsets for st in stages
               if (p := write_stage_pages(lake, s, st, root, **options)) is not None]
    rows = [
        [escape_text(p.subset), escape_text(p.stage),
         link(str(p.index.relative_to(root)), "open"), p.rows, sum(p.reasons.values())]
        for p in written
    ]
    body = counts_table(["subset", "stage", "viewer", "rows in", "dropped"], rows) if rows \
        else "<p>No stage table is materialized yet.</p>"
    (root / "index.html").write_text(page("mmfr row viewer", body), "utf-8")
    return written


def escape_text(text: str) -> str:
    from html import escape

    return escape(text)
