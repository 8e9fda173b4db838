"""Dagster resource for one OpenAI-compatible endpoint, and the six pipeline roles.

Why per-role subclasses: Dagster 1.13 makes the values passed to a resource's
constructor the default of its *whole* config dict, so a partial run-config
override such as ``resources: {cot_teacher: {config: {max_concurrency: 8}}}``
would silently reset ``base_url``, ``model`` and the key to the class defaults.
:func:`endpoint_resources_from_env` therefore builds, per role, a subclass of
:class:`LLMEndpoint` whose *field* defaults are the role's values; Dagster then
merges a partial override field by field, and the launchpad shows the role's
values (the API key as ``{"env": "MMFR_<ROLE>_API_KEY"}``, never its value).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Union

import dagster as dg
import pydantic
from pydantic import Field

from mmfr_assets import settings
from mmfr_assets.settings import endpoint_environment, role_env_prefix

from .bound import EndpointBound, PoolSlots, endpoint_bound, split_base_urls
from .cache import DEFAULT_CACHE_ENV, DEFAULT_CACHE_PATH, ResponseCache
from .client import EndpointSettings, LLMSession
from .images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_EDGE, ImageInput, user_message
from .types import ChatRequest, LLMDisabledError


class LLMEndpoint(dg.ConfigurableResource):
    """One OpenAI-compatible chat endpoint (usually vLLM) used by one pipeline role.

    ``base_url`` empty means the role is disabled (``enabled`` is False; stages
    should skip or fail clearly).  Sampling fields left at None are not sent, so
    the server's / model's generation config applies.  Open a session per asset
    execution with :meth:`open_session`.
    """

    name: str = Field(default="", description="Role name, used in logs and metadata.")
    base_url: Optional[str] = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1; empty = disabled. "
                                  "Several replicas: comma-separated URLs, each run uses one (chosen by its "
                                  "partition key), each with its own max_concurrency total.")
    model: Optional[str] = Field(default=None, description="Served model name sent in each request.")
    api_key: Optional[str] = Field(
        default=None, description="Bearer token; supply with EnvVar so it is resolved at run time.")
    timeout_s: float = Field(default=600.0, description="Per-request timeout (seconds) for one attempt.")
    max_concurrency: int = Field(
        default=32, description="Requests in flight at once against this endpoint (each URL), in total over "
                                "every run: a step keeps total // (its pool's slots per URL) in flight.")
    max_retries: int = Field(default=5, description="Retries after the first attempt before a row fails.")
    backoff_base_s: float = Field(default=1.0, description="First backoff delay; doubles per retry (jittered).")
    backoff_max_s: float = Field(default=60.0, description="Cap on one backoff delay.")
    max_retry_after_s: float = Field(default=300.0, description="Cap on a server's Retry-After wait.")
    retry_on_length: bool = Field(default=True, description="Retry responses cut at max_tokens.")
    transport: str = Field(default="aiohttp", description="HTTP client posting the requests: aiohttp (least CPU per request) or httpx.")
    temperature: Optional[float] = Field(default=None, description="Sampling temperature (None = server default).")
    top_p: Optional[float] = Field(default=None, description="Nucleus sampling (None = server default).")
    max_tokens: Optional[int] = Field(default=None, description="Completion token limit (None = server default).")
    seed: Optional[int] = Field(default=None, description="Sampling seed sent with every request.")
    n: int = Field(default=1, description="Completions per request.")
    extra_body: dict = Field(
        default={}, description='Extra top-level body keys, e.g. {"top_k": 20} or '
                                '{"chat_template_kwargs": {"enable_thinking": false}}.')
    fail_fast_after: int = Field(
        default=10, description="Stop the step after this many requests in a row fail with the same "
                                "error that retrying cannot fix (0: never).")
    supports_n: bool = Field(
        default=True, description="The server returns several choices for one request with `n` (vLLM, "
                                  "llama.cpp); False: one request per sample, each with its own seed.")
    max_image_edge: int = Field(default=DEFAULT_MAX_IMAGE_EDGE, description="Longest image edge sent (pixels).")
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, description="Largest encoded image sent.")
    # How fast and how dear the endpoint is: read only by `mmfr plan` and the report's cost
    # per kept row (never sent); unset, they give tokens and requests only and say so.
    output_tokens_per_s: Optional[float] = Field(
        default=None, description="Completion tokens per second one replica (one URL) generates at full "
                                  "load; for the plan's wall time and GPU-hours (env MMFR_<ROLE>_OUTPUT_TOKENS_PER_S).")
    gpus_per_replica: Optional[float] = Field(
        default=None, description="GPUs one replica runs on; GPU-hours = replica-hours x this "
                                  "(env MMFR_<ROLE>_GPUS_PER_REPLICA).")
    price_per_gpu_hour: Optional[float] = Field(
        default=None, description="Price of one GPU-hour, in your currency (env MMFR_<ROLE>_PRICE_PER_GPU_HOUR).")
    price_per_million_tokens: Optional[float] = Field(
        default=None, description="A hosted API's price per million tokens, prompt and completion "
                                  "(env MMFR_<ROLE>_PRICE_PER_MILLION_TOKENS); wins over the GPU-hour price.")

    @property
    def enabled(self) -> bool:
        return bool(self.base_urls)

    @property
    def base_urls(self) -> list[str]:
        """The role's URLs (``base_url`` split at commas; usually one)."""
        return split_base_urls(self.base_url)

    def bound(self, slots: PoolSlots, partition_key: Any) -> EndpointBound:
        """The URL and the requests in flight of one step holding a slot of ``slots``' pool, so
        that ``max_concurrency`` holds per URL across every run (see :mod:`.bound`)."""
        return endpoint_bound(self.base_urls, self.max_concurrency, slots, partition_key)

    def settings(self, *, base_url: Optional[str] = None, max_concurrency: Optional[int] = None) -> EndpointSettings:
        """Plain snapshot handed to the client (no Dagster types); ``base_url`` and
        ``max_concurrency`` override the resource's (one step's share, see :meth:`bound`); the
        first URL when the role has several and none is given."""
        api_key = self.api_key
        if isinstance(api_key, dg.EnvVar):  # used outside a Dagster run: resolve it ourselves
            api_key = api_key.get_value()
        return EndpointSettings(
            base_url=base_url or next(iter(self.base_urls), ""), model=self.model or "", api_key=api_key or None,
            name=self.name, timeout_s=self.timeout_s,
            max_concurrency=max_concurrency if max_concurrency is not None else self.max_concurrency,
            max_retries=self.max_retries, backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s,
            max_retry_after_s=self.max_retry_after_s, retry_on_length=self.retry_on_length,
            transport=self.transport,
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed,
            n=self.n, extra_body=dict(self.extra_body or {}), fail_fast_after=self.fail_fast_after)

    def open_session(self, cache: Union[ResponseCache, str, os.PathLike, None] = None, log: Any = None, *,
                     watchdog_s: Optional[float] = None, buffer: Optional[int] = None,
                     bound: Optional[EndpointBound] = None) -> LLMSession:
        """Start a client session (a context manager); see :class:`LLMSession`.

        ``cache`` is a :class:`ResponseCache` (shared, not closed by the
        session) or a path (opened and closed by the session) or None.  ``log``
        is ``context.log`` or any ``logging.Logger``-like object.  ``bound``
        (from :meth:`bound`) picks the URL and the requests in flight; without
        it, the first URL and ``max_concurrency``.
        """
        if not self.enabled:
            raise LLMDisabledError(
                f"LLM endpoint {self.name or self.model!r} is disabled: set its base_url "
                f"(env MMFR_{(self.name or 'ROLE').upper()}_BASE_URL or run config)")
        settings = (self.settings(base_url=bound.url, max_concurrency=bound.per_step) if bound is not None
                    else self.settings())
        return LLMSession(settings, cache=cache, log=log, watchdog_s=watchdog_s, buffer=buffer)

    def user_message(self, text: str, image: Union[None, ImageInput, Iterable[ImageInput]] = None) -> dict:
        """User message with images bounded by this endpoint's ``max_image_edge`` / ``max_image_bytes``."""
        return user_message(text, image, max_edge=self.max_image_edge, max_bytes=self.max_image_bytes)

    def request(self, text: str, *, image: Union[None, ImageInput, Iterable[ImageInput]] = None,
                system: Optional[str] = None, **overrides: Any) -> ChatRequest:
        """``[system?, user(text, image?)]`` as a :class:`ChatRequest`; ``overrides`` are sampling fields."""
        messages: list[dict] = [{"role": "system", "content": system}] if system else []
        messages.append(self.user_message(text, image))
        return ChatRequest(messages=messages, **overrides)

    def __repr_args__(self):  # keep the key out of reprs, str() and tracebacks
        for key, value in super().__repr_args__():
            if key == "api_key" and value:
                value = f"EnvVar({value.env_var_name!r})" if isinstance(value, dg.EnvVar) else "***"
            yield key, value


