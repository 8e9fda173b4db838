"""The plan's arithmetic, pure: from rows that need a request to requests, samples, tokens and,
where the endpoint says how fast and how dear it is, GPU-hours, wall time and money.

Every figure says where it came from: `measured` (averages over what the lake's model-step
tables recorded) or `assumed` (the paper's published figures, or a stated guess where the paper
publishes none); a row count is `counted` (the step's own `needs` on the rows it will read),
`estimated` (counted on an earlier table, scaled by the share measured to survive to the step)
or an `upper bound` (counted on an earlier table, nothing measured to scale it by).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

#: The paper's published figures: 5.1B solution tokens over 1.8M distilled rows; captions
#: average 609 tokens (MMFineReason, section 3).
PAPER_TRACE_TOKENS = round(5.1e9 / 1.8e6)  # 2,833
PAPER_CAPTION_TOKENS = 609
#: Prompt tokens of one image as the VL models see it: Qwen3-VL spends one token per 32x32
#: pixels, so an image bounded to 1,024 px a side is at most 1,024 tokens (assumed for every
#: image: the plan does not decode images).
IMAGE_PROMPT_TOKENS = 1024
#: Characters per token of English/LaTeX text (the usual rule of thumb for BPE tokenizers).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Assumed:
    """A completion length per sample with its source, where nothing was measured."""

    tokens: int
    source: str


#: Completion tokens per sample by role where nothing was measured yet.
ASSUMED_COMPLETION: Mapping[str, Assumed] = {
    "cot_teacher": Assumed(PAPER_TRACE_TOKENS, "paper: 5.1B solution tokens / 1.8M rows"),
    "caption_teacher": Assumed(PAPER_CAPTION_TOKENS, "paper: captions average 609 tokens"),
    "student_llm": Assumed(PAPER_TRACE_TOKENS, "no published figure: taken as the teacher's trace length"),
    "cleaner_llm": Assumed(1000, "no published figure: a thinking model's short verdict, guessed"),
    "answer_llm": Assumed(50, "no published figure: a short final answer, guessed"),
    "judge_llm": Assumed(200, "no published figure: a short analysis and verdict, guessed"),
}


@dataclass(frozen=True)
class Rates:
    """Per ask (one attempt at a row): prompt tokens, completion tokens per sample, and asks per
    row (1 = no re-asks), each `measured` or `assumed` with how."""

    prompt_per_ask: float
    completion_per_sample: float
    asks_per_row: float
    prompt_basis: str
    completion_basis: str
    asks_basis: str


@dataclass(frozen=True)
class Measured:
    """What a step's table says of the rows it sent: rows, asks (attempts), tokens, and the asks
    of the rows whose tokens are recorded (`paid_asks`: the runner records the tokens a run paid
    for; a row the cache answered when the table was written shows none)."""

    rows: int = 0
    asks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    paid_asks: int = 0

    def __add__(self, other: "Measured") -> "Measured":
        return Measured(self.rows + other.rows, self.asks + other.asks,
                        self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                        self.paid_asks + other.paid_asks)


def rates(role: str, samples: int, measured: Measured, *, assumed_prompt: float, prompt_how: str) -> Rates:
    """Measured averages where the step has sent rows with token counts, else the assumptions."""
    if measured.paid_asks and (measured.prompt_tokens or measured.completion_tokens):
        how = f"measured over {measured.paid_asks:,} asks"
        return Rates(measured.prompt_tokens / measured.paid_asks,
                     measured.completion_tokens / (measured.paid_asks * max(samples, 1)),
                     measured.asks / measured.rows if measured.rows else 1.0, how, how,
                     f"measured over {measured.rows:,} rows")
    assumed = ASSUMED_COMPLETION.get(role, Assumed(1000, "no figure: guessed"))
    return Rates(assumed_prompt, assumed.tokens, 1.0, f"assumed: {prompt_how}",
                 f"assumed: {assumed.source}", "assumed: first asks only (re-asks unknown)")


def assumed_prompt_tokens(template_chars: int, text_chars: float, sends_image: bool) -> tuple[float, str]:
    """Prompt tokens of one ask where none were measured: the prompt files and the row's text at
    `CHARS_PER_TOKEN`, plus `IMAGE_PROMPT_TOKENS` for a step that sends the image."""
    tokens = (template_chars + text_chars) / CHARS_PER_TOKEN + (IMAGE_PROMPT_TOKENS if sends_image else 0)
    how = f"prompt text / {CHARS_PER_TOKEN} chars per token" + (
        f" + {IMAGE_PROMPT_TOKENS} per image" if sends_image else "")
    return tokens, how


@dataclass(frozen=True)
class StepCount:
    """One model step over one subset: the rows that will need a request, and how we know.

    `rows` is the estimate, `rows_upper` never below what a run can ask for; `answered` rows
    needed a request and already have this prompt's reply (not counted in `rows`)."""

    subset: str
    step: str
    role: str
    rows: float
    rows_upper: int
    answered: int
    basis: str  # counted / estimated / upper bound
    how: str  # on which table, scaled by what
    samples: int  # samples per row and attempt (every ask's)
    max_attempts: int
    ask_samples: tuple[int, ...] | None = None  # each ask's samples (RL rollouts: 2 asks); None: one

    def requests_per_attempt(self, supports_n: bool) -> int:
        """HTTP requests one attempt at a row makes: one per ask with `n`, else one per sample."""
        shape = self.ask_samples or (self.samples,)
        return len(shape) if supports_n else sum(shape)


