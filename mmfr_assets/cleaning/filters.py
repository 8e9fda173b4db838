"""The filters `cleaned` drops rows by, each with its reasons in the order they are tested.

A module of its own (it imports only `stage.Filter`) so that the lineage table names a stage's
filters without importing the stage's asset, which imports the lineage for its upstream.
"""

from __future__ import annotations

from mmfr_assets.stage import Filter

FILTERS = (
    Filter("image", ("image_missing", "image_corrupt", "image_decompression_bomb",
                     "image_multiple")),
    Filter("text", ("text_empty_question", "text_empty_answer",
                    "text_non_answer_question", "text_review_failed",
                    "text_long_question", "text_long_answer", "text_long_response")),
)
