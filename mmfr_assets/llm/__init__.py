"""One client layer for every model-driven stage (cleaning, answer extraction,
CoT distillation, captioning, verification, difficulty rollouts).

Where things are: `resource.py` the Dagster resource per role (`LLMEndpoint`), `endpoint.py`
its settings snapshot and the key redactor, `client.py` the session and its request window,
`wire.py` the request body and the reply's parsing, `replies.py` what a reply says (thinking, blank, JSON), `retries.py` retry, backoff and fail-fast,
`transport.py` the HTTP POST, `cache.py` the response cache, `usage.py` the counters.

How a model step uses it (`model_step/runner.py`, the only caller in the pipeline)::

    with endpoint.open_session(cache=llm_cache.path(), log=context.log) as session:
        window = session.window_of_requests()
        for key, result in window.submit_many(pairs):   # cache hits come back at once
            ...
        while window.outstanding:                       # the rest as they complete
            for key, result in window.completed(block=True):
                ...
    context.add_output_metadata(session.usage.to_metadata(prefix="cot_teacher_"))

(topping the window up as results come back, to keep ``session.window`` outstanding).

Names are imported lazily so that client-only processes (benchmarks, the
fake server of mmfr_devkit) do not pay for importing Dagster.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ChatRequest": "types", "ChatResult": "types", "Choice": "types", "LLMDisabledError": "types",
    "LLMError": "types", "LLMStallError": "types", "LLMEndpointError": "types",
    "ResponseCache": "cache", "cache_key": "cache", "canonical_request": "cache", "default_cache_path": "cache",
    "EndpointSettings": "endpoint", "Redactor": "endpoint", "LLMSession": "client", "RequestWindow": "client",
    "image_data_url": "images", "prepare_image": "images", "user_message": "images",
    "UsageStats": "usage",
    "LLMEndpoint": "resource", "ROLES": "resource", "ROLE_DEFAULTS": "resource",
    "endpoint_class_for_role": "resource", "endpoint_resources_from_env": "resource",
    "LLMCache": "resource", "llm_cache_from_env": "resource", "CACHE_RESOURCE_KEY": "resource",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
