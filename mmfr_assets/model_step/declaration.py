"""What a model-driven step declares; `runner.py` does the rest for every step alike.

The shape is curator's `prompt(row)` / `parse(row, response)` and distilabel's `Task`: a step
says which rows need a request, how to build it (prompt file, image or not, samples), how to
turn replies into columns (a pure function), and which endpoint (and so Dagster pool) serves
it. Streaming the partition, keeping `max_concurrency` requests in flight with no batch
barriers, the response cache, writing rows back in input order, retries, fail-fast on a broken
endpoint and the failure-rate check are the shared mechanism's job, written once.

Raw replies are cached before parsing, so a fixed parser re-parses on the next run without
paying again (curator #408).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import dagster as dg
import polars as pl
import pyarrow as pa
from pydantic import Field

from mmfr_assets.lineage import PAPER_LINEAGE
from mmfr_assets.llm.types import ChatResult
from mmfr_assets.prompts import Prompt

if TYPE_CHECKING:
    from mmfr_assets.model_step.join import StepJoin


@dataclass(frozen=True)
class Parsed:
    """A row's output columns (the step's `output_schema`, without subset/id).

    `failure` is set when the row's model output is unusable (every reply failed, or none
    could be parsed): the row is still written with its columns, and counted against the
    step's failure-rate check. Put the same text in a column of the step's own so that
    downstream stages can say why.
    """

    columns: Mapping[str, Any]
    failure: str | None = None


@dataclass(frozen=True)
class Retry:
    """Ask again (a new seed per attempt) because the replies failed validation; `fallback`
    is what the row gets when `max_attempts` is used up."""

    reason: str
    fallback: Parsed


@dataclass(frozen=True)
class Ask:
    """One request of a row: its user text, whether the row's image goes with it, and how
    many samples it draws (one request with `n`, or one per sample, as the endpoint allows)."""

    text: str
    image: bool
    samples: int


class ModelStepConfig(dg.Config):
    """What every model step can be told from the launchpad; steps subclass it."""

    batch_size: int = Field(
        default=1024, description="Upstream rows read at a time. Not a request barrier: "
        "requests of the next batch start while earlier ones are still running.")
    max_failure_rate: float = Field(
        default=0.02, description="The blocking generation_failure_rate check fails when more "
        "than this share of the rows sent to the endpoint got no usable answer.")
    reorder_limit: int = Field(
        default=8192, description="At most this many finished rows are held back while an "
        "earlier row is still running (rows are written in the partition's order).")


class ModelStep(abc.ABC):
    """One model-driven step over one partition: a subclass declares, the runner runs.

    Instances are built per materialization from the asset's config, so `needs` and `parse`
    can depend on config (`recompute`, thresholds, ...). `row` arguments are plain dicts of
    the upstream columns the step reads (`columns`) plus whatever `prepare` added; image
    bytes are never in `row` (the runner joins them when `sends_image`).
    """

    #: Asset (and table) name.
    asset: ClassVar[str]
    #: Endpoint resource key; also the Dagster pool the asset runs in.
    role: ClassVar[str]
    #: The table whose partition the step reads, in its row order: filled in from its lineage
    #: node when the class is declared (`__init_subclass__`).
    upstream: ClassVar[str]
    #: Columns read from `upstream` (`subset` and `id` are always read).
    columns: ClassVar[Sequence[str]]
    #: Prompt file stem: `prompts/<prompt>.system.txt` and `prompts/<prompt>.user.txt`.
    prompt: ClassVar[str]
    #: Columns the step writes besides `subset` and `id`.
    output_schema: ClassVar[pa.Schema]
    #: Columns of earlier steps' tables beside the upstream's (`join.take(step, ...)`, the join
    #: every consumer of a step uses), e.g. the student's samples beside the question.
    joins: ClassVar[Sequence[StepJoin]] = ()
    #: Send the row's image (cleaned bytes where cleaning changed it, else the original).
    sends_image: ClassVar[bool] = False
    #: Column whose value counts go to the materialization's metadata (e.g. an origin).
    status_column: ClassVar[str | None] = None
    #: A row that needed the model but had no endpoint is written by the runner (`runner.skipped`):
    #: `without_model`'s columns, with the reason in `reason_column` (after any text already
    #: there) and, where set, `skipped_status` in `status_column`; so every step's table says
    #: plainly which rows were skipped and why, the same way.
    reason_column: ClassVar[str]
    skipped_status: ClassVar[str | None] = None
    #: What its asset can be told from the launchpad: a `ModelStepConfig` subclass; the step is
    #: built from it per run (`for_run`).
    config_class: ClassVar[type[ModelStepConfig]] = ModelStepConfig
    #: What the asset is, for the UI (the asset's description).
    description: ClassVar[str] = ""
    #: Resources shared with other assets that the step is built from besides its config:
    #: resource key -> `ConfigurableResource` class (the teachers' `quality_thresholds`). The
    #: asset takes each as a typed parameter (Dagster checks the key against the definitions'
    #: resources) and hands them to `for_run`; `mmfr plan` resolves them as the run would.
    shared_resources: ClassVar[Mapping[str, type[dg.ConfigurableResource]]] = {}
    #: Bump with a change of `parse` (or `needs`) that alters the step's rows for the same
    #: replies: part of the asset's code version (`code_versions.py`), so the step and what is
    #: downstream show unsynced; the cache still answers its requests, the rows are re-parsed.
    parse_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A step's `upstream` is its node's in the paper's order (`lineage.py` says what each
        asset reads; the student-first declarations set theirs, `student_first/steps.py`), unless
        the class sets one (a step outside the lineage: a test's toy step). The paper's order, not
        the process's `MMFR_TARGET`: `mmfr plan` compares the two orders from these declarations."""
        super().__init_subclass__(**kwargs)
        paper = {n.name: n.upstream for n in PAPER_LINEAGE}
        if "upstream" not in vars(cls) and paper.get(getattr(cls, "asset", None)):
            cls.upstream = paper[cls.asset]

    #: Samples per row (one request with `n` where the endpoint supports it, else one
    #: request per sample with distinct seeds); attempts per row when `parse` says Retry.
    samples: int = 1
    max_attempts: int = 1

    @classmethod
    def for_run(cls, config: Any, run_config: Mapping[str, Any],
                resources: Mapping[str, Any] | None = None) -> "ModelStep":
        """The step of one materialization: `cls(config)`. A step that must agree with other
        assets in the same run takes what they share from `resources` (its `shared_resources`,
        as the run resolved them: the teachers' thresholds) or, for another asset's own config
        (a student-first teacher and its recipe's bound), from `run_config`."""
        return cls(config)

    def prepare(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Vectorized work before routing (e.g. rule verdicts); returns the batch with any
        added columns, same rows, same order."""
        return batch

    @abc.abstractmethod
    def needs(self, batch: pl.DataFrame) -> pl.Series:
        """Boolean per row of the prepared batch: does this row need a model request?"""

    @abc.abstractmethod
    def render(self, row: Mapping[str, Any], prompt: Prompt) -> str:
        """The user turn's text for a row that needs a request."""

    def ask_samples(self) -> tuple[int, ...]:
        """The samples of each ask `asks` makes of a row, for the plan's count of requests and
        samples: one ask of `samples` unless a step asks a row several ways."""
        return (max(self.samples, 1),)

    def asks(self, row: Mapping[str, Any], prompt: Prompt) -> Sequence[Ask]:
        """The requests of a row that needs the model: one by default, `render`'s text with
        the image where `sends_image`, `samples` samples. A step that asks one row several ways
        (the RL rollouts, with the image and without it) returns one `Ask` each; `parse` then
        gets the replies of every ask in this order, one per sample."""
        return (Ask(self.render(row, prompt), self.sends_image, self.samples),)

    @abc.abstractmethod
    def parse(self, row: Mapping[str, Any], replies: Sequence[ChatResult], attempt: int) -> Parsed | Retry:
        """Pure: one reply per sample (`ok` False for one given up on, with its `error`), the
        attempt number from 1. Strict about meaning, tolerant of form."""

    def parse_many(
        self, jobs: Sequence[tuple[Mapping[str, Any], Sequence[ChatResult], int]]
    ) -> list[Parsed | Retry]:
        """`parse` for several rows at once, `(row, replies, attempt)` each, outcomes in order.
        The runner hands over every row that finished since it last looked, so a step whose
        checks are vectorized (one Polars pass over many traces) overrides this: per-row checks
        cost milliseconds of the thread that keeps the endpoint's window full."""
        return [self.parse(row, replies, attempt) for row, replies, attempt in jobs]

    @abc.abstractmethod
    def without_model(self, row: Mapping[str, Any]) -> Parsed:
        """Columns of a row without the model's output: final for a row that needed no
        request; for one that needed it and had no endpoint, the runner marks them skipped
        (`reason_column`, `skipped_status`)."""

    def finished(self, out: Parsed) -> None:
        """Called once per row with its final columns (after any retries), e.g. to count what
        `extra_metadata` reports: `parse` may be called again for the same row."""

    def close(self) -> None:
        """Release what the step holds (e.g. a verifier's worker processes); the asset calls it
        once the partition is done, on success or failure."""

    def extra_metadata(self) -> Mapping[str, Any]:
        """The step's own figures for the materialization's metadata (after the partition)."""
        return {}
