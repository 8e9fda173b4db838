"""Write the row viewer as static HTML: for each subset and stage, an index of views (all rows,
kept rows, and the rows of each drop reason: the reason filter) and paginated pages of rows.

One streaming pass per (subset, stage) over the stage's input table, joined in step with the
rejections, the kept ids and the image bytes (`lake.lookup.SubsequenceLookup`); each view
shows its first `rows_per_view` rows (the index counts them all), written a page at a time, so
memory holds one batch and one page, and the disk holds at most that many images per view.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmfr_assets.files import file_stem, image_extension, subset_folder, unreadable_image
from mmfr_assets.lake.delta import count_rows, read_partition
from mmfr_assets.lake.lookup import SubsequenceLookup, SupersequenceLookup, closing_iter, table_columns
from mmfr_assets.lake.ordered import training_image
from mmfr_assets.lake.resource import REJECTIONS_TABLE, LakeResource
from mmfr_assets.lineage import NAME, NODES, STAGE_NAMES, row_level, viewer_input
from mmfr_assets.viewer.render import counts_table, link, page, page_nav, row_card

# The table whose rows each stage decided on (its input), as the viewer shows them.
STAGE_INPUT = {stage: viewer_input(stage) for stage in STAGE_NAMES}
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
# The model steps' tables whose columns each stage's cards show (when the table exists): a
# model step has no pages of its own; its materialization links the page of the stage that
# shows its rows (`lineage.STEP_SHOWN_IN`).
STEP_TABLES = {stage: NODES[stage].shows for stage in STAGE_NAMES}
# Columns of those tables not repeated on a card: the row's own fields, shown above.
STEP_COLUMNS_SHOWN_ELSEWHERE = {"subset", "id", "caption", "response"}
# How far down the lineage each table's rows are (`lineage.row_level`).
ROW_LEVEL = {name: row_level(name) for name in NODES}


def rows_lookup(lake: LakeResource, table: str, stream: str, partition: dict[str, str],
                columns: Sequence[str] = (), *, batch_size: int = 256) -> SubsequenceLookup:
    """The lookup of `table`'s rows by the ids of `stream` (read in order): a
    `SupersequenceLookup` when `table` holds every row of `stream` (it is upstream of it or
    beside it), else a `SubsequenceLookup`."""
    kind = SupersequenceLookup if ROW_LEVEL[table] <= ROW_LEVEL[stream] else SubsequenceLookup
    return kind(lake.location(table), partition, columns, batch_size=batch_size)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:80] or "_"


class _View:
    """One filter of a stage's rows, written as pages of `page_size` rows.

    Pages are written as the partition streams, before the number of pages is known; each
    carries a placeholder where its navigation goes, filled in by `close` ("page 2 of 7" and
    every page by number). A view holds at most `rows_per_view` rows, so that is a few files."""

    NAV = "<!--mmfr:nav-->"

    def __init__(self, folder: Path, slug: str, title: str, *, page_size: int, limit: int) -> None:
        self.folder, self.slug, self.title = folder, slug, title
        self.page_size, self.limit = page_size, limit
        self.total = 0
        self.shown = 0
        self._cards: list[str] = []
        self._pages = 0

    def wants(self) -> bool:
        return self.shown < self.limit

    def add(self, card: str | None) -> None:
        self.total += 1
        if card is not None and self.wants():
            self._cards.append(card)
            self.shown += 1
            if len(self._cards) == self.page_size:
                self._flush()

    def file(self, number: int) -> str:
        return f"{self.slug}-{number}.html"

    @property
    def pages(self) -> int:
        return self._pages

    def _flush(self) -> None:
        if not self._cards and self._pages:
            return
        self._pages += 1
        n = self._pages
        first = (n - 1) * self.page_size + 1
        body = (f"<p>rows {first}–{first + len(self._cards) - 1} of {{shown}}</p>"
                + "\n".join(self._cards)) if self._cards else "<p>No rows.</p>"
        (self.folder / self.file(n)).write_text(page(f"{self.title} · page {n}", body, nav=self.NAV), "utf-8")
        self._cards = []

    def close(self) -> None:
        self._flush()
        more = f" (of {self.total} in this view)" if self.total > self.shown else ""
        for n in range(1, self._pages + 1):
            path = self.folder / self.file(n)
            nav = page_nav(link("index.html", "↑ views"), n, self._pages, self.file)
            path.write_text(path.read_text("utf-8").replace(self.NAV, nav, 1)
                            .replace("{shown}", f"{self.shown} shown{more}", 1), "utf-8")


@dataclass
class StagePages:
    subset: str
    stage: str
    index: Path
    rows: int
    reasons: Counter
    samples: dict[str, str]  # reason -> the page of its audit sample, relative to the viewer root


def _pick(row: dict[str, Any], columns: Sequence[str]) -> Any:
    for column in columns:
        if column in row and row[column] is not None:
            return row[column]
    return None


def _write_image(folder: Path, row_id: str, data: bytes | None) -> tuple[str | None, str]:
    """Write the row's image once per subset: (its path relative to a stage folder, "") or
    (None, what a reader is told instead)."""
    if data is None:
        return None, "no image: the source row has none"
    try:
        ext = image_extension(data)
    except Exception:  # corrupt bytes (rows cleaning dropped): the reader is told what is wrong
        return None, f"image not shown: {unreadable_image(data)}"
    name = f"{file_stem(row_id)}.{ext}"
    target = folder / name
    if not target.exists():
        target.write_bytes(data)
    return f"../images/{name}", ""


class _StageImages:
    """The image each row of a stage's input is trained on: cleaning's bytes where it changed
    the image, else the original in `collected` (`lake.ordered.training_image`, the rule
    `mmfr export` and the model steps use). `PartitionImages` needs every id in `cleaned`;
    the viewer also shows rows cleaning dropped, so both tables are read with `rows_lookup`."""

    def __init__(self, lake: LakeResource, stream: str, partition: dict[str, str]) -> None:
        self._cleaned = rows_lookup(lake, NAME.cleaned, stream, partition, ["image_bytes"], batch_size=64)
        self._collected = rows_lookup(lake, NAME.collected, stream, partition, ["image_bytes"], batch_size=64)

    def get(self, ids: Sequence[str]) -> list[bytes | None]:
        changed, original = self._cleaned.get(ids), self._collected.get(ids)
        return [training_image((c or {}).get("image_bytes"), (o or {}).get("image_bytes"))
                for c, o in zip(changed, original)]

    @property
    def missing(self) -> int:
        """Rows `collected` does not hold (an out-of-date table): shown without an image."""
        return getattr(self._collected, "missing", 0)

    def close(self) -> None:
        self._cleaned.close()
        self._collected.close()


def write_stage_pages(
    lake: LakeResource, subset: str, stage: str, root: Path, *,
    page_size: int = 25, rows_per_view: int = 100, batch_size: int = 256,
    sampled: Mapping[str, str] | None = None,
) -> StagePages | None:
    """The pages of one subset and stage under `root/<subset>/<stage>/`; None when the stage's
    input table does not exist. `sampled` (id -> reason: the report's audit sample of removed
    rows) get a view per reason, one page that shows every sampled row of it."""
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
    sampled = sampled or {}
    per_reason = Counter(sampled.values())
    samples = {reason: _View(folder, f"sample-{_slug(reason)}", f"{subset} · {stage} · audit sample: {reason}",
                             page_size=n, limit=n) for reason, n in sorted(per_reason.items())}
    views.update({v.slug: v for v in samples.values()})
    names = [c for c in table_columns(lake, STAGE_INPUT[stage]) if c not in ("image_bytes", "image_path")]
    stream = STAGE_INPUT[stage]
    verdict_tables = [t for t in STEP_TABLES[stage] if lake.location(t).table() is not None]
    reasons: Counter = Counter()
    lookups = [
        SubsequenceLookup(lake.location(stage), partition, batch_size=batch_size),
        SubsequenceLookup(lake.location(REJECTIONS_TABLE), {"stage": stage, **partition},
                          ["filter", "reason", "detail"], batch_size=batch_size),
        _StageImages(lake, stream, partition),
        *[rows_lookup(lake, t, stream, partition,
                      [c for c in table_columns(lake, t) if c not in STEP_COLUMNS_SHOWN_ELSEWHERE],
                      batch_size=batch_size)
          for t in verdict_tables],
    ]
    kept, drops, row_images, *verdicts = lookups
    rows = 0
    try:
        for batch in closing_iter(read_partition(source, partition, columns=names, batch_size=batch_size)):
            records = batch.to_pylist()
            ids = [r["id"] for r in records]
            is_kept = kept.get(ids)
            dropped = drops.get(ids)
            images_of = row_images.get(ids)
            extra = [lookup.get(ids) for lookup in verdicts]
            for k, record in enumerate(records):
                rows += 1
                drop = dropped[k]
                targets = [views["all"]]
                if drop is not None:
                    reasons[drop["reason"]] += 1
                    targets.append(view(f"reason-{_slug(drop['reason'])}", f"dropped: {drop['reason']}"))
                    if sampled.get(record["id"]) == drop["reason"]:
                        targets.append(samples[drop["reason"]])
                elif is_kept[k] is not None:
                    targets.append(views["kept"])
                card = None
                if any(v.wants() for v in targets):
                    image_src, image_note = _write_image(images, record["id"], images_of[k])
                    fields = {name: _pick(record, cols) for name, cols in FIELDS.items()}
                    fields["id"] = record["id"]
                    verdict_fields = {
                        f"{table}.{key}": value
                        for table, found in zip(verdict_tables, extra) if found[k] is not None
                        for key, value in found[k].items() if key != "id"
                    }
                    card = row_card(fields, image_src=image_src, image_note=image_note,
                                    drop=drop, stage=stage, verdicts=verdict_fields)
                for v in targets:
                    v.add(card)
        not_found = row_images.missing
    finally:
        for lookup in lookups:
            lookup.close()
    for v in views.values():
        v.close()
    table = [[link(v.file(1), v.title.split(" · ")[-1]), v.total, v.shown, v.pages] for v in views.values()]
    stale = (f"<p class=\"drop\">{not_found} rows of {escape_text(stream)} are not in collected "
             "(an out-of-date table: re-materialize the subset); they are shown without images.</p>"
             if not_found else "")
    entered = (f"{rows} rows collected from the source" if stream == stage
               else f"{rows} rows entered {stage} from {stream}")
    body = (f"<p>{entered}; "
            f"{views['kept'].total} kept, {sum(reasons.values())} dropped. Pick a view "
            "(each drop reason is its own filter):</p>" + stale
            + counts_table(["view", "rows", "shown", "pages"], table))
    index = folder / "index.html"
    index.write_text(page(f"{subset} · {stage}", body, nav=link("../../index.html", "↑ all subsets")), "utf-8")
    return StagePages(subset, stage, index, rows, reasons,
                      {reason: (folder / v.file(1)).relative_to(root).as_posix() for reason, v in samples.items()})


def write_viewer(
    lake: LakeResource, subsets: Sequence[str], stages: Sequence[str], root: Path,
    sampled: Mapping[tuple[str, str], Mapping[str, str]] | None = None, **options: int
) -> list[StagePages]:
    """All subsets x stages, and `root/index.html` linking them; `sampled`: (subset, stage) ->
    the audit sample's {id: reason} (`reporting.audit.sampled_ids`)."""
    root.mkdir(parents=True, exist_ok=True)
    sampled = sampled or {}
    written = [p for s in subsets for st in stages
               if (p := write_stage_pages(lake, s, st, root, sampled=sampled.get((s, st)), **options)) is not None]
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