@dataclass(frozen=True)
class Economics:
    """What an endpoint says of its speed and price (`LLMEndpoint`'s optional fields)."""

    output_tokens_per_s: Optional[float] = None
    gpus_per_replica: Optional[float] = None
    replicas: int = 1
    price_per_gpu_hour: Optional[float] = None
    price_per_million_tokens: Optional[float] = None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> dict[str, Any]:
        """GPU-hours, wall time and money for the tokens, where the settings allow; decode-bound
        (prefill of the prompt is left out of the time: it is a fraction of a thinking model's
        decode), each replica generating `output_tokens_per_s`."""
        out: dict[str, Any] = {}
        if self.output_tokens_per_s:
            replica_hours = completion_tokens / self.output_tokens_per_s / 3600
            out["wall_time_h"] = replica_hours / max(self.replicas, 1)
            if self.gpus_per_replica:
                out["gpu_hours"] = replica_hours * self.gpus_per_replica
                if self.price_per_gpu_hour is not None:
                    out["cost"] = out["gpu_hours"] * self.price_per_gpu_hour
        if self.price_per_million_tokens is not None:
            out["cost"] = (prompt_tokens + completion_tokens) / 1e6 * self.price_per_million_tokens
        return out

    @property
    def described(self) -> bool:
        return bool(self.output_tokens_per_s) or self.price_per_million_tokens is not None


@dataclass
class RolePlan:
    """One role's totals over its steps and subsets."""

    role: str
    rows: float = 0.0
    rows_upper: int = 0
    answered: int = 0
    requests: float = 0.0
    requests_upper: int = 0
    asks: float = 0.0  # attempts at rows (what the step tables' `attempts` column records)
    asks_upper: int = 0
    samples: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    bases: set = field(default_factory=set)
    token_bases: set = field(default_factory=set)
    economics: dict[str, Any] = field(default_factory=dict)

    def add(self, count: StepCount, r: Rates, supports_n: bool) -> None:
        per_attempt = count.requests_per_attempt(supports_n)
        asks = count.rows * r.asks_per_row
        self.rows += count.rows
        self.rows_upper += count.rows_upper
        self.answered += count.answered
        self.asks += asks
        self.asks_upper += count.rows_upper * count.max_attempts
        self.requests += asks * per_attempt
        self.requests_upper += count.rows_upper * count.max_attempts * per_attempt
        self.samples += asks * count.samples
        self.prompt_tokens += asks * r.prompt_per_ask  # per ask as measured (n or not)
        self.completion_tokens += asks * count.samples * r.completion_per_sample
        self.bases.add(count.basis)
        # "measured over N asks" / "assumed: ...": the first word
        self.token_bases.update({r.prompt_basis.split()[0].rstrip(":"), r.completion_basis.split()[0].rstrip(":")})

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": round(self.rows), "rows_upper_bound": self.rows_upper, "rows_already_answered": self.answered,
            "requests": round(self.requests), "requests_upper_bound": self.requests_upper,
            "asks": round(self.asks), "asks_upper_bound": self.asks_upper,
            "requests_per_ask": round(self.requests / self.asks, 4) if self.asks else 1,
            "samples": round(self.samples),
            "prompt_tokens": round(self.prompt_tokens), "completion_tokens": round(self.completion_tokens),
            "rows_basis": basis_word(self.bases), "tokens_basis": basis_word(self.token_bases),
            **{k: round(v, 3) for k, v in self.economics.items()},
        }


def basis_word(bases: Iterable[str]) -> str:
    """One word for several figures' bases: the weakest of them."""
    bases = set(bases)
    for word in ("upper bound", "assumed", "estimated", "measured", "counted"):
        if word in bases:
            return word
    return "none" if not bases else sorted(bases)[0]


def role_totals(counts: Iterable[StepCount], step_rates: Mapping[str, Rates],
                supports_n: Mapping[str, bool], economics: Mapping[str, Economics]) -> dict[str, RolePlan]:
    """Per role: the steps' counts over every subset, with the rates of each step."""
    plans: dict[str, RolePlan] = {}
    for count in counts:
        plan = plans.setdefault(count.role, RolePlan(count.role))
        plan.add(count, step_rates[count.step], supports_n.get(count.role, True))
    for role, plan in plans.items():
        plan.economics = economics.get(role, Economics()).cost(plan.prompt_tokens, plan.completion_tokens)
    return plans


def overall(plans: Mapping[str, RolePlan]) -> dict[str, Any]:
    """Totals over the roles; GPU-hours and money only over the roles that state them."""
    keys = ("requests", "requests_upper_bound", "asks", "asks_upper_bound", "samples", "prompt_tokens",
            "completion_tokens")
    rows = [p.as_dict() for p in plans.values()]
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    for key in ("gpu_hours", "cost"):
        stated = [r[key] for r in rows if key in r]
        if stated:
            out[key] = round(sum(stated), 3)
            out[f"{key}_roles"] = [p.role for p in plans.values() if key in p.economics]
    return out