# ---------------------------------------------------------------------------
# roles


@dataclass(frozen=True)
class RoleDefaults:
    """Defaults for one role; every value is overridable from run config."""

    model: str
    max_concurrency: int
    timeout_s: float
    max_tokens: int
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""


#: The paper's models where it names them (cleaner, CoT teacher, caption
#: teacher, student); answer extraction and verification use a fast instruct
#: model decoded greedily.  Sampling follows each model card's recommendation.
ROLE_DEFAULTS: dict[str, RoleDefaults] = {
    "cleaner_llm": RoleDefaults(
        model="Qwen/Qwen3-30B-A3B-Thinking-2507", max_concurrency=128, timeout_s=1200.0, max_tokens=16384,
        temperature=0.6, top_p=0.95, extra_body={"top_k": 20},
        doc="question cleaning / translation / rewriting (text only)"),
    "answer_llm": RoleDefaults(
        model="Qwen/Qwen3-30B-A3B-Instruct-2507", max_concurrency=128, timeout_s=300.0, max_tokens=2048,
        temperature=0.0, doc="final-answer extraction from solutions (short, greedy)"),
    "cot_teacher": RoleDefaults(
        model="Qwen/Qwen3-VL-235B-A22B-Thinking", max_concurrency=64, timeout_s=3600.0, max_tokens=32768,
        temperature=1.0, top_p=0.95, extra_body={"top_k": 20},
        doc="chain-of-thought distillation (image + question)"),
    "caption_teacher": RoleDefaults(
        model="Qwen/Qwen3-VL-235B-A22B-Instruct", max_concurrency=64, timeout_s=1200.0, max_tokens=4096,
        temperature=0.7, top_p=0.8, extra_body={"top_k": 20, "presence_penalty": 1.5},
        doc="dense image captions"),
    "judge_llm": RoleDefaults(
        model="Qwen/Qwen3-30B-A3B-Instruct-2507", max_concurrency=128, timeout_s=300.0, max_tokens=1024,
        temperature=0.0, doc="answer verification against the reference (greedy)"),
    "student_llm": RoleDefaults(
        model="Qwen/Qwen3-VL-4B-Thinking", max_concurrency=128, timeout_s=1800.0, max_tokens=16384,
        temperature=1.0, top_p=0.95, extra_body={"top_k": 20},
        doc="difficulty rollouts (pass rate of a small model)"),
    "policy_llm": RoleDefaults(
        model="Qwen/Qwen3-VL-8B-Thinking", max_concurrency=128, timeout_s=1800.0, max_tokens=16384,
        temperature=1.0, top_p=1.0,
        doc="RL rollouts: the model to be RL-trained (your SFT checkpoint; set MMFR_POLICY_LLM_MODEL)"),
}

