"""Question review by `cleaner_llm` (paper: Qwen3-30B-A3B-Thinking), as a model step.

Rows flagged by the routing rules (`routing.py`) are sent to the cleaner, which answers
`No Problem` or a JSON object with `error_type` (any of `translation`, `irrelevant content`,
`non-answer question`, `low-quality instruction`) and `corrected_text`. The verdicts land in
the `question_reviews` table; `cleaned` applies them (rewritten text, non-answer questions
dropped, the source text kept in `original_question`).

`parse_review` is strict about meaning (known error types only; a rewrite must carry its text)
and tolerant of form (thinking, fences, prose around the JSON, LaTeX in the JSON strings).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from pydantic import Field

from mmfr_assets.lineage import NAME
from mmfr_assets.llm.replies import json_objects, snippet, strip_thinking, unfence
from mmfr_assets.cleaning.routing import RoutingRules, route_reasons
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.model_step.declaration import ModelStep, ModelStepConfig, Parsed, Retry
from mmfr_assets.prompts import Prompt

ERROR_TYPES = ("translation", "irrelevant content", "non-answer question", "low-quality instruction")
NON_ANSWER = "non-answer question"

# Values of `review_status` (the step's status column).
NOT_ROUTED = "not_routed"  # the rules found nothing to review (or review: none)
NO_PROBLEM = "no_problem"  # the cleaner found nothing to fix
REWRITTEN = "rewritten"  # the cleaner rewrote the question (`corrected_question`)
NON_ANSWER_STATUS = "non_answer"  # the cleaner says there is no checkable answer: cleaned drops it
FAILED = "failed"  # no usable verdict (request failed, or no reply could be parsed)
SKIPPED = "skipped"  # routed, but the cleaner endpoint is not configured
STATUSES = (NOT_ROUTED, NO_PROBLEM, REWRITTEN, NON_ANSWER_STATUS, FAILED, SKIPPED)

REVIEW_SCHEMA = pa.schema(
    [
        ("review_status", pa.string()),
        ("route_reasons", pa.list_(pa.string())),
        ("error_types", pa.list_(pa.string())),
        ("corrected_question", pa.string()),
        ("review_error", pa.string()),
    ]
)

#: Spellings models use for the four error types.
_ALIASES = {
    "translation": "translation",
    "translate": "translation",
    "irrelevant content": "irrelevant content",
    "irrelevant": "irrelevant content",
    "noise": "irrelevant content",
    "non answer question": NON_ANSWER,
    "non answer": NON_ANSWER,
    "nonanswer question": NON_ANSWER,
    "low quality instruction": "low-quality instruction",
    "low quality": "low-quality instruction",
    "shallow instruction": "low-quality instruction",
}
_NONE = {"", "none", "no problem", "no problems", "null", "n/a"}
_NO_PROBLEM_LINE = re.compile(r"^[\W_]*no\s+problems?[\W_]*$", re.I)


@dataclass(frozen=True)
class Review:
    """What a reply means: the error types found and, for a rewrite, the corrected text."""

    error_types: tuple[str, ...]
    corrected_text: str | None


class Unparseable(ValueError):
    """The reply does not say `No Problem` nor give a valid verdict object."""


def _error_types(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else re.split(r"[,;|]| and ", str(value or ""))
    found: list[str] = []
    for item in items:
        key = re.sub(r"[\s_\-]+", " ", str(item)).strip().strip(".\"'").lower()
        if key in _NONE:
            continue
        if key not in _ALIASES:
            raise Unparseable(f"unknown error_type {item!r}")
        if _ALIASES[key] not in found:
            found.append(_ALIASES[key])
    return tuple(found)


def parse_review(content: str) -> Review:
    """The meaning of one cleaner reply's content (thinking already split off or inline).

    Raises `Unparseable` when it has neither a verdict object nor `No Problem`.
    """
    text = strip_thinking(content)
    verdicts = [o for o in json_objects(text) if "error_type" in o or "error_types" in o]
    if verdicts:
        verdict = verdicts[-1]
        types = _error_types(verdict.get("error_type", verdict.get("error_types")))
        if not types:
            return Review((), None)
        if NON_ANSWER in types:
            return Review(types, None)
        corrected = verdict.get("corrected_text")
        if not isinstance(corrected, str) or not corrected.strip():
            raise Unparseable(f"error_type {', '.join(types)} without corrected_text")
        return Review(types, corrected.strip())
    body = unfence(text).strip()
    lines = [line for line in body.splitlines() if line.strip()]
    if lines and (_NO_PROBLEM_LINE.match(body) or _NO_PROBLEM_LINE.match(lines[-1])):
        return Review((), None)
    raise Unparseable(f"neither No Problem nor a verdict object: {snippet(body)!r}")


def keep_image_tag(original: str, corrected: str) -> str:
    """The rewrite with the source's leading `<image>` tag restored if the model dropped it."""
    if original.lstrip().startswith("<image>") and "<image>" not in corrected:
        return "<image>" + corrected
    return corrected


