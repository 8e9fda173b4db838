"""Client behaviour against the fake server: retries, faults, timeouts, concurrency."""

from __future__ import annotations

import time

import pytest

from mmfr_devkit.drive import run_requests
from mmfr_assets.llm.client import LLMSession
from mmfr_assets.llm.endpoint import normalize_base_url
from mmfr_assets.llm.retries import backoff_delay, parse_retry_after
from mmfr_assets.llm.wire import build_body, parse_completion
from mmfr_devkit.fake_server import prompt_digest
from mmfr_assets.llm.types import ChatRequest, LLMStallError
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server, free_port, llm_settings  # noqa: F401


def _req(text: str, **kw) -> ChatRequest:
    return ChatRequest.from_text(text, **kw)


def _run(settings, pairs, **session_kw):
    with LLMSession(settings, **session_kw) as s:
        out = dict(run_requests(s, pairs))
    return out, s.usage


# -- happy path & reply shapes ----------------------------------------------

def test_step_by_step_reply_has_separate_reasoning_and_answer(fake_llm, llm_settings):
    out, usage = _run(llm_settings(), [("a", _req("Solve step by step: 2+2? (A) 3 (B) 4"))])
    r = out["a"]
    assert r.ok and not r.cached and r.attempts == 1
    assert "<answer>" in r.content and "</think>" not in r.content
    assert len(set(r.reasoning.split())) >= 250
    assert r.think_text().startswith("<think>\n") and "</think>\n\n" in r.think_text()
    assert usage.successes == 1 and usage.completion_tokens > 250 and usage.prompt_tokens > 0


@pytest.mark.parametrize("mode,field", [("inline", "reasoning_content"), ("separate", "reasoning")])
def test_reasoning_from_inline_think_or_reasoning_field(fake_llm, llm_settings, mode, field):
    fake_llm.configure(reasoning=mode, reasoning_field=field)
    out, _ = _run(llm_settings(), [(1, _req("Explain step by step why 3 > 2."))])
    assert out[1].ok and len(out[1].reasoning.split()) > 250
    assert out[1].content.startswith("Working through") and "<think>" not in out[1].content


def test_n_choices_and_per_request_overrides(fake_llm, llm_settings):
    settings = llm_settings(temperature=0.7, max_tokens=4096, extra_body={"top_k": 20})
    req = _req("Solve step by step: 5*5?", n=3, seed=7, extra_body={"min_p": 0.1})
    body = build_body(settings, req)
    assert body["n"] == 3 and body["seed"] == 7 and body["temperature"] == 0.7
    assert body["top_k"] == 20 and body["min_p"] == 0.1
    out, _ = _run(settings, [(0, req)])
    assert len(out[0].choices) == 3 and len({c.reasoning for c in out[0].choices}) == 3


def test_caption_and_echo_replies(fake_llm, llm_settings):
    out, _ = _run(llm_settings(), [("cap", _req("Write a detailed caption for this figure.")),
                                   ("echo", _req("hello there"))])
    assert len(out["cap"].content.split()) >= 120 and out["cap"].reasoning == ""
    assert out["echo"].content == "Echo: hello there"


# -- faults that must be retried -------------------------------------------------

@pytest.mark.parametrize("fault", ["500", "503", "malformed", "empty", "length", "drop", "408"])
def test_transient_faults_are_retried_then_succeed(fake_llm, llm_settings, fault):
    fake_llm.configure(rules=[{"fault": fault, "first_per_prompt": 2}])
    out, usage = _run(llm_settings(), [(i, _req(f"Solve step by step: item {i}")) for i in range(3)])
    assert all(r.ok for r in out.values()), {k: r.error for k, r in out.items()}
    assert all(r.attempts == 3 for r in out.values())
    assert usage.retries == 6 and usage.requests_sent == 9 and usage.failures == 0
    assert fake_llm.stats()["requests"] == 9


def test_429_waits_at_least_retry_after(fake_llm, llm_settings):
    fake_llm.configure(rules=[{"fault": "429", "first_per_prompt": 1, "retry_after": 1}])
    t0 = time.monotonic()
    out, usage = _run(llm_settings(), [(0, _req("rate limited please"))])
    elapsed = time.monotonic() - t0
    assert out[0].ok and out[0].attempts == 2
    assert elapsed >= 1.0, elapsed
    assert usage.retries == 1


