"""`cleaned`: rows with a usable image and non-empty text, images normalized as in the paper."""


import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import dagster as dg
from pydantic import Field
import polars as pl
import pyarrow as pa

from mmfr_assets.cleaning.filters import FILTERS
from mmfr_assets.cleaning.images import (
    JPEG_QUALITY, MAX_IMAGE_PIXELS, MAX_LONG_EDGE, CleanImage, ImageRejected, clean_image,
)
from mmfr_assets.cleaning.verdicts import STEP_JOINS, ReviewTally, apply_text_verdicts, text_drop_reason
from mmfr_assets.cleaning.text import length_detail, longer_than
from mmfr_assets.collection.source import CARD_COLUMNS
from mmfr_assets.lineage import NAME, upstream_of
from mmfr_assets.lake.delta import count_rows
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.model_step.join import join_step
from mmfr_assets.partitions import lake_partition
from mmfr_assets.progress import for_partition
from mmfr_assets.stage import Verdicts, run_stage, split_by_reason, stage_asset, stage_result, upstream_batches

IMAGE_COLUMNS: dict[str, pa.DataType] = {
    "image_width": pa.int32(),
    "image_height": pa.int32(),
    "image_format": pa.string(),
    "image_source_mode": pa.string(),
    "image_sha256": pa.string(),
    "image_fixes": pa.list_(pa.string()),
    # Only for images this stage changed; an unchanged image is read from `collected`.
    "image_bytes": pa.binary(),
}
# What cleaning adds about the text: the review verdict and where the answer comes from.
TEXT_COLUMNS: dict[str, pa.DataType] = {
    "answer_reference": pa.string(),  # what verification compares with: answer, else original_answer
    "answer_origin": pa.string(),  # dataset | extracted | original_answer
    "question_review": pa.string(),  # question_reviews.review_status
    "question_error_types": pa.list_(pa.string()),
    "image_count": pa.int32(),  # images the source row had (only the first is kept)
}
RESPONSE = "qwen3vl_235b_thinking_response"  # the published trace
CLEANED_SCHEMA = pa.schema(
    [("subset", pa.string()), ("id", pa.string())]
    + list(CARD_COLUMNS.items())
    + list(IMAGE_COLUMNS.items())
    + list(TEXT_COLUMNS.items())
)


class CleanedConfig(dg.Config):
    """Image and text cleaning thresholds (defaults: the paper's)."""

    max_long_edge: int = Field(
        default=MAX_LONG_EDGE, description="Longer images are downsized to this edge (pixels), keeping the aspect ratio (paper: 2048).")
    max_image_pixels: int = Field(
        default=MAX_IMAGE_PIXELS, description="Images with more pixels are refused as decompression bombs (Pillow's bound).")
    jpeg_quality: int = Field(default=JPEG_QUALITY, description="JPEG quality for images that had to be re-encoded.")
    require_image: bool = Field(
        default=True, description="Drop rows without a usable image (image_missing, image_corrupt), as the paper does.")
    batch_size: int = Field(default=256, description="Rows cleaned per batch (bounds memory).")
    image_workers: int = Field(
        default=0, description="Threads decoding images (Pillow releases the GIL); 0 = one per core.")
    multiple_images: Literal["reject", "keep_first"] = Field(
        default="reject", description='A row with several images: "reject" (image_multiple) or "keep_first" (train on the first).')
    review_failed: Literal["keep", "drop"] = Field(
        default="keep", description='A routed question whose review failed: "keep" its text (flagged in question_review) '
                                    'or "drop" it (text_review_failed).')
    max_question_chars: int | None = Field(
        default=20_000, description="Longer questions are dropped (text_long_question); null switches the limit off.")
    max_answer_chars: int | None = Field(
        default=20_000, description="Longer reference answers are dropped (text_long_answer); null switches the limit off.")
    max_response_chars: int | None = Field(
        default=400_000, description="Longer published traces (qwen3vl_235b_thinking_response) are dropped "
                                     "(text_long_response); null switches the limit off.")


def _clean_one(data: bytes | None, config: CleanedConfig) -> CleanImage | ImageRejected:
    if data is None and not config.require_image:
        return CleanImage(None, 0, 0, "", "", "", ("no_image",))
    try:
        return clean_image(
            data,
            max_edge=config.max_long_edge,
            max_pixels=config.max_image_pixels,
            jpeg_quality=config.jpeg_quality,
        )
    except ImageRejected as rejected:
        return rejected


def _length_limits(config: CleanedConfig, columns: list[str]) -> list[tuple[str, str, int]]:
    """(reason, column, max chars) of the length limits in force, in the order they apply; a
    limit of None is off, and a batch without a column (hand-made ones) has nothing too long."""
    limits = (
        ("text_long_question", "question", config.max_question_chars),
        ("text_long_answer", "answer", config.max_answer_chars),
        ("text_long_response", RESPONSE, config.max_response_chars),
    )
    return [(r, c, m) for r, c, m in limits if m is not None and c in columns]


