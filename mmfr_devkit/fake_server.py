"""A small OpenAI-compatible chat server for tests and benchmarks.

Why a real HTTP server rather than a mocked client: the point is to exercise the
real ``openai`` SDK, connection pooling, timeouts and the retry logic against
the faults a vLLM fleet actually produces, and to run client and server in
different processes for benchmarks.

Endpoints:

* ``POST /v1/chat/completions`` and ``GET /v1/models`` (enough for the SDK);
* ``GET /admin/stats`` (``?detail=1`` adds per-prompt counts; ``first_request_at`` and
  ``last_completion_at`` are the wall-clock times (``time.time()``) of the first request
  received and the last completion sent, so a benchmark can measure the rate the endpoint
  was kept busy at: ``completed / (last_completion_at - first_request_at)``;
  ``in_flight_seconds`` over that window is the mean number of requests in flight), ``POST
  /admin/reset`` (stats and config back to defaults), ``POST /admin/config``
  (merge a JSON object into the config; ``rules`` is replaced as a whole).

Replies are deterministic functions of the request: a prompt asking for a
"step-by-step" solution gets 250+ distinct words of reasoning (separately in
``reasoning_content`` by default) and ``<answer>X</answer>``; a caption /
describe prompt gets a 120+ word description; anything else a short echo.

Faults come from ``rules`` (first matching rule wins).  A rule is a dict::

    {"fault": "500" | "503" | "429" | "400" | <any status> | "hang" | "malformed"
              | "empty" | "length" | "drop" | "delay" | "reply",
     "marker": "text the prompt must contain",       # optional selector
     "model": "name",         # optional selector: only requests for this model
     "first": k,              # only the first k matching requests, or
     "first_per_prompt": k,   # only the first k attempts of each distinct prompt, or
     "fraction": 0.3,         # a seeded-random fraction; none of these = always
     "retry_after": 2, "retry_after_format": "seconds" | "http-date",   # for 429/503
     "latency_s": 0.5,        # for "delay" (extra latency, then a normal reply)
     "content": "...", "reasoning": "...", "finish_reason": "stop",   # for "reply": exactly
     "contents": ["...", ...]}  # this reply (with n > 1, choice i gets contents[i % len])

A 4xx/5xx fault's error message is the rule's "message" when given ("injected fault N"
otherwise), so tests can reproduce a real server's words.

Roles (a cluster's endpoints as the rehearsal sees them): ``roles`` maps a request's model name
(e.g. ``cot_teacher``) to that endpoint's behaviour, so one server can stand for all six::

    {"roles": {"cot_teacher": {"faults": {"429": 0.03, "5xx": 0.02, "malformed": 0.01,
                                          "empty": 0.01},
                               "latency_s": 2.0, "latency_sigma": 1.0,
                               "words_median": 910, "words_p90": 3428}}}

A role named after one of the six (``cleaner_llm``, ``answer_llm``, ``judge_llm``) answers in
the form its prompt asks for (``role_reply``). ``faults`` are the shares of requests answered
with that fault (``5xx`` one of 500, 502, 503);
``latency_s``/``latency_sigma`` a lognormal latency of that mean; ``words_median``/``words_p90``
a lognormal reasoning length in words for step-by-step replies; ``capacity`` (optional) the
requests that endpoint serves at once, the rest queueing (the server-wide ``capacity`` applies to
a role without one). Every draw is a function of
(``seed``, the prompt, how many times that prompt was asked): the same requests get the same
faults, latencies and lengths in whatever order they arrive. ``/admin/stats`` counts per role
(``by_role``: requests, completed, faults, completion tokens, ``served_seconds``: the latency
served holding a slot, so ``served_seconds / (capacity x window)`` is the share of that
endpoint's capacity in use, ``busy_fraction``). Rules still apply first.

``?detail=1`` also gives ``by_request``: per distinct request body (a digest of the whole JSON
body: model, messages with their images, seed, n, ...) ``[received, faulted, good]``: how often
it arrived, how often it was answered with a fault (an error status, a malformed or empty reply,
a drop) and how often with a usable reply. A body answered usably twice was paid twice.

Run standalone: ``python -m mmfr_devkit.fake_server --port 0 --latency 0.05``
prints the base URL (``http://127.0.0.1:PORT/v1``) on its first stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import copy
import email.utils
import hashlib
import json
import math
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Callable, Any, Optional

from aiohttp import web

DEFAULT_CONFIG: dict[str, Any] = {
    "model": "fake-model",
    "latency_s": 0.0,            # added to every completion
    "latency_jitter_s": 0.0,     # + a deterministic per-request share of this
    "latency_sigma": 0.0,        # > 0: latency_s is the mean of a lognormal with this sigma
    "capacity": 0,               # > 0: requests served at once; the rest queue (FIFO), as in vLLM
    "reasoning": "separate",     # separate | inline (<think>…</think> in content) | none
    "reasoning_field": "reasoning_content",   # or "reasoning"
    "answer": None,              # force the <answer> of step-by-step replies
    "api_key": None,             # when set, require "Authorization: Bearer <api_key>"
    "echo_auth_in_errors": False,  # put the received Authorization header in error bodies
    "enforce_max_tokens": False,   # truncate (finish_reason=length) past max_tokens words
    "hang_s": 3600.0,            # how long a "hang" fault sleeps
    "seed": 0,                   # seeds the RNG of "fraction" rules
    "rules": [],
}

_STEP_RE = re.compile(r"step[\s-]*by[\s-]*step", re.I)
_CAPTION_RE = re.compile(r"\b(caption|describe|description)\b", re.I)
_OPTION_RE = re.compile(r"(?:^|[\s(])([A-E])[).:]", re.M)


# ---------------------------------------------------------------------------
# request helpers


def prompt_text(messages: Any) -> str:
    """All text of a chat request's messages, joined by newlines (images ignored)."""
    out = []
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "\n".join(out)


