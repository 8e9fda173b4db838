"""Which source column holds what: the column mapping that lets any dataset in.

Users bring datasets whose columns are named `problem`/`solution`/`images`, `question`/`answer`/
`image`, `query`/`label`/`img`... A mapping names, for each column of `collected`, the source
column that holds it. Names left unset are auto-detected from the usual names (an explicit
mapping always wins), so common layouts need no configuration. A mapping that names a column
the source does not have, or a source that has none of the columns we need, is refused with one
line (`InputError`) before any table is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg
from pydantic import Field

from mmfr_assets.errors import InputError

#: For each `collected` column: the source column names tried, in order, when the mapping
#: leaves it unset. The dataset card's own names come first.
AUTO_NAMES: dict[str, tuple[str, ...]] = {
    "id": ("id", "uid", "idx", "qid", "question_id", "problem_id", "sample_id", "index"),
    "question": ("question", "problem", "query", "prompt", "instruction"),
    "answer": ("answer", "final_answer", "short_answer", "ground_truth", "gt_answer", "label"),
    "image": ("image", "images", "img", "image_path", "image_file", "file_name", "picture"),
    "original_question": ("original_question",),
    # A worked solution is the original answer: `answer_llm` extracts its final result.
    "original_answer": ("original_answer", "solution", "rationale", "explanation"),
    "source": ("source",),
    "qwen3vl_235b_instruct_caption": ("qwen3vl_235b_instruct_caption", "caption"),
    "qwen3vl_235b_thinking_response": ("qwen3vl_235b_thinking_response",),
    "qwen3vl_4b_pass_rate": ("qwen3vl_4b_pass_rate", "pass_rate"),
    "is_consistent": ("is_consistent",),
    "consistency_analysis": ("consistency_analysis",),
}

#: Without at least one of these a source cannot give a single usable row.
CONTENT_TARGETS = ("question", "image", "answer", "original_question", "original_answer")


def _source_column(target: str, note: str = "") -> str:
    """The launchpad's description of one mapping key: what it holds and what is tried."""
    tried = ", ".join(AUTO_NAMES[target])
    return (f"Source column holding `{target}`" + (f" ({note})" if note else "") + ". Unset: the "
            f"first of {tried} the source has; \"\": read as null.")


class ColumnMap(dg.Config):
    """Source column names per `collected` column; unset = auto-detected from the usual names
    (`problem`, `solution`, `images`, ...). Set a name to override detection; set it to "" to
    read that column as null even if a usually named column exists."""

    id: str | None = Field(default=None, description=_source_column("id"))
    question: str | None = Field(default=None, description=_source_column("question"))
    answer: str | None = Field(default=None, description=_source_column("answer"))
    image: str | None = Field(default=None, description=_source_column(
        "image", "a single image or a list of images: bytes, an Image feature or a path"))
    original_question: str | None = Field(default=None, description=_source_column("original_question"))
    original_answer: str | None = Field(default=None, description=_source_column(
        "original_answer", "a worked solution counts: answer_llm extracts its final result"))
    source: str | None = Field(default=None, description=_source_column("source"))
    qwen3vl_235b_instruct_caption: str | None = Field(
        default=None, description=_source_column("qwen3vl_235b_instruct_caption"))
    qwen3vl_235b_thinking_response: str | None = Field(
        default=None, description=_source_column("qwen3vl_235b_thinking_response"))
    qwen3vl_4b_pass_rate: str | None = Field(
        default=None, description=_source_column("qwen3vl_4b_pass_rate"))
    is_consistent: str | None = Field(default=None, description=_source_column("is_consistent"))
    consistency_analysis: str | None = Field(
        default=None, description=_source_column("consistency_analysis"))


def resolve_mapping(
    source_columns: Iterable[str], explicit: ColumnMap | Mapping[str, str | None] | None, *,
    where: str,
) -> dict[str, str]:
    """`{collected column: source column}` for every column the source can fill.

    `where` names the source in error messages (path and subset). Raises `InputError` when the
    mapping names a column the source lacks, or when no content column can be found at all.
    """
    columns = list(source_columns)
    present = set(columns)
    given = _as_dict(explicit)
    unknown = sorted(set(given) - set(AUTO_NAMES))
    if unknown:
        raise InputError(
            f"{where}: column_map has unknown keys {', '.join(unknown)}; "
            f"known keys: {', '.join(AUTO_NAMES)}"
        )
    absent = {k: v for k, v in given.items() if v and v not in present}
    if absent:
        named = ", ".join(f"{k}={v!r}" for k, v in sorted(absent.items()))
        raise InputError(
            f"{where}: column_map names columns the source does not have ({named}); "
            f"source columns: {', '.join(columns) or '(none)'}"
        )
    resolved: dict[str, str] = {}
    taken = {v for v in given.values() if v}
    for target, names in AUTO_NAMES.items():
        if target in given:
            if given[target]:
                resolved[target] = given[target]  # explicit wins ("" = deliberately unmapped)
            continue
        found = next((n for n in names if n in present and n not in taken), None)
        if found is not None:
            resolved[target] = found
            taken.add(found)
    if not any(t in resolved for t in CONTENT_TARGETS):
        raise InputError(
            f"{where}: none of the mapped or usual columns is in the source "
            f"(looked for question/answer/image such as {', '.join(AUTO_NAMES['question'][:3])}, "
            f"{', '.join(AUTO_NAMES['image'][:2])}); source columns: {', '.join(columns) or '(none)'}; "
            "set collected's column_map"
        )
    return resolved


def _as_dict(explicit: ColumnMap | Mapping[str, str | None] | None) -> dict[str, str]:
    if explicit is None:
        return {}
    if isinstance(explicit, ColumnMap):
        # Only fields the user set (None = not set): "" stays, meaning "no such column".
        return {k: v for k, v in explicit.model_dump().items() if v is not None}
    return {k: v for k, v in explicit.items() if v is not None}