def clean_batch(
    batch: pl.DataFrame, config: CleanedConfig, pool: ThreadPoolExecutor | None = None
) -> Verdicts:
    """Clean one batch of `collected` rows (images with `pool` threads, text vectorized)."""
    images = batch["image_bytes"].to_list()
    results = list(
        pool.map(lambda d: _clean_one(d, config), images)
        if pool
        else (_clean_one(d, config) for d in images)
    )
    ok = [r if isinstance(r, CleanImage) else None for r in results]
    image_reason = [r.reason if isinstance(r, ImageRejected) else None for r in results]
    image_detail = [r.detail if isinstance(r, ImageRejected) else None for r in results]
    has_image = [r is not None and r.width > 0 for r in ok]
    frame = apply_text_verdicts(batch).drop("image_bytes", "image_path").with_columns(
        pl.Series("_image_reason", image_reason, pl.String),
        pl.Series("_image_detail", image_detail, pl.String),
        pl.Series("image_width", [r.width if h else None for r, h in zip(ok, has_image)], pl.Int32),
        pl.Series("image_height", [r.height if h else None for r, h in zip(ok, has_image)], pl.Int32),
        pl.Series("image_format", [r.format if h else None for r, h in zip(ok, has_image)], pl.String),
        pl.Series("image_source_mode", [r.source_mode if h else None for r, h in zip(ok, has_image)], pl.String),
        pl.Series("image_sha256", [r.sha256 if h else None for r, h in zip(ok, has_image)], pl.String),
        pl.Series("image_fixes", [list(r.fixes) if r else None for r in ok], pl.List(pl.String)),
        pl.Series("image_bytes", [r.data if r else None for r in ok], pl.Binary),
    )
    several = pl.col("image_count").fill_null(0) > 1
    if config.multiple_images == "keep_first":
        several = pl.lit(False)
    reason = (
        pl.when(several)
        .then(pl.lit("image_multiple"))
        .when(pl.col("_image_reason").is_not_null())
        .then(pl.col("_image_reason"))
        .otherwise(text_drop_reason(drop_failed_reviews=config.review_failed == "drop"))
    )
    detail = (
        pl.when(several)
        .then(pl.format("{} images; multiple_images: keep_first trains on the first",
                        pl.col("image_count")))
        .when(pl.col("_image_reason").is_not_null())
        .then(pl.col("_image_detail"))
        .otherwise(pl.col("_text_detail"))
    )
    # Over-long texts (issue 13), after every other reason: the first limit a row exceeds.
    too_long, too_long_detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
    for name, column, limit in reversed(_length_limits(config, frame.columns)):
        too_long = pl.when(longer_than(column, limit)).then(pl.lit(name)).otherwise(too_long)
        too_long_detail = (
            pl.when(longer_than(column, limit))
            .then(length_detail(column, limit))
            .otherwise(too_long_detail)
        )
    detail = pl.when(reason.is_not_null()).then(detail).otherwise(too_long_detail)
    reason = pl.coalesce(reason, too_long)
    filter_of = {r: f.name for f in FILTERS for r in f.reasons}
    verdicts = split_by_reason(frame, reason, filter_of, detail=detail)
    return Verdicts(
        verdicts.kept.drop("_image_reason", "_image_detail", "_text_detail"), verdicts.dropped
    )


def build_cleaned(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @stage_asset(
        partitions,
        kinds={"deltalake", "pillow"},
        joins=STEP_JOINS,
        description="Rows whose image decodes and whose question and answer are non-empty; "
        "images EXIF-rotated, RGB, longest edge <= max_long_edge. Unchanged images are not "
        "copied: `image_bytes` is set only where cleaning changed the image. Questions as "
        "`question_reviews` rewrote them (non-answer questions dropped); answers from "
        "`extracted_answers` where the source had only a solution (`answer_reference`).",
    )
    def cleaned(
        context: dg.AssetExecutionContext, config: CleanedConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        subset, upstream = context.partition_key, upstream_of(NAME.cleaned)
        fixes: dict[str, int] = {}

        def count_fixes(verdicts: Verdicts) -> Verdicts:
            for row in verdicts.kept["image_fixes"].explode().drop_nulls().value_counts().iter_rows():
                fixes[row[0]] = fixes.get(row[0], 0) + row[1]
            return verdicts

        workers = config.image_workers or os.cpu_count() or 1
        reviews, not_joined = ReviewTally(), []
        with ThreadPoolExecutor(max_workers=workers) as pool, contextlib.ExitStack() as stack:
            collected = upstream_batches(lake, upstream, subset, batch_size=config.batch_size)
            stack.callback(collected.close)
            batches = join_step(lake, collected, subset, STEP_JOINS, batch_size=config.batch_size,
                                not_joined=not_joined)
            stack.callback(batches.close)

            def decide(batch: pl.DataFrame) -> Verdicts:
                reviews.add(batch)
                return count_fixes(clean_batch(batch, config, pool))

            run = run_stage(
                lake,
                stage=NAME.cleaned,
                subset=subset,
                batches=batches,
                decide=decide,
                schema=CLEANED_SCHEMA,
                filters=FILTERS,
                progress=for_partition(context, NAME.cleaned, count_rows(
                    lake.location(upstream), lake_partition(subset))),
            )
        if not_joined:  # known once the batches were read
            context.log.warning(
                f"{NAME.cleaned} {subset}: {', '.join(not_joined)} not materialized for this partition: "
                "questions not reviewed / no answers extracted")
        return stage_result(
            lake, run, upstream=upstream,
            # One JSON entry, not a number per fix: numbers are plotted across partitions.
            extra={"image_fixes": dg.MetadataValue.json(dict(sorted(fixes.items()))),
                   **reviews.metadata(),
                   "model_steps_not_joined": ", ".join(not_joined) or "none"},
        )

    return cleaned