ROLES: tuple[str, ...] = tuple(ROLE_DEFAULTS)


def endpoint_class_for_role(role: str, environ: Optional[Mapping[str, str]] = None) -> type[LLMEndpoint]:
    """A subclass of :class:`LLMEndpoint` whose field defaults are ``role``'s values.

    Read from the environment (through :func:`mmfr_assets.settings.endpoint_environment`):
    ``MMFR_<ROLE>_BASE_URL`` (unset/empty = disabled), ``MMFR_<ROLE>_MODEL``,
    ``MMFR_<ROLE>_MAX_CONCURRENCY`` and ``MMFR_<ROLE>_API_KEY`` (only its *presence*: the
    default becomes ``EnvVar("MMFR_<ROLE>_API_KEY")``, resolved by Dagster at run time).
    """
    d = ROLE_DEFAULTS[role]
    prefix = role_env_prefix(role)
    env = endpoint_environment(role, environ)
    base_url = env.base_url
    model = env.model or d.model
    concurrency = env.max_concurrency or d.max_concurrency
    api_key: Optional[str] = dg.EnvVar(env.api_key_var) if env.api_key_var else None
    class_name = "".join(part.capitalize() for part in role.split("_")) + "Endpoint"
    overrides: dict[str, Any] = {
        "name": role, "base_url": base_url, "model": model, "api_key": api_key,
        "max_concurrency": concurrency, "timeout_s": d.timeout_s, "max_tokens": d.max_tokens,
        "temperature": d.temperature, "top_p": d.top_p, "extra_body": dict(d.extra_body),
        **env.economics,
    }
    fields = {
        name: (LLMEndpoint.model_fields[name].annotation,
               Field(default=value, description=LLMEndpoint.model_fields[name].description))
        for name, value in overrides.items()
    }
    cls = pydantic.create_model(
        class_name,
        __base__=LLMEndpoint,
        __module__=__name__,
        __doc__=f"LLM endpoint for role {role!r}: {d.doc}. Defaults from {prefix}* at definition time.",
        **fields,
    )
    return cls


