"""The OpenAI chat-completions wire format, as pure functions: the JSON body a request is sent
as (also what its cache key is computed from), the reply parsed into choices and token counts,
whether a well-formed reply is usable, and the cache's payload of a result.

Why apart from the session: these are the rules a change of server or of cache touches, and they
are tested without a loop thread or a socket (`test_llm_client.py`, `test_llm_cache.py`).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from .endpoint import EndpointSettings
from .replies import is_blank, split_thinking
from .types import ChatRequest, ChatResult, Choice


def build_body(settings: EndpointSettings, request: ChatRequest) -> dict[str, Any]:
    """The JSON body sent for ``request``; also what the cache key is computed from."""
    body: dict[str, Any] = {"model": settings.model, "messages": [dict(m) for m in request.messages]}
    params = {
        "temperature": _pick(request.temperature, settings.temperature),
        "top_p": _pick(request.top_p, settings.top_p),
        "max_tokens": _pick(request.max_tokens, settings.max_tokens),
        "seed": _pick(request.seed, settings.seed),
        "n": _pick(request.n, settings.n),
    }
    body.update({k: v for k, v in params.items() if v is not None})
    extra = dict(settings.extra_body or {})
    extra.update(request.extra_body or {})
    for k, v in extra.items():
        if k not in ("model", "messages"):
            body[k] = v
    return body


def _pick(a: Any, b: Any) -> Any:
    return a if a is not None else b



class MalformedResponse(ValueError):
    """A 200 response whose body is not a usable chat completion."""


def parse_completion(text: str) -> tuple[tuple[Choice, ...], int, int, str]:
    """``(choices, prompt_tokens, completion_tokens, model)`` from a response body.

    Reasoning comes from ``reasoning_content`` (vLLM) or ``reasoning`` (newer
    vLLM / other servers); when absent but the content holds ``…</think>`` (a
    reasoning model served without a reasoning parser), it is split out.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedResponse(f"malformed JSON body ({len(text)} chars): {exc}") from None
    if not isinstance(data, dict):
        raise MalformedResponse(f"response body is {type(data).__name__}, not an object")
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise MalformedResponse("response has no choices")
    choices = []
    for raw in sorted(raw_choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        if not isinstance(raw, dict):
            raise MalformedResponse("choice is not an object")
        msg = raw.get("message")
        if not isinstance(msg, dict):
            raise MalformedResponse("choice has no message")
        content = _text(msg.get("content"))
        reasoning = _text(msg.get("reasoning_content")) or _text(msg.get("reasoning"))
        if not reasoning:
            reasoning, content = split_thinking(content)
        choices.append(Choice(content=content, reasoning=reasoning, finish_reason=raw.get("finish_reason")))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return (tuple(choices), _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
            str(data.get("model") or ""))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def unusable_reason(choices: Iterable[Choice], retry_on_length: bool) -> Optional[str]:
    """Why a well-formed response must be retried anyway, or None if it is usable."""
    for c in choices:
        if is_blank(c.content) and is_blank(c.reasoning):
            return "empty content"
        if retry_on_length and c.finish_reason == "length":
            return "finish_reason=length (output truncated at max_tokens)"
    return None



def result_from_payload(payload: Mapping[str, Any], *, cache_key: str, cached: bool, **extra: Any) -> ChatResult:
    """Rebuild a :class:`ChatResult` from a cache payload."""
    choices = tuple(Choice(content=c.get("content", ""), reasoning=c.get("reasoning", ""),
                           finish_reason=c.get("finish_reason")) for c in payload.get("choices", ()))
    return ChatResult(ok=True, choices=choices, cached=cached, model=payload.get("model", ""),
                      prompt_tokens=payload.get("prompt_tokens", 0),
                      completion_tokens=payload.get("completion_tokens", 0), cache_key=cache_key, **extra)


def payload_from_result(result: ChatResult) -> dict[str, Any]:
    return {
        # spelled out: dataclasses.asdict deep-copies through generic machinery, per reply
        "choices": [{"content": c.content, "reasoning": c.reasoning, "finish_reason": c.finish_reason}
                    for c in result.choices],
        "model": result.model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
    }