def test_gives_up_after_max_retries_and_records_the_row(fake_llm, llm_settings):
    fake_llm.configure(rules=[{"fault": "500", "marker": "POISON"}])
    pairs = [(i, _req(f"row {i}" + (" POISON" if i == 3 else ""))) for i in range(8)]
    out, usage = _run(llm_settings(max_retries=2), pairs)
    bad = out.pop(3)
    assert not bad.ok and "HTTP 500" in bad.error and "after 3 attempts" in bad.error
    assert bad.attempts == 3
    assert all(r.ok for r in out.values())
    assert usage.failures == 1 and usage.successes == 7 and usage.retries == 2
    assert fake_llm.stats(detail=True)["by_prompt"][prompt_digest(pairs[3][1].messages)] == 3


def test_non_retryable_4xx_fails_at_once(fake_llm, llm_settings):
    fake_llm.configure(rules=[{"fault": "400"}])
    out, usage = _run(llm_settings(), [(0, _req("bad request"))])
    assert not out[0].ok and out[0].attempts == 1 and "HTTP 400" in out[0].error
    assert "not retryable" in out[0].error and usage.retries == 0


def test_timeout_does_not_hang(fake_llm, llm_settings):
    fake_llm.configure(rules=[{"fault": "hang", "marker": "SLOW", "hang_s": 30}])
    t0 = time.monotonic()
    out, _ = _run(llm_settings(timeout_s=0.5, max_retries=1),
                  [(0, _req("SLOW one")), (1, _req("fast one"))])
    assert time.monotonic() - t0 < 4
    assert not out[0].ok and "timeout" in out[0].error and out[0].attempts == 2
    assert out[1].ok


