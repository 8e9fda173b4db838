"""One endpoint as the client sees it: the settings snapshot, its URL, and the rule that keeps
its API key out of every text the client writes.

Why a plain dataclass: the Dagster resource (`resource.py`) hands this snapshot over, so the
client (`client.py`) never imports Dagster, and a benchmark or the fake server's tests build one
directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class EndpointSettings:
    """Everything the client needs about one endpoint (a snapshot of the resource)."""

    base_url: str
    model: str
    api_key: Optional[str] = field(default=None, repr=False)
    name: str = ""
    timeout_s: float = 600.0
    max_concurrency: int = 32
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0
    retry_on_length: bool = True
    transport: str = "aiohttp"
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    n: int = 1
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    fail_fast_after: int = 10

    @property
    def label(self) -> str:
        return self.name or self.model



def normalize_base_url(url: str) -> str:
    """Append ``/v1`` when the URL has no path (every OpenAI-compatible server serves there)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1")
    return urlunsplit(parts)


class Redactor:
    """Removes secrets (and any bearer token) from text that will be logged or stored."""

    _BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")

    def __init__(self, *secrets: Optional[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: Any, limit: int = 1000) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "***")
        out = self._BEARER.sub(r"\1***", out)
        out = " ".join(out.split())
        return out if len(out) <= limit else out[: limit - 3] + "..."

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