def review_columns(row: Mapping[str, Any], review: Review) -> dict[str, Any]:
    question = row.get("question") or ""
    if NON_ANSWER in review.error_types:
        status, corrected = NON_ANSWER_STATUS, None
    elif review.corrected_text is not None:
        corrected = keep_image_tag(question, review.corrected_text)
        status = REWRITTEN if corrected.strip() != question.strip() else NO_PROBLEM
        corrected = corrected if status == REWRITTEN else None
    else:
        status, corrected = NO_PROBLEM, None
    return {
        "review_status": status,
        "route_reasons": list(row.get("route_reasons") or []),
        "error_types": list(review.error_types),
        "corrected_question": corrected,
        "review_error": None,
    }


def failed_columns(row: Mapping[str, Any], error: str) -> dict[str, Any]:
    return {
        "review_status": FAILED,
        "route_reasons": list(row.get("route_reasons") or []),
        "error_types": [],
        "corrected_question": None,
        "review_error": error,
    }


ReviewMode = Literal["flagged", "all", "none"]


class QuestionReviewConfig(ModelStepConfig):
    """Which questions `cleaner_llm` reviews: `flagged` (those the routing rules flag),
    `all` (every non-empty question, as the paper did) or `none`."""

    review: ReviewMode = Field("flagged", description=(
        "Which questions cleaner_llm reviews: 'flagged' (those the routing rules flag), 'all' "
        "(every non-empty question, as the paper did) or 'none'."))
    max_attempts: int = Field(2, ge=1, description=(
        "Asks per row: an unparseable reply is asked again with a new seed up to this many times."))
    route_min_words: int = Field(RoutingRules.min_words, ge=0, description=(
        "Routing rule too_short: a question with fewer words than this (besides <image> tags; a "
        "CJK character counts as a word) is flagged as probably incomplete."))
    route_min_foreign_words: int = Field(RoutingRules.min_foreign_words, ge=1, description=(
        "Routing rule foreign_words: a question with this many common words of Latin-script "
        "languages other than English is flagged."))

    def routing(self) -> RoutingRules:
        return RoutingRules(min_words=self.route_min_words, min_foreign_words=self.route_min_foreign_words)


class QuestionReview(ModelStep):
    """The `question_reviews` step: route by rules, ask `cleaner_llm`, keep its verdicts."""

    asset = NAME.question_reviews
    config_class = QuestionReviewConfig
    role = "cleaner_llm"
    columns = ("question",)
    prompt = "question_review"
    output_schema = REVIEW_SCHEMA
    status_column = "review_status"
    description = (
        "The cleaner's verdict on every collected question: rule-based routing first "
        "(`route_reasons`: foreign script, URLs, numbering, score annotations, markup, shallow "
        "instructions, non-answer tasks, fragments), then `cleaner_llm` for the rows `review` "
        "selects: `No Problem`, a rewrite (`corrected_question`, `error_types`), a non-answer "
        "question (cleaned drops it) or a recorded failure (`review_error`).")
    reason_column = "review_error"
    skipped_status = SKIPPED

    def __init__(self, config: QuestionReviewConfig | None = None) -> None:
        config = config or QuestionReviewConfig()
        self.review: ReviewMode = config.review
        self.max_attempts = config.max_attempts
        self.routing = config.routing()
        # Figures for the materialization's metadata only (what parse returns stays a pure
        # function of its arguments): rows per routing rule, error types per final verdict.
        self._routed: Counter = Counter()
        self._error_types: Counter = Counter()
        self._rows = 0

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        prepared = batch.with_columns(route_reasons(batch, "question", self.routing))
        self._rows += prepared.height
        self._routed.update(prepared["route_reasons"].explode().drop_nulls().to_list())
        self._routed.update({"(any rule)": int((prepared["route_reasons"].list.len() > 0).sum())})
        return prepared

    def needs(self, batch: pl.DataFrame) -> pl.Series:
        has_text = batch["question"].fill_null("").str.strip_chars().str.len_chars() > 0
        if self.review == "none":
            return pl.Series("needs", [False] * batch.height, pl.Boolean)
        if self.review == "all":
            return has_text.alias("needs")
        return (has_text & (batch["route_reasons"].list.len() > 0)).alias("needs")

    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        return prompt.render(question=row.get("question") or "")

    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        reply = replies[0]
        if not reply.ok:
            error = f"request failed: {reply.error}"
            return Parsed(failed_columns(row, error), failure=error)
        try:
            review = parse_review(reply.content)
        except Unparseable as error:
            message = f"unparseable reply: {error}"
            fallback = Parsed(failed_columns(row, message), failure=message)
            return Retry(message, fallback) if attempt < self.max_attempts else fallback
        self._error_types.update(review.error_types)
        return Parsed(review_columns(row, review))

    def extra_metadata(self) -> Mapping[str, Any]:
        """Routing and verdict figures: `review/mode`, `review/rows_routed` (rows any rule
        flags), `review/route/<rule>`, `review/error_type/<type>` (final verdicts)."""
        out: dict[str, Any] = {"review/mode": self.review,
                               "review/rows_routed": self._routed.get("(any rule)", 0)}
        out.update({f"review/route/{r}": n for r, n in sorted(self._routed.items()) if r != "(any rule)"})
        out.update({f"review/error_type/{t}": n for t, n in sorted(self._error_types.items())})
        return out

    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        columns = failed_columns(row, None)  # type: ignore[arg-type]
        return Parsed({**columns, "review_status": NOT_ROUTED})
