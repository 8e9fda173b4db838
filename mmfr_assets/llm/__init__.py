"""One client layer for every model-driven stage (cleaning, answer extraction,
CoT distillation, captioning, verification, difficulty rollouts).

Typical use inside an asset::

    with cot_teacher.open_session(cache=default_cache_path(), log=context.log) as session:
        for row_id, result in session.map((r.id, cot_teacher.request(r.question, image=r.image))
                                          for r in rows):
            ...
    context.add_output_metadata(session.usage.to_metadata(prefix="cot_teacher_"))

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
    "EndpointSettings": "client", "LLMSession": "client", "Redactor": "client",
    "image_data_url": "images", "prepare_image": "images", "user_message": "images",
    "UsageStats": "usage",
    "LLMEndpoint": "resource", "ROLES": "resource", "ROLE_DEFAULTS": "resource",
    "endpoint_class_for_role": "resource", "endpoint_resources_from_env": "resource",
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
