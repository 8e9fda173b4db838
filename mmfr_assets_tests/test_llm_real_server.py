"""The LLM client against a real OpenAI-compatible server, not only our own fake.

llama.cpp's server (xllamacpp) serving SmolLM2-135M-Instruct (`mmfr_assets_tests/llamacpp.py`),
started once per test session by the `llamacpp_server` fixture. Everything goes through the
project's own layer (`LLMEndpoint` -> `LLMSession`), so these tests catch where our idea of an
OpenAI-compatible server (the fake) and a real one disagree: body fields (`n`, `seed`,
`max_tokens`), `finish_reason`, usage, error bodies. Generations are a few tokens long and the
prompts short: the model runs on CPU.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmfr_devkit.drive import complete, run_requests
from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets.llm.cache import ResponseCache
from mmfr_assets.llm.client import EndpointSettings, LLMSession
from mmfr_assets.llm.resource import LLMEndpoint, endpoint_class_for_role
from mmfr_assets.llm.types import ChatRequest, LLMEndpointError
from mmfr_assets_tests.dagster_process import dagster_env
from mmfr_assets_tests.llamacpp import IMAGE_UNSUPPORTED, MODEL_ALIAS, running_server, server_metrics

MMFR = str(Path(sys.executable).parent / "mmfr")

#: Client settings for a CPU-bound 135M model on a loaded 2-core machine: generous timeouts
#: (a request can queue behind others), tiny backoff so retry paths take no time. Replies are
#: a few tokens, so most are cut at max_tokens: accepted (retry_on_length off) except where
#: the length handling itself is tested.
SETTINGS = dict(model=MODEL_ALIAS, timeout_s=300.0, max_concurrency=4, max_retries=2,
                backoff_base_s=0.01, backoff_max_s=0.05, max_tokens=8, retry_on_length=False)


def settings(base_url: str, **overrides) -> EndpointSettings:
    return EndpointSettings(**{"base_url": base_url, **SETTINGS, **overrides})


def endpoint(role: str, base_url: str, **overrides):
    """The role's `LLMEndpoint` as `mmfr` builds it from MMFR_<ROLE>_* variables, plus overrides."""
    env = {f"MMFR_{role.upper()}_BASE_URL": base_url, f"MMFR_{role.upper()}_MODEL": MODEL_ALIAS}
    return endpoint_class_for_role(role, env)(**{**SETTINGS, **overrides})


def sample_questions(real_sample, count: int, chars: int = 100) -> list[tuple[str, str]]:
    """(id, question) of the first rows of one published subset, cut short for a CPU model."""
    table = pq.read_table(real_sample / "Euclid30K" / "train-00000-of-00001.parquet", columns=["id", "question"])
    rows = table.to_pylist()[:count]
    return [(str(r["id"]), r["question"].replace("<image>", "")[:chars]) for r in rows]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


# -- a text role end to end ----------------------------------------------------------------

def test_a_text_role_completes_rows_end_to_end(llamacpp_server, real_sample, tmp_path):
    """answer_llm configured the way `mmfr` configures it (MMFR_ANSWER_LLM_*), a session with a
    cache, and rows of the published sample mapped through it: every row comes back, with text."""
    rows = sample_questions(real_sample, 6)
    answer_llm = endpoint("answer_llm", llamacpp_server, max_tokens=12)
    assert answer_llm.enabled and answer_llm.temperature == 0.0  # the role's greedy default
    requests = ((row_id, answer_llm.request(f"Give the final answer only. {question}",
                                            system="You answer math questions."))
                for row_id, question in rows)
    with answer_llm.open_session(cache=tmp_path / "cache.sqlite") as session:
        results = dict(run_requests(session, requests))
    assert set(results) == {row_id for row_id, _ in rows}
    for row_id, result in results.items():
        assert result.ok, (row_id, result.error)
        assert result.content.strip() and result.finish_reason in ("stop", "length")
        assert not result.cached and result.attempts == 1 and MODEL_ALIAS in result.model
    usage = session.usage
    assert (usage.successes, usage.failures, usage.requests_sent) == (6, 0, 6)


# -- sampling parameters reach the server ----------------------------------------------------

