"""Plain value types shared by every model-driven stage.

They are small frozen dataclasses (no Dagster, no openai imports) so stages can
build requests and consume results without caring how the client reaches the
endpoint, and so results can be cached, pickled and compared by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run.

    ``messages`` are OpenAI chat messages (build user turns with
    :func:`mmfr_assets.llm.images.user_message` or ``LLMEndpoint.user_message``
    so images are already bounded data URLs).  Every sampling field left at
    ``None`` falls back to the endpoint's configured value; set one to override
    it for this request only (e.g. a distinct ``seed`` per rollout).
    ``extra_body`` is merged over the endpoint's ``extra_body`` (top-level keys).

    Two requests with the same resolved body are the same request: the cache and
    the in-session de-duplication answer the second one for free.
    """

    messages: Sequence[Mapping[str, Any]]
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    n: Optional[int] = None
    extra_body: Optional[Mapping[str, Any]] = None

    @classmethod
    def from_text(cls, user_text: str, *, system: Optional[str] = None, **overrides: Any) -> "ChatRequest":
        """Text-only convenience: optional system prompt + one user turn."""
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_text})
        return cls(messages=messages, **overrides)


@dataclass(frozen=True)
class Choice:
    """One returned completion.

    ``reasoning`` is what reasoning models served by vLLM put in
    ``reasoning_content`` / ``reasoning``; when the server inlines it as
    ``…</think>`` in the content instead, the client splits it out so stages
    always see the same shape.
    """

    content: str
    reasoning: str = ""
    finish_reason: Optional[str] = None

    def think_text(self) -> str:
        """``<think>\\n{reasoning}\\n</think>\\n\\n{content}`` (or just content without reasoning)."""
        if not self.reasoning:
            return self.content
        return f"<think>\n{self.reasoning.strip()}\n</think>\n\n{self.content.strip()}"


@dataclass(frozen=True)
class ChatResult:
    """Outcome of one :class:`ChatRequest`.

    ``ok`` False means the request was given up on (after retries, or at once for
    a non-retryable 4xx); ``error`` then holds a redacted one-line reason and the
    caller should record the row as failed and go on.  Failed results may still
    carry the last attempt's ``choices`` for diagnostics; they are never cached.
    """

    ok: bool
    choices: tuple[Choice, ...] = ()
    error: Optional[str] = None
    cached: bool = False
    attempts: int = 0
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cache_key: str = field(default="", repr=False)
    permanent: bool = False  # failed for a reason retrying cannot fix (bad input, unknown model)

    def sample(self, k: int) -> "ChatResult":
        """The result of the ``k``-th choice alone (for steps that draw several samples in one
        request with ``n``); a failed result, or a missing choice, is a failed sample."""
        if not self.ok:
            return self
        if k >= len(self.choices):
            return ChatResult(ok=False, error=f"the endpoint returned {len(self.choices)} choices, "
                              f"fewer than the {k + 1} asked for", model=self.model, cache_key=self.cache_key)
        share = len(self.choices)
        return ChatResult(ok=True, choices=(self.choices[k],), cached=self.cached, attempts=self.attempts,
                          latency_s=self.latency_s, prompt_tokens=self.prompt_tokens // share,
                          completion_tokens=self.completion_tokens // share, model=self.model,
                          cache_key=self.cache_key)

    @property
    def content(self) -> str:
        return self.choices[0].content if self.choices else ""

    @property
    def reasoning(self) -> str:
        return self.choices[0].reasoning if self.choices else ""

    @property
    def finish_reason(self) -> Optional[str]:
        return self.choices[0].finish_reason if self.choices else None

    def think_text(self) -> str:
        """First choice as a ``<think>…</think>`` trace followed by the answer."""
        return self.choices[0].think_text() if self.choices else ""


class LLMError(RuntimeError):
    """Base class for errors the client layer raises (never per-row failures)."""


class LLMDisabledError(LLMError):
    """Raised when a session is opened on an endpoint with no ``base_url``."""


class LLMEndpointError(LLMError):
    """Raised when an endpoint keeps failing requests for a reason retrying cannot fix
    (see ``retries.FailFast``): the step stops instead of failing every row for days."""


class LLMStallError(LLMError):
    """Raised by the session watchdog when no request finished for too long."""
