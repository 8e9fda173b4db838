"""Posting one chat request and reading its reply: the only network code of the client.

Why not the openai SDK, which the client used before: a request needs nothing of it but a POST
of a JSON body and the reply's status, headers and text (retries, error texts and parsing are
the client's own), and its request path (option models, URL objects, header merging, a
httpx-shaped wrapper around aiohttp) was three quarters of the event loop's CPU. Profiled
against the fake server at 128 requests in flight, that capped a model step at 200-245
requests/s where a bare aiohttp client reached 380-520 on the same two cores.

Two clients, chosen by the endpoint's ``transport``: ``aiohttp`` (the default, the cheapest per
request) and ``httpx`` (httpx2, the HTTP library the openai SDK brings). Both read proxies from
the environment (``HTTPS_PROXY`` …), as the SDK did, and report a request that got no reply as
:class:`NoReply` with one text naming the root cause.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: status, headers (lower-case names) and the body as text."""

    status: int
    headers: Mapping[str, str]
    text: str


class NoReply(Exception):
    """The request got no reply: refused or reset connection, a read or connect timeout."""


def encode_body(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def no_reply_text(exc: BaseException, timeout_s: float) -> str:
    """Name the root cause: HTTP libraries wrap it two or three times (a refused connection
    can surface as a connect timeout)."""
    root: BaseException = exc
    for _ in range(10):
        nxt = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if nxt is None:
            break
        root = nxt
    name = type(root).__name__
    if isinstance(root, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in name:
        return f"timeout after {timeout_s:g}s ({name})"
    return f"connection error: {name}: {root}"


def error_message(text: str) -> str:
    """The server's own words from an error body: OpenAI's ``{"error": {"message": …}}``
    (vLLM, llama.cpp, proxies), else the body itself, shortened."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        return json.dumps(data)[:500]
    return text[:500]


def env_proxy(url: str) -> Optional[str]:
    """The proxy URL the environment gives for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``, minus
    ``NO_PROXY``), or None."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class Transport:
    """Posts bodies to one URL with a bounded connection pool. Create and use it on the
    event loop that will run its requests."""

    def __init__(self, url: str, *, api_key: Optional[str], timeout_s: float, max_connections: int) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        # "EMPTY" is vLLM's convention for "no key", what the SDK sent when none was given.
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "Authorization": f"Bearer {api_key or 'EMPTY'}"}

    async def post(self, body: Mapping[str, Any]) -> Reply:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class AiohttpTransport(Transport):
    def __init__(self, url: str, **kwargs: Any) -> None:
        import aiohttp

        super().__init__(url, **kwargs)
        self._errors = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
        # A read timeout between bytes (as httpx's read timeout), not on the whole reply: a long
        # generation that streams nothing for minutes is normal; the client's hard deadline
        # bounds the whole attempt.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout_s, 30.0),
                                        sock_read=self.timeout_s)
        # The environment's proxy is looked up once here: aiohttp's `trust_env` looks it up (and
        # netrc) in a worker thread on every request, two thread hops per request.
        self._proxy = env_proxy(url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections), timeout=timeout)

    async def post(self, body: Mapping[str, Any]) -> Reply:
        try:
            async with self._session.post(self.url, data=encode_body(body), headers=self.headers,
                                          proxy=self._proxy) as response:
                raw = await response.read()
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()},
                             raw.decode("utf-8", errors="replace"))
        except self._errors as exc:
            raise NoReply(no_reply_text(exc, self.timeout_s)) from None

    async def close(self) -> None:
        await self._session.close()


class HttpxTransport(Transport):
    def __init__(self, url: str, **kwargs: Any) -> None:
        import httpx2

        super().__init__(url, **kwargs)
        self._errors = (httpx2.TransportError, OSError, asyncio.TimeoutError)
        self._client = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=self.max_connections,
                                 max_keepalive_connections=self.max_connections),
            timeout=httpx2.Timeout(self.timeout_s, connect=min(self.timeout_s, 30.0)))

    async def post(self, body: Mapping[str, Any]) -> Reply:
        try:
            response = await self._client.post(self.url, content=encode_body(body), headers=self.headers)
            return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                         response.text)
        except self._errors as exc:
            raise NoReply(no_reply_text(exc, self.timeout_s)) from None

    async def close(self) -> None:
        await self._client.aclose()


#: The endpoint setting `transport` names one of these.
TRANSPORTS: dict[str, type[Transport]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}


def open_transport(name: str, url: str, *, api_key: Optional[str], timeout_s: float,
                   max_connections: int) -> Transport:
    if name not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {name!r}")
    return TRANSPORTS[name](url, api_key=api_key, timeout_s=timeout_s, max_connections=max_connections)