def test_n_returns_several_choices_in_one_request(llamacpp_server):
    with LLMSession(settings(llamacpp_server, temperature=1.0, max_tokens=8)) as session:
        result = complete(session, ChatRequest.from_text("Name a colour.", n=3, seed=11))
    assert result.ok, result.error
    assert len(result.choices) == 3
    assert all(c.content.strip() and c.finish_reason in ("stop", "length") for c in result.choices)
    assert session.usage.requests_sent == 1


def test_same_seed_same_text_different_seeds_differ(llamacpp_server):
    """temperature 1.0: the seed alone decides the sample. No cache, one request per call
    (separate `complete` calls are never de-duplicated), so the server samples every time."""
    prompts = ["Name a colour.", "Say something about cats.", "Invent a word."]
    with LLMSession(settings(llamacpp_server, temperature=1.0, max_tokens=10)) as session:
        def text(prompt: str, seed: int) -> str:
            result = complete(session, ChatRequest.from_text(prompt, seed=seed))
            assert result.ok and not result.cached, result.error
            return result.content

        for prompt in prompts:
            assert text(prompt, 7) == text(prompt, 7), prompt
        differing = [p for p in prompts if text(p, 7) != text(p, 8)]
    assert differing, "seeds 7 and 8 gave the same text for every prompt: the seed is not sent or not used"
    assert session.usage.requests_sent == 3 * 2 + 3 * 2 and session.usage.cache_hits == 0


# -- max_tokens and finish_reason == "length" -----------------------------------------------

LONG_ANSWER = ChatRequest.from_text("Count from 1 to 100, separated by commas.", max_tokens=3, temperature=0.0)


def test_length_cut_is_retried_then_recorded_failed(llamacpp_server, tmp_path):
    with LLMSession(settings(llamacpp_server, retry_on_length=True, max_retries=2),
                    cache=tmp_path / "cache.sqlite") as session:
        result = complete(session, LONG_ANSWER)
    assert not result.ok and result.attempts == 3
    assert "finish_reason=length" in result.error
    assert result.finish_reason == "length"  # the last attempt's choices are kept for diagnosis
    assert (session.usage.requests_sent, session.usage.retries, session.usage.failures) == (3, 2, 1)


def test_length_cut_is_accepted_when_retry_on_length_is_off(llamacpp_server):
    with LLMSession(settings(llamacpp_server, retry_on_length=False)) as session:
        result = complete(session, LONG_ANSWER)
    assert result.ok and result.attempts == 1, result.error
    assert result.finish_reason == "length" and result.content.strip()
    assert result.completion_tokens == 3


# -- usage accounting -----------------------------------------------------------------------

def test_usage_is_reported_per_result_and_summed_in_the_session(llamacpp_server):
    before = server_metrics(llamacpp_server)["llamacpp:tokens_predicted_total"]
    prompts = [f"Write the number {i} in words." for i in range(4)]
    with LLMSession(settings(llamacpp_server, max_tokens=6, temperature=0.0)) as session:
        results = dict(run_requests(session, ((p, ChatRequest.from_text(p)) for p in prompts)))
    assert all(r.ok for r in results.values())
    assert all(r.prompt_tokens > 0 and 0 < r.completion_tokens <= 6 for r in results.values())
    usage = session.usage
    assert usage.prompt_tokens == sum(r.prompt_tokens for r in results.values())
    assert usage.completion_tokens == sum(r.completion_tokens for r in results.values())
    # The server's own count of generated tokens agrees with ours (n=1: one choice per request).
    after = server_metrics(llamacpp_server)["llamacpp:tokens_predicted_total"]
    assert after - before == usage.completion_tokens
    assert usage.latency_p50_s > 0


# -- the cache: a re-run pays nothing ------------------------------------------------------