def prompt_digest(messages: Any) -> str:
    """Short digest of :func:`prompt_text`; keys of the ``by_prompt`` stats."""
    return hashlib.sha256(prompt_text(messages).encode("utf-8")).hexdigest()[:16]


def request_digest(body: Any) -> str:
    """Digest of a whole request body (model, messages with images, seed, n, ...): keys of the
    ``by_request`` stats, the unit a response cache answers."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]


def busy_fraction(served_seconds: float, capacity: int, window_s: float) -> float:
    """The share of an endpoint's capacity in use over ``window_s``: seconds served holding a
    slot over ``capacity`` slots x the window (0 when there is no window or no capacity)."""
    if capacity <= 0 or window_s <= 0:
        return 0.0
    return served_seconds / (capacity * window_s)


def _has_image(messages: Any) -> bool:
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) and
               any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
               for m in messages or [])


def _rng(*parts: Any) -> random.Random:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return random.Random(int(h[:16], 16))


# ---------------------------------------------------------------------------
# canned replies

_REASONING_SENTENCES = [
    "First, I restate what the problem gives and what it asks for, so nothing is overlooked.",
    "The figure shows a configuration whose labelled quantities include {a} and {b}.",
    "Let me denote the unknown by x and write down every relation the statement implies.",
    "From the diagram, two segments appear congruent, which suggests exploiting symmetry.",
    "Substituting {a} into the expression gives {a} times {c}, that is {ac}.",
    "Next, subtracting {b} from that product leaves {acb}, a value worth remembering.",
    "Before going further, I should double-check whether the units are consistent throughout.",
    "Angles along a straight line sum to 180 degrees, so the remaining angle follows directly.",
    "A quick sanity check: dividing {ac} by {c} recovers {a}, confirming the arithmetic.",
    "Perhaps an alternative approach helps; consider expressing everything via ratios instead.",
    "Hmm, wait, maybe I misread one label, so I re-examine the picture carefully once more.",
    "The legend indicates that each bar corresponds to a separate category of measurements.",
    "Counting the visible objects row by row yields {d} items in total.",
    "Because the triangle is right-angled, the Pythagorean theorem relates its three sides.",
    "Squaring {a} gives {a2}, while squaring {b} produces {b2}.",
    "Adding these squares yields {a2b2}, whose square root approximates the hypotenuse length.",
    "Options that contradict this intermediate result can already be eliminated with confidence.",
    "Rearranging terms isolates the variable neatly on one side of the equation.",
    "Dimensional reasoning suggests the answer must scale linearly with the given length.",
    "I notice a recurring pattern: every subsequent term increases by exactly {c}.",
    "Extrapolating that progression four more steps lands on {pattern}.",
    "Probability questions like this require enumerating favourable versus possible outcomes.",
    "Here, favourable outcomes number {d}, out of {e} equally likely possibilities.",
    "Simplifying the fraction {d}/{e} carefully avoids an easy slip in the final comparison.",
    "Physical intuition agrees: heavier objects accelerate identically when air resistance vanishes.",
    "The chart's vertical axis starts above zero, exaggerating apparent differences visually.",
    "Reading coordinates precisely, the highlighted point sits near ({a}, {b}).",
    "Slope equals rise over run, computed here as ({b} minus {c}) over {a}.",
    "Considering edge cases prevents overlooking degenerate shapes or empty sets.",
    "Let me verify the boundary condition separately, since mistakes often hide there.",
    "Combining both partial results produces a consistent overall picture of the situation.",
    "Nothing in the statement forbids negative values, yet context implies positivity.",
    "Geometric constructions such as auxiliary lines occasionally reveal hidden similar triangles.",
    "Similar triangles share proportional sides, which lets unknown lengths be computed quickly.",
    "Chemistry-style reasoning would balance atoms; analogously, I balance both sides here.",
    "Circle properties matter: inscribed angles subtending equal arcs remain equal.",
    "The area formula for a trapezoid averages parallel bases then multiplies by height.",
    "Evaluating that formula with bases {a} and {b} and height {c} produces {trap}.",
    "So far every intermediate quantity agrees with independent estimates made earlier.",
    "One more look at the question wording: it asks specifically about the final state.",
    "Misreading 'at least' as 'exactly' would change the count, so I keep that distinction.",
    "Tabulating values systematically reduces cognitive load and exposes arithmetic errors.",
    "Logical puzzles of this kind reward eliminating impossible arrangements step by step.",
    "Colour coding in the image distinguishes the shaded region from its unshaded complement.",
    "Subtracting the unshaded part from the whole rectangle isolates the shaded area.",
    "Therefore the computation collapses to a single expression that evaluates cleanly.",
]

_CAPTION_SENTENCES = [
    "The image presents a clean diagram drawn with thin dark lines on a plain white background.",
    "Near the upper left corner, a label reads {a}, printed in a small serif typeface.",
    "A large triangle dominates the centre, its vertices marked with capital letters.",
    "One side carries a tick mark, indicating equality with another segment nearby.",
    "Along the bottom edge runs a horizontal axis graduated in increments of {c} units.",
    "Several dashed auxiliary lines connect interior points, suggesting a construction step.",
    "To the right, a shaded circular sector is filled with light grey hatching.",
    "An arc indicates an angle of roughly {d} degrees at the lower vertex.",
    "Small numerals annotate lengths: {a}, {b} and {e} appear beside corresponding sides.",
    "There is no photographic content; everything is schematic, rendered like textbook artwork.",
    "A legend box in the lower right explains symbols using three coloured swatches.",
    "The red swatch denotes measured values, whereas blue marks predicted ones.",
    "Grid lines are faint but visible, helping estimate coordinates of plotted markers.",
    "Text beneath the figure poses a question about the relationship between highlighted quantities.",
    "Overall, the composition is balanced, with generous margins surrounding each element.",
    "No people, animals or landscapes appear; the focus remains purely mathematical.",
    "Arrows point from the caption toward particular regions, guiding the viewer's attention.",
    "Fine print at the very bottom cites a source, though it is too small to read fully.",
    "The total number of distinct labelled points appears to be {f}.",
    "Contrast is high, so every line and character remains legible even when reduced.",
]


def _numbers(rng: random.Random) -> dict[str, Any]:
    a, b, c = rng.randint(3, 19), rng.randint(2, 17), rng.randint(2, 9)
    d, e = rng.randint(2, 12), rng.randint(13, 40)
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": rng.randint(4, 11), "ac": a * c, "acb": a * c - b,
            "a2": a * a, "b2": b * b, "a2b2": a * a + b * b, "pattern": a + 4 * c,
            "trap": (a + b) * c / 2}


def reasoning_reply(text: str, seed: Any, index: int, answer: Optional[str]) -> tuple[str, str]:
    """``(reasoning, content)`` for a step-by-step request: 250+ distinct words, no repeated
    50-word window (sentences are drawn without replacement), deterministic per request."""
    rng = _rng("reasoning", text, seed, index)
    nums = _numbers(rng)
    sentences = rng.sample(_REASONING_SENTENCES, k=len(_REASONING_SENTENCES))
    excerpt = " ".join(text.split()[:14])
    lines = [f"The problem asks: {excerpt.rstrip('.')}."] + [s.format(**nums) for s in sentences]
    reasoning = "\n".join(" ".join(lines[i:i + 4]) for i in range(0, len(lines), 4))
    if answer is None:
        options = sorted(set(_OPTION_RE.findall(text)))
        answer = rng.choice(options) if options else str(rng.randint(2, 99))
    content = (f"Working through the relations above and checking each intermediate value, "
               f"the result is {answer}.\n\n<answer>{answer}</answer>")
    return reasoning, content


def caption_reply(text: str, seed: Any, index: int) -> str:
    """A deterministic 120+ word image description."""
    rng = _rng("caption", text, seed, index)
    nums = _numbers(rng)
    sentences = rng.sample(_CAPTION_SENTENCES, k=12)
    return " ".join(s.format(**nums) for s in sentences)


#: Faults a role's ``faults`` may name; ``5xx`` is one of these statuses, drawn per request.
ROLE_FAULTS = ("429", "5xx", "malformed", "empty")
_5XX = ("500", "502", "503")


def role_fault(rates: dict[str, float], seed: Any, digest: str, attempt: int) -> Optional[str]:
    """The fault for attempt ``attempt`` of the prompt ``digest`` under a role's ``rates``
    ({fault: share of requests}), or None: one uniform draw per (seed, prompt, attempt) against
    the shares stacked in ``ROLE_FAULTS`` order, so a retry draws again and the same requests
    get the same faults in any arrival order."""
    unknown = set(rates) - set(ROLE_FAULTS)
    if unknown:
        raise ValueError(f"unknown role faults {sorted(unknown)}; known: {', '.join(ROLE_FAULTS)}")
    draw = _rng("fault", seed, digest, attempt)
    u, edge = draw.random(), 0.0
    for fault in ROLE_FAULTS:
        edge += float(rates.get(fault) or 0.0)
        if u < edge:
            return draw.choice(_5XX) if fault == "5xx" else fault
    return None


def reply_words(role: dict[str, Any], seed: Any, text: str, request_seed: Any, index: int) -> int:
    """A reasoning length in words: lognormal with the role's ``words_median`` and
    ``words_p90`` (the published traces': 910 and 3,428), drawn per prompt and choice."""
    median = float(role["words_median"])
    p90 = float(role.get("words_p90") or median)
    sigma = math.log(p90 / median) / 1.2816 if p90 > median else 0.0  # z of the 90th percentile
    return max(60, round(_rng("words", seed, text, request_seed, index).lognormvariate(math.log(median), sigma)))


def stretch_reasoning(reasoning: str, words: int) -> str:
    """``reasoning`` cycled or cut to ``words`` words, a running ``(k)`` after each cycle's
    sentence start so that no 50-word window repeats (the repetition rule would drop it)."""
    source = reasoning.split()
    out: list[str] = []
    k = 0
    while len(out) < words:
        for w in source:
            out.append(w)
            if len(out) % 25 == 0:
                k += 1
                out.append(f"({k})")
            if len(out) >= words:
                break
    return " ".join(out)


_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_CANDIDATE_RE = re.compile(r"^(\d+)\. ", re.M)


def role_reply(role: str, text: str, seed: Any, index: int) -> Optional[str]:
    """The reply a model in ``role`` gives in the form its prompt asks for (prompts/), for the
    roles whose replies are not step-by-step solutions or captions; None for those. The
    judges say EQUIVALENT for about 70% of the answers."""
    rng = _rng("role", role, text, seed, index)
    if role == "cleaner_llm":
        return "No Problem"
    if role == "answer_llm":
        solution = text.split("Solution:", 1)[-1]
        options = _OPTION_RE.findall(solution)
        numbers = _NUMBER_RE.findall(solution)
        return f"<answer>{options[-1] if options else numbers[-1] if numbers else 'A'}</answer>"
    if role == "judge_llm":
        verdict = lambda: "EQUIVALENT" if rng.random() < 0.7 else "DIFFERENT"  # noqa: E731
        if "Student's final answers:" in text:
            count = len(_CANDIDATE_RE.findall(text.split("Student's final answers:", 1)[1]))
            return "\n".join(f"JUDGMENT {k}: {verdict()}" for k in range(1, max(count, 1) + 1))
        return f"Analysis: the two answers were compared.\nJUDGMENT: {verdict()}"
    return None


def rule_reply_contents(rule: dict[str, Any]) -> list[str]:
    """The scripted contents of a "reply" rule (``contents`` or ``content``)."""
    contents = rule.get("contents")
    if isinstance(contents, list) and contents:
        return [str(c) for c in contents]
    return [str(rule.get("content") or "")]


def echo_reply(messages: Any) -> str:
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    last = prompt_text(users[-1:]) if users else ""
    return "Echo: " + (" ".join(last.split())[:200] or "(empty)")


# ---------------------------------------------------------------------------
# the app


class FakeOpenAIServer:
    """State (config + counters) and handlers of the fake server."""

    def __init__(self, config: Optional[dict[str, Any]] = None) -> None:
        #: In-process servers only: ``responder(body)`` -> one content per choice, or None for
        #: the usual reply; lets a test script answers that depend on the whole request
        #: (its model name, its image), e.g. an endpoint answering as a published dataset did.
        self.responder: Optional[Callable[[dict[str, Any]], Optional[list[str]]]] = None
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        if config:
            self.config.update(copy.deepcopy(config))
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_seconds = 0.0
        self._in_flight_since: Optional[float] = None
        self.completed = 0
        self.served_seconds = 0.0  # latency slept holding a capacity slot: busy slot-seconds
        self._slots: dict[Optional[str], tuple[int, asyncio.Semaphore]] = {}  # role (None: the server's)
        self.first_request_at: Optional[float] = None  # time.time() of the first request received
        self.last_completion_at: Optional[float] = None  # ... and of the last completion sent
        self.faults: dict[str, int] = {}
        self.by_role: dict[str, dict[str, Any]] = {}
        self._asked: dict[tuple[str, str], int] = {}  # (role, prompt digest) -> times asked
        self.by_prompt: dict[str, int] = {}
        self.completed_by_prompt: dict[str, int] = {}
        self.by_request: dict[str, list[int]] = {}  # body digest -> [received, faulted, good]
        self._rule_hits: dict[int, int] = {}
        self._rule_prompt_hits: dict[tuple[int, str], int] = {}
        self._rng = random.Random(self.config.get("seed", 0))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/admin/stats", self.admin_stats)
        app.router.add_post("/admin/reset", self.admin_reset)
        app.router.add_post("/admin/config", self.admin_config)
        return app

    # -- admin -------------------------------------------------------------
    def stats(self, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "in_flight": self.in_flight,
                               "max_in_flight": self.max_in_flight, "completed": self.completed,
                               "faults": dict(self.faults), "first_request_at": self.first_request_at,
                               "last_completion_at": self.last_completion_at,
                               "in_flight_seconds": self.in_flight_seconds,
                               "served_seconds": self.served_seconds,
                               "by_role": copy.deepcopy(self.by_role)}
        if detail:
            out["by_prompt"] = dict(self.by_prompt)
            out["completed_by_prompt"] = dict(self.completed_by_prompt)
            out["by_request"] = {k: list(v) for k, v in self.by_request.items()}
        return out

    async def admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats(detail=request.query.get("detail") in ("1", "true")))

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self._reset_stats()
        return web.json_response({"ok": True})

    async def admin_config(self, request: web.Request) -> web.Response:
        update = await request.json()
        if not isinstance(update, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        self.config.update(update)
        self._rule_hits.clear()
        self._rule_prompt_hits.clear()
        self._rng = random.Random(self.config.get("seed", 0))
        return web.json_response(self.config)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.config["model"], "object": "model", "created": 0, "owned_by": "fake"}]})

    # -- chat --------------------------------------------------------------
    def _error(self, status: int, message: str, request: web.Request,
               headers: Optional[dict[str, str]] = None) -> web.Response:
        if self.config.get("echo_auth_in_errors"):
            message += f" (received Authorization: {request.headers.get('Authorization', '')})"
        body = {"object": "error", "error": {"message": message, "type": "fake_error", "code": status}}
        return web.json_response(body, status=status, headers=headers)

    def _match_rule(self, text: str, digest: str, model: Any = None) -> Optional[dict[str, Any]]:
        for i, rule in enumerate(self.config.get("rules") or []):
            marker = rule.get("marker")
            if marker and marker not in text:
                continue
            if rule.get("model") is not None and rule["model"] != model:
                continue
            if rule.get("first") is not None:
                n = self._rule_hits.get(i, 0)
                self._rule_hits[i] = n + 1
                if n >= int(rule["first"]):
                    continue
            elif rule.get("first_per_prompt") is not None:
                n = self._rule_prompt_hits.get((i, digest), 0)
                self._rule_prompt_hits[(i, digest)] = n + 1
                if n >= int(rule["first_per_prompt"]):
                    continue
            elif rule.get("fraction") is not None:
                if self._rng.random() >= float(rule["fraction"]):
                    continue
            return rule
        return None

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        self.requests += 1
        if self.first_request_at is None:
            self.first_request_at = time.time()
        self._count_in_flight(+1)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                body = await request.json()
            except Exception:
                return self._error(400, "request body is not JSON", request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._error(400, "messages must be a non-empty list", request)
            text = prompt_text(messages)
            digest = prompt_digest(messages)
            self.by_prompt[digest] = self.by_prompt.get(digest, 0) + 1
            request_key = request_digest(body)
            seen = self.by_request.setdefault(request_key, [0, 0, 0])  # received, faulted, good
            seen[0] += 1
            if cfg.get("api_key") and request.headers.get("Authorization") != f"Bearer {cfg['api_key']}":
                return self._error(401, "invalid API key", request)

            model = body.get("model")
            role = (cfg.get("roles") or {}).get(model) if isinstance(model, str) else None
            attempt = 0
            if role is not None:
                attempt = self._asked.get((model, digest), 0)
                self._asked[(model, digest)] = attempt + 1
                counts = self.by_role.setdefault(model, {"requests": 0, "completed": 0, "faults": {},
                                                         "completion_tokens": 0, "served_seconds": 0.0})
                counts["requests"] += 1
            rule = self._match_rule(text, digest, model)
            fault = str(rule["fault"]) if rule else None
            if fault is None and role is not None:
                fault = role_fault(role.get("faults") or {}, cfg.get("seed", 0), digest, attempt)
                rule = {"fault": fault, "retry_after": role.get("retry_after")} if fault else None
            if fault:
                self.faults[fault] = self.faults.get(fault, 0) + 1
                if fault not in ("delay", "reply"):  # those answer usably
                    seen[1] += 1
                if role is not None:
                    counts["faults"][fault] = counts["faults"].get(fault, 0) + 1

            latency = float((role or cfg).get("latency_s") or 0.0)
            sigma = float((role or cfg).get("latency_sigma") or 0.0)
            if sigma and latency > 0:
                # heavy-tailed, as long generations are: lognormal with mean latency_s (a role's
                # drawn from the request, the server's from its seeded sequence)
                draw = _rng("latency", cfg.get("seed", 0), digest, attempt) if role is not None else self._rng
                latency = draw.lognormvariate(math.log(latency) - sigma * sigma / 2, sigma)
            if cfg.get("latency_jitter_s"):
                latency += _rng("jitter", text, body.get("seed")).random() * float(cfg["latency_jitter_s"])
            if fault == "429" and role is not None:
                latency = 0.0  # a rate limit answers at once
            if fault == "delay":
                latency += float(rule.get("latency_s", 1.0))
            if fault == "hang":
                latency = float(rule.get("hang_s", cfg.get("hang_s", 3600.0)))
            if latency > 0:
                await self._serve(latency, model if role is not None else None)

            if fault and fault.isdigit():
                status = int(fault)
                headers = {}
                if rule.get("retry_after") is not None:
                    ra = float(rule["retry_after"])
                    if rule.get("retry_after_format") == "http-date":
                        headers["Retry-After"] = email.utils.formatdate(time.time() + ra, usegmt=True)
                    else:
                        headers["Retry-After"] = f"{ra:g}"
                return self._error(status, str(rule.get("message") or f"injected fault {status}"), request,
                                   headers)
            if fault == "malformed":
                return web.Response(status=200, content_type="application/json",
                                    text='{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": {"ro')
            if fault == "drop":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError()

            response = self._completion(body, messages, text, fault, rule or {}, role)
            if role is not None:
                counts["completed"] += 1
                counts["completion_tokens"] += response["usage"]["completion_tokens"]
            self.completed += 1
            self.last_completion_at = time.time()
            self.completed_by_prompt[digest] = self.completed_by_prompt.get(digest, 0) + 1
            if fault in (None, "delay", "reply"):
                seen[2] += 1
            return web.json_response(response)
        finally:
            self._count_in_flight(-1)

    async def _serve(self, latency: float, role: Optional[str] = None) -> None:
        """Generate for ``latency`` seconds in one of ``capacity`` slots (the role's own, else the
        server's): beyond it requests wait their turn (a server's waiting queue), so
        ``capacity / latency_s`` is its throughput. The time served is the endpoint's busy time
        (a request cancelled while it generates counts what it held)."""
        settings = (self.config.get("roles") or {}).get(role) or {} if role else {}
        capacity = int(settings.get("capacity") or self.config.get("capacity") or 0)
        started = None
        try:
            if capacity <= 0:
                started = time.monotonic()
                await asyncio.sleep(latency)
            else:
                slots = self._slots.get(role)
                if slots is None or slots[0] != capacity:
                    slots = self._slots[role] = (capacity, asyncio.Semaphore(capacity))
                async with slots[1]:
                    started = time.monotonic()
                    await asyncio.sleep(latency)
        finally:
            if started is not None:
                served = min(latency, time.monotonic() - started)
                self.served_seconds += served
                if role is not None and role in self.by_role:
                    self.by_role[role]["served_seconds"] += served

    def _count_in_flight(self, change: int) -> None:
        """Integrate requests in flight over time: ``in_flight_seconds`` / the busy window is
        how many requests the server held on average (what a client kept it busy at)."""
        now = time.monotonic()
        if self._in_flight_since is not None:
            self.in_flight_seconds += self.in_flight * (now - self._in_flight_since)
        self._in_flight_since = now
        self.in_flight += change

    def _completion(self, body: dict[str, Any], messages: list, text: str, fault: Optional[str],
                    rule: dict[str, Any], role: Optional[dict[str, Any]] = None) -> dict:
        cfg = self.config
        n = int(body.get("n") or 1)
        seed = body.get("seed")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        choices = []
        completion_tokens = 0
        scripted = self.responder(body) if self.responder is not None and fault is None else None
        for i in range(n):
            reasoning = ""
            if scripted:
                content = scripted[i % len(scripted)]
            elif fault == "reply":
                contents = rule_reply_contents(rule)
                content = contents[i % len(contents)]
                reasoning = str(rule.get("reasoning") or "")
            elif role is not None and role_reply(body.get("model"), text, seed, i) is not None:
                content = role_reply(body.get("model"), text, seed, i)
            elif _STEP_RE.search(text):
                reasoning, content = reasoning_reply(text, seed, i, cfg.get("answer"))
                if role is not None and role.get("words_median"):
                    words = reply_words(role, cfg.get("seed", 0), text, seed, i)
                    reasoning = stretch_reasoning(reasoning, words)
            elif _CAPTION_RE.search(text):
                content = caption_reply(text, seed, i)
            else:
                content = echo_reply(messages)
            finish = str(rule.get("finish_reason") or "stop") if fault == "reply" else "stop"
            if fault == "empty":
                content, reasoning = "", ""
            elif fault == "length":
                words = (reasoning or content).split()
                reasoning, content = (" ".join(words[: len(words) // 2]), "") if reasoning else \
                    ("", " ".join(words[: len(words) // 2]))
                finish = "length"
            elif cfg.get("enforce_max_tokens") and max_tokens:
                words = (reasoning + " " + content).split()
                if len(words) > int(max_tokens):
                    reasoning, content, finish = " ".join(words[: int(max_tokens)]), "", "length"
            completion_tokens += len((reasoning + " " + content).split())
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning:
                mode = cfg.get("reasoning", "separate")
                if mode == "separate":
                    message[cfg.get("reasoning_field") or "reasoning_content"] = reasoning
                elif mode == "inline":
                    message["content"] = f"<think>\n{reasoning}\n</think>\n\n{content}"
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
        prompt_tokens = len(text.split())
        rid = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]
        return {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": 1700000000,
                "model": body.get("model") or cfg["model"], "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


# ---------------------------------------------------------------------------
# running it


class _AdminMixin:
    root_url: str

    @property
    def url(self) -> str:
        """Base URL for the OpenAI client (``…/v1``)."""
        return self.root_url + "/v1"

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.root_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self, detail: bool = False) -> dict[str, Any]:
        return self._admin("GET", "/admin/stats" + ("?detail=1" if detail else ""))

    def reset(self) -> None:
        self._admin("POST", "/admin/reset", {})

    def configure(self, **config: Any) -> dict[str, Any]:
        return self._admin("POST", "/admin/config", config)


class FakeServerHandle(_AdminMixin):
    """A fake server running in a background thread of this process."""

    def __init__(self, config: Optional[dict[str, Any]] = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.server = FakeOpenAIServer(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(host, port), name="fake-openai-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError(f"fake server failed to start: {self._error!r}")

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, bound = self._loop.run_until_complete(_start(self.server, host, port))
            self.root_url = f"http://{host}:{bound}"
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


class FakeServerProcess(_AdminMixin):
    """A fake server running in a child process (``python -m mmfr_devkit.fake_server``)."""

    def __init__(self, config: Optional[dict[str, Any]] = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        cmd = [sys.executable, "-m", "mmfr_devkit.fake_server", "--host", host, "--port", str(port)]
        if config:
            cmd += ["--config", json.dumps(config)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("http"):
            self.proc.kill()
            raise RuntimeError(f"fake server process failed to start (got {line!r})")
        self.root_url = line[: -len("/v1")] if line.endswith("/v1") else line
        atexit.register(self.stop)  # never leave an orphan server behind a crashed benchmark

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def start_fake_server(config: Optional[dict[str, Any]] = None, *, host: str = "127.0.0.1", port: int = 0,
                      in_process: bool = True) -> "FakeServerHandle | FakeServerProcess":
    """Start a fake server on ``host`` (port 0 = any free port); returns a handle with
    ``.url`` (``…/v1``), ``.stats()``, ``.reset()``, ``.configure(**cfg)`` and ``.stop()``.
    ``in_process=False`` runs it in a child process (for benchmarks)."""
    cls = FakeServerHandle if in_process else FakeServerProcess
    return cls(config, host=host, port=port)


async def _start(server: FakeOpenAIServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=None, help="seconds added to every completion")
    parser.add_argument("--reasoning", choices=["separate", "inline", "none"], default=None)
    parser.add_argument("--config", default=None, help="JSON object merged into the config (or @file.json)")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {}
    if args.config:
        text = open(args.config[1:]).read() if args.config.startswith("@") else args.config
        config.update(json.loads(text))
    if args.latency is not None:
        config["latency_s"] = args.latency
    if args.reasoning is not None:
        config["reasoning"] = args.reasoning

    async def serve() -> None:
        runner, bound = await _start(FakeOpenAIServer(config), args.host, args.port)
        print(f"http://{args.host}:{bound}/v1", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