def test_refused_connection_fails_cleanly(fake_llm, llm_settings):
    settings = llm_settings(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    t0 = time.monotonic()
    out, usage = _run(settings, [(0, _req("anyone there?"))])
    assert time.monotonic() - t0 < 4
    assert not out[0].ok and "connection error" in out[0].error and out[0].attempts == 3
    assert usage.failures == 1


def test_watchdog_raises_instead_of_hanging(fake_llm, llm_settings):
    fake_llm.configure(rules=[{"fault": "hang", "hang_s": 30}])
    t0 = time.monotonic()
    with pytest.raises(LLMStallError):
        with LLMSession(llm_settings(timeout_s=20), watchdog_s=1.0) as s:
            list(run_requests(s, [(0, _req("stuck"))]))
    assert time.monotonic() - t0 < 8


# -- throughput shape --------------------------------------------------------

def test_concurrency_bound_respected_and_reached(fake_llm, llm_settings):
    fake_llm.configure(latency_s=0.2)
    c, n = 8, 48
    t0 = time.monotonic()
    out, _ = _run(llm_settings(max_concurrency=c), [(i, _req(f"conc {i}")) for i in range(n)])
    elapsed = time.monotonic() - t0
    stats = fake_llm.stats()
    assert len(out) == n and all(r.ok for r in out.values())
    assert stats["max_in_flight"] == c, stats
    assert elapsed < (n / c) * 0.2 * 1.8 + 0.5, elapsed  # ~1.2 s if the window stays full


def test_sliding_window_no_batch_barrier(fake_llm, llm_settings):
    """A slow request holds one slot; the others keep flowing and come back first."""
    fake_llm.configure(latency_s=0.05, rules=[{"fault": "delay", "marker": "SLOW", "latency_s": 1.5}])
    pairs = [("slow", _req("SLOW request"))] + [(i, _req(f"quick {i}")) for i in range(40)]
    t0 = time.monotonic()
    with LLMSession(llm_settings(max_concurrency=4)) as s:
        order = [k for k, _ in run_requests(s, pairs)]
    elapsed = time.monotonic() - t0
    assert order[-1] == "slow"
    assert elapsed < 2.2, elapsed  # batch-by-batch would need >= 1.5 + 10 * 0.05 ... plus barriers


def test_input_is_consumed_lazily_with_bounded_buffer(fake_llm, llm_settings):
    fake_llm.configure(latency_s=0.02)
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i, _req(f"lazy {i}")

    c = 4
    with LLMSession(llm_settings(max_concurrency=c)) as s:
        got = 0
        for _ in run_requests(s, source()):
            got += 1
            assert pulled - got <= 2 * c + 1, (pulled, got)
    assert got == 200


def test_identical_requests_are_sent_once(fake_llm, llm_settings):
    fake_llm.configure(latency_s=0.1)
    out, usage = _run(llm_settings(), [(i, _req("same prompt")) for i in range(5)])
    assert fake_llm.stats()["requests"] == 1
    assert len(out) == 5 and all(r.ok for r in out.values())
    assert sum(r.cached for r in out.values()) == 4 and usage.cache_hits == 4


def test_breaking_out_cancels_in_flight(fake_llm, llm_settings):
    fake_llm.configure(latency_s=0.3)
    t0 = time.monotonic()
    with LLMSession(llm_settings(max_concurrency=4)) as s:
        for _ in run_requests(s, ((i, _req(f"brk {i}")) for i in range(100))):
            break
    assert time.monotonic() - t0 < 3
    assert fake_llm.stats()["requests"] <= 12


# -- pure helpers -------------------------------------------------------------

def test_parse_retry_after_seconds_ms_and_http_date():
    import email.utils
    now = time.time()
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    date = email.utils.formatdate(now + 10, usegmt=True)
    assert 8.5 <= parse_retry_after({"retry-after": date}, now=now) <= 10.0
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_and_is_capped():
    import random
    rng = random.Random(0)
    d = [backoff_delay(a, 1.0, 8.0, rng) for a in range(1, 8)]
    assert 0.5 <= d[0] <= 1.0 and 4.0 <= d[3] <= 8.0 and all(x <= 8.0 for x in d)


def test_parse_completion_variants():
    body = '{"choices":[{"index":0,"message":{"content":"<think>hmm</think>\\n\\nok"},"finish_reason":"stop"}]}'
    choices, *_ = parse_completion(body)
    assert choices[0].reasoning == "hmm" and choices[0].content == "ok"
    with pytest.raises(ValueError):
        parse_completion('{"choices": []}')
    with pytest.raises(ValueError):
        parse_completion("{not json")


def test_normalize_base_url():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://proxy/openai/v1") == "https://proxy/openai/v1"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_both_transports_handle_faults(fake_llm, llm_settings, transport):
    fake_llm.configure(rules=[{"fault": "drop", "marker": "DROP", "first_per_prompt": 1},
                              {"fault": "malformed", "marker": "BROKEN", "first_per_prompt": 1},
                              {"fault": "hang", "marker": "HANG", "hang_s": 30}])
    pairs = [("drop", _req("DROP")), ("broken", _req("BROKEN")), ("hang", _req("HANG")), ("ok", _req("ok"))]
    out, _ = _run(llm_settings(transport=transport, timeout_s=0.5, max_retries=1), pairs)
    assert out["drop"].ok and out["broken"].ok and out["ok"].ok
    assert not out["hang"].ok and out["hang"].error.startswith("timeout after 0.5s")
    refused, _ = _run(llm_settings(transport=transport, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0),
                      [(0, _req("x"))])
    assert refused[0].error.startswith("connection error: "), refused[0].error


def test_keyboard_interrupt_in_consumer_shuts_down_cleanly(fake_llm, llm_settings):
    fake_llm.configure(latency_s=0.4)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with LLMSession(llm_settings(max_concurrency=4)) as s:
            for _ in run_requests(s, ((i, _req(f"kbi {i}")) for i in range(50))):
                raise KeyboardInterrupt
    assert time.monotonic() - t0 < 3
    assert not s._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(run_requests(s, [(0, _req("late"))])))


def test_submit_many_sends_each_distinct_request_once_and_returns_cache_hits(fake_llm, llm_settings, tmp_path):
    tag = f"many-{time.time_ns()}"
    pairs = [(i, _req(f"{tag} {i % 3}")) for i in range(6)]  # three distinct requests, twice each
    with LLMSession(llm_settings(), cache=tmp_path / "c.sqlite") as s:
        window = s.window_of_requests()
        assert window.submit_many(pairs) == [] and window.outstanding == 6
        results = {}
        while window.outstanding:
            results.update(window.completed(block=True))
        again = dict(s.window_of_requests().submit_many(pairs))
    assert sorted(results) == sorted(again) == list(range(6))
    assert all(r.ok for r in results.values()) and all(r.cached for r in again.values())
    assert results[0].content == results[3].content == again[3].content
    by_prompt = fake_llm.stats(detail=True)["by_prompt"]
    assert sorted(by_prompt[prompt_digest(_req(f"{tag} {k}").messages)] for k in range(3)) == [1, 1, 1]
    assert s.usage.cache_misses == 3 and s.usage.cache_hits == 3 + 6