def test_a_second_session_on_the_same_cache_sends_no_request(llamacpp_server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    pairs = [(i, ChatRequest.from_text(f"Say the word {w}.", seed=i))
             for i, w in enumerate(["apple", "river", "stone", "cloud"])]
    with LLMSession(settings(llamacpp_server, temperature=0.8), cache=cache) as first:
        first_results = dict(run_requests(first, pairs))
    assert first.usage.requests_sent == 4 and all(r.ok for r in first_results.values())

    work_before = server_metrics(llamacpp_server)
    with LLMSession(settings(llamacpp_server, temperature=0.8), cache=cache) as second:
        second_results = dict(run_requests(second, pairs))
    work_after = server_metrics(llamacpp_server)
    assert second.usage.requests_sent == 0 and second.usage.cache_hits == 4
    assert all(r.cached for r in second_results.values())
    assert {k: r.content for k, r in second_results.items()} == {k: r.content for k, r in first_results.items()}
    for counter in ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total", "llamacpp:n_decode_total"):
        assert work_after[counter] == work_before[counter], counter  # the server did nothing


# -- an image sent to a text-only model -----------------------------------------------------

def test_an_image_request_is_a_recorded_failure_with_the_servers_text(llamacpp_server):
    """A VLM role pointed at a text-only model: HTTP 500 "image input is not supported". The row
    comes back failed with the server's own text, at once (the role's default retries: an
    unsupported input is not transient); the text rows of the same map still succeed."""
    default_retries = LLMEndpoint.model_fields["max_retries"].default
    teacher = endpoint("caption_teacher", llamacpp_server, max_tokens=6, max_retries=default_retries)
    assert teacher.max_retries >= 5
    pairs = [("image", teacher.request("Describe the image.", image=png_bytes())),
             ("text", teacher.request("Say hello."))]
    with teacher.open_session() as session:
        results = dict(run_requests(session, iter(pairs)))
    assert set(results) == {"image", "text"}
    failed = results["image"]
    assert not failed.ok and IMAGE_UNSUPPORTED in failed.error and "HTTP 500" in failed.error
    assert failed.permanent and failed.attempts == 1
    assert results["text"].ok, results["text"].error
    assert session.usage.failures == 1 and session.usage.successes == 1 and session.usage.retries == 0


def test_an_endpoint_that_can_never_answer_stops_the_session_and_keeps_what_finished(llamacpp_server, tmp_path):
    """Three text rows answer, then every image is refused: after `fail_fast_after` refusals in
    a row the session raises with the server's message instead of sending the other images,
    and the three answers are in the cache: the re-run of those rows sends nothing."""
    cache = tmp_path / "cache.sqlite"
    teacher = endpoint("caption_teacher", llamacpp_server, max_tokens=4, max_concurrency=1, fail_fast_after=3)
    texts = [(f"text{i}", teacher.request(f"Say the number {i}.")) for i in range(3)]
    images = [(f"image{i}", teacher.request(f"Describe picture {i}.", image=png_bytes())) for i in range(12)]
    refused_before = running_server(llamacpp_server).log_count(IMAGE_UNSUPPORTED)
    got = {}
    with teacher.open_session(cache=cache) as session:
        with pytest.raises(LLMEndpointError, match=IMAGE_UNSUPPORTED) as stopped:
            for key, result in run_requests(session, texts + images):
                got[key] = result
    assert "stopped: 3 requests in a row" in str(stopped.value)
    assert all(got[key].ok for key, _ in texts)
    image_requests = session.usage.requests_sent - len(texts)
    window = 2 * teacher.max_concurrency  # in flight + buffered when the third refusal arrives
    assert 3 <= image_requests <= 3 + window < len(images), session.usage
    assert session.usage.retries == 0 and session.usage.failures == 3
    # The server saw the refused ones (those cancelled in flight at the stop may not have arrived).
    refused = running_server(llamacpp_server).log_count(IMAGE_UNSUPPORTED) - refused_before
    assert 3 <= refused <= image_requests

    with teacher.open_session(cache=cache) as again:
        answers = dict(run_requests(again, iter(texts)))
    assert again.usage.requests_sent == 0 and again.usage.cache_hits == len(texts)
    assert {k: r.content for k, r in answers.items()} == {k: got[k].content for k, _ in texts}


# -- known disagreement between llama.cpp and our accounting ---------------------------------

@pytest.mark.xfail(strict=True, reason=(
    "llama.cpp's `usage` for an n>1 request counts the tokens of one choice only (n=3 of 6 "
    "tokens each: usage says 6, its /metrics 18); the client takes usage as reported, so "
    "UsageStats and ChatResult.sample()'s per-sample share under-count n-sample requests n times "
    "on llama.cpp (vLLM reports the sum). Not fixed in the client: a fix would have to know "
    "which server it talks to."))
def test_usage_of_an_n_request_counts_every_choice(llamacpp_server):
    before = server_metrics(llamacpp_server)["llamacpp:tokens_predicted_total"]
    with LLMSession(settings(llamacpp_server, temperature=1.0, max_tokens=6)) as session:
        result = complete(session, ChatRequest.from_text("Name a fruit.", n=3, seed=3))
    generated = server_metrics(llamacpp_server)["llamacpp:tokens_predicted_total"] - before
    assert result.ok and len(result.choices) == 3
    assert session.usage.completion_tokens == generated


def test_server_counters_are_readable(llamacpp_server):
    """The helper the tests above lean on: counters exist and only grow."""
    first = server_metrics(llamacpp_server)
    assert {"llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"} <= set(first)
    second = server_metrics(llamacpp_server)
    assert all(second[k] >= v for k, v in first.items() if k.endswith("_total"))


# -- the teachers pointed at a text-only server: fail fast, loudly ---------------------------

SESSION_CLOSED = re.compile(r"\[llm (\w+)\] session closed: (\d+) ok, (\d+) failed, \d+ cache hits, "
                            r"(\d+) retries, (\d+) HTTP requests")


@pytest.mark.e2e
def test_teachers_on_a_text_only_server_stop_sending_and_mmfr_run_fails(llamacpp_server, sample_source, tmp_path):
    """Issue 8's misconfiguration, as a user makes it: both teachers (VLM roles) pointed at
    llama.cpp serving a text-only model, `regenerate` on so every cleaned row of ~20 needs them.
    Each teacher step stops after `fail_fast_after` identical refusals (no retries), fails with
    the server's message, writes no table; nothing downstream runs and `mmfr run` exits 1."""
    home, lake, cache = tmp_path / "home", tmp_path / "lake", tmp_path / "cache.sqlite"
    roles = {"CAPTION_TEACHER": "caption_teacher", "COT_TEACHER": "cot_teacher"}
    concurrency = 2
    extra = {"MMFR_LLM_CACHE": str(cache)}
    for role in roles:
        extra |= {f"MMFR_{role}_BASE_URL": llamacpp_server, f"MMFR_{role}_MODEL": MODEL_ALIAS,
                  f"MMFR_{role}_MAX_CONCURRENCY": str(concurrency)}
    env = dagster_env(home, sample_source, lake, **extra)
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n"
                      "  teacher_captions: {config: {regenerate: true}}\n"
                      "  teacher_responses: {config: {regenerate: true}}\n")
    server = running_server(llamacpp_server)
    refused_before = server.log_count(IMAGE_UNSUPPORTED)

    done = subprocess.run([MMFR, "run", "--subsets", "BMMR", "--max-samples", "20", "--config", str(config)],
                          env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 1, done.stderr[-3000:]
    assert "mmfr: failed subsets: BMMR" in done.stderr
    assert IMAGE_UNSUPPORTED in done.stderr  # the user sees the server's reason, not only "FAILED"
    rows = count_rows(DeltaLocation(str(lake / "cleaned")), {"subset": "BMMR"})
    assert rows >= 15  # the bundled sample's first 20 rows, less the planted bad ones
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.is_failure
        events = instance.all_logs(record.dagster_run.run_id)
    failures = {e.step_key: e.dagster_event.step_failure_data.error.to_string()
                for e in events if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_FAILURE"}
    assert set(failures) == {"teacher_captions", "teacher_responses"}, list(failures)
    for step, error in failures.items():
        assert "LLMEndpointError" in error and "stopped:" in error and IMAGE_UNSUPPORTED in error, (step, error)
    sessions = {m.group(1): tuple(map(int, m.groups()[1:]))
                for e in events if (m := SESSION_CLOSED.search(e.user_message or ""))}
    assert set(sessions) == set(roles.values())
    limit = LLMEndpoint.model_fields["fail_fast_after"].default
    for role, (ok, failed, retries, sent) in sessions.items():
        # stopped after `limit` refusals; what was already in flight or buffered still went out
        assert ok == 0 and retries == 0 and failed == sent, (role, sessions[role])
        assert limit <= sent <= limit + 2 * concurrency < rows, (role, sent, rows)
    refused = server.log_count(IMAGE_UNSUPPORTED) - refused_before
    assert 2 * limit <= refused <= sum(s[-1] for s in sessions.values())
    # a failed step commits nothing, and nothing is built on it
    for table in ("teacher_captions", "teacher_responses", "distilled", "quality_filtered"):
        assert not (lake / table).exists(), table
    # refusals are not cached: once the endpoint is fixed, the rows are asked again
    with ResponseCache(cache) as responses:
        assert len(responses) == 0