def endpoint_resources_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, LLMEndpoint]:
    """The six role resources, keyed ``cleaner_llm, answer_llm, cot_teacher,
    caption_teacher, judge_llm, student_llm``, configured from ``MMFR_<ROLE>_*``.

    Pass the result into ``dg.Definitions(resources=...)``.  Everything stays
    overridable per run (``resources: {cot_teacher: {config: {...}}}``).
    ``environ`` defaults to ``os.environ`` read at call time (a ``None`` default
    rather than ``os.environ`` itself, so ``help()`` and signature dumps do not
    print the environment, keys included).
    """
    return {role: endpoint_class_for_role(role, environ)() for role in ROLES}


# ---------------------------------------------------------------------------
# the response cache


#: The cache's resource key: every model step's asset takes it beside its endpoint.
CACHE_RESOURCE_KEY = "llm_cache"


class LLMCache(dg.ConfigurableResource):
    """Where every model step's replies are kept (`cache.ResponseCache`): a SQLite file, or a
    PostgreSQL URL shared by every run on every machine.

    A resource rather than an environment variable read inside the asset, so the launchpad
    shows it and a run can point elsewhere (``resources: {llm_cache: {config: {location: …}}}``).
    :func:`llm_cache_from_env` builds it from ``MMFR_LLM_CACHE``.
    """

    location: str = Field(
        default=DEFAULT_CACHE_PATH,
        description="SQLite file (relative to the working directory) or postgresql:// URL of the response "
                    f"cache; default from {DEFAULT_CACHE_ENV}, else {DEFAULT_CACHE_PATH}.")

    def path(self) -> str:
        """The location, resolved (outside a Dagster run an ``EnvVar`` is read here)."""
        location = self.location
        return (location.get_value() or DEFAULT_CACHE_PATH) if isinstance(location, dg.EnvVar) else location

    def __repr_args__(self):  # a PostgreSQL URL may carry a password
        for key, value in super().__repr_args__():
            if key == "location" and isinstance(value, dg.EnvVar):
                value = f"EnvVar({value.env_var_name!r})"
            elif key == "location" and "://" in str(value):
                value = "***"
            yield key, value


def llm_cache_from_env(environ: Optional[Mapping[str, str]] = None) -> LLMCache:
    """The cache resource: ``MMFR_LLM_CACHE`` when set, passed as ``EnvVar`` (Dagster reads it
    at run time; the launchpad shows ``{"env": "MMFR_LLM_CACHE"}``, never a URL's password),
    else the default file. The one place the pipeline reads that variable."""
    if settings.llm_cache_is_set(environ):
        return LLMCache(location=dg.EnvVar(DEFAULT_CACHE_ENV))
    return LLMCache()
