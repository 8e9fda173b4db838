"""Durable cache: keys, hits across sessions, concurrent writers, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mmfr_devkit.drive import complete, run_requests
from mmfr_assets.llm.cache import ResponseCache, cache_key, redacted
from mmfr_assets.llm.client import EndpointSettings, LLMSession
from mmfr_assets.llm.wire import build_body
from mmfr_devkit.fake_server import prompt_digest
from mmfr_assets.llm.images import user_message
from mmfr_assets.llm.types import ChatRequest
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server, llm_settings  # noqa: F401
from mmfr_assets_tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def shared_cache(request, tmp_path) -> str:
    """Where a cache shared by several processes lives: a SQLite file (one host), or a
    PostgreSQL database (every host; skipped where no server is configured, required in CI)."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.sqlite")
    return request.getfixturevalue("postgres_database")["_url"]


def _png(color=(255, 0, 0)) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


# -- keys ---------------------------------------------------------------------

def test_cache_key_covers_what_determines_the_answer(llm_settings):
    s = llm_settings(temperature=0.6, max_tokens=100)
    req = ChatRequest(messages=[user_message("q?", _png())])
    base = cache_key(build_body(s, req))
    # not base_url, not api key
    assert cache_key(build_body(llm_settings(temperature=0.6, max_tokens=100, base_url="http://other:1/v1",
                                             api_key="sk-x"), req)) == base
    # but model, sampling, seed, n, extra_body, messages and image bytes
    for other in (llm_settings(temperature=0.6, max_tokens=100, model="m2"),
                  llm_settings(temperature=0.7, max_tokens=100),
                  llm_settings(temperature=0.6, max_tokens=101),
                  llm_settings(temperature=0.6, max_tokens=100, seed=1),
                  llm_settings(temperature=0.6, max_tokens=100, n=2),
                  llm_settings(temperature=0.6, max_tokens=100, extra_body={"top_k": 20})):
        assert cache_key(build_body(other, req)) != base
    assert cache_key(build_body(s, ChatRequest(messages=[user_message("q?", _png((0, 0, 255)))]))) != base
    assert cache_key(build_body(s, ChatRequest(messages=[user_message("q!", _png())]))) != base


def test_canonical_form_replaces_image_data_with_digest(llm_settings):
    from mmfr_assets.llm.cache import canonical_request
    body = build_body(llm_settings(), ChatRequest(messages=[user_message("q?", _png())]))
    canon = json.dumps(canonical_request(body))
    assert "base64" not in canon and "sha256:" in canon
    assert "base64" in json.dumps(body)  # the body itself is untouched


def test_cache_roundtrip_and_len(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as c:
        c.put("k1", {"choices": [{"content": "x"}]})
        assert c.get("k1") == {"choices": [{"content": "x"}]}   # visible before commit
        assert c.flush(5)
        assert len(c) == 1 and c.get("missing") is None
    with ResponseCache(tmp_path / "c.sqlite") as c:
        assert c.get("k1")["choices"][0]["content"] == "x"
        mode = c._reader().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() == "wal"


# -- sessions -------------------------------------------------------------------

def test_get_many_sees_pending_and_stored_entries_past_one_query(tmp_path):
    with ResponseCache(tmp_path / "many.sqlite") as cache:
        for i in range(1200):  # more than one 500-key query
            cache.put(f"k{i}", {"choices": [{"content": str(i)}]})
        assert cache.flush(10)
        cache.put("pending", {"choices": [{"content": "not committed yet"}]})
        keys = [f"k{i}" for i in range(0, 1200, 2)] + ["pending", "missing"]
        found = cache.get_many(keys)
    assert set(found) == set(keys) - {"missing"}
    assert found["k1198"]["choices"][0]["content"] == "1198"


def test_entries_written_as_zlib_by_earlier_versions_still_read(tmp_path):
    import sqlite3
    import zlib

    path = tmp_path / "old.sqlite"
    payload = {"choices": [{"content": "ok " * 500, "reasoning": "", "finish_reason": "stop"}]}
    with ResponseCache(path) as cache:
        cache.put("new", payload)
    with sqlite3.connect(path) as conn:  # what the zlib-era cache wrote
        conn.execute("INSERT INTO responses VALUES (?, ?, ?, ?)",
                     ("old", "m", 0.0, zlib.compress(json.dumps(payload).encode(), 6)))
        new_blob = conn.execute("SELECT payload FROM responses WHERE key = 'new'").fetchone()[0]
    assert len(new_blob) < 200  # compressed, not stored as is
    with ResponseCache(path) as cache:
        assert cache.get("old") == payload and cache.get("new") == payload


def test_second_run_is_served_from_cache(fake_llm, llm_settings, tmp_path):
    pairs = [(i, ChatRequest.from_text(f"Solve step by step: cache {i}")) for i in range(12)]
    with LLMSession(llm_settings(), cache=tmp_path / "c.sqlite") as s:
        first = dict(run_requests(s, pairs))
    assert fake_llm.stats()["requests"] == 12
    with LLMSession(llm_settings(), cache=tmp_path / "c.sqlite") as s:
        second = dict(run_requests(s, pairs))
    assert fake_llm.stats()["requests"] == 12
    assert all(r.cached for r in second.values())
    assert {k: (r.content, r.reasoning) for k, r in first.items()} == \
           {k: (r.content, r.reasoning) for k, r in second.items()}
    meta = s.usage.to_metadata()
    assert meta["llm_cache_hits"] == 12 and meta["llm_requests_sent"] == 0 and meta["llm_cache_hit_rate"] == 1.0


def test_failures_are_not_cached(fake_llm, llm_settings, tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    fake_llm.configure(rules=[{"fault": "500"}])
    with LLMSession(llm_settings(max_retries=1), cache=cache) as s:
        assert not complete(s, ChatRequest.from_text("flaky")).ok
    fake_llm.configure(rules=[])
    with LLMSession(llm_settings(), cache=cache) as s:
        r = complete(s, ChatRequest.from_text("flaky"))
    assert r.ok and not r.cached
    assert fake_llm.stats()["requests"] == 3
    cache.close()


def test_cached_length_answer_is_re_asked_under_stricter_policy(fake_llm, llm_settings, tmp_path):
    fake_llm.configure(rules=[{"fault": "length", "first": 1}])
    req = ChatRequest.from_text("Solve step by step: long one")
    with LLMSession(llm_settings(retry_on_length=False), cache=tmp_path / "c.sqlite") as s:
        r1 = complete(s, req)
    assert r1.ok and r1.finish_reason == "length"
    with LLMSession(llm_settings(retry_on_length=True), cache=tmp_path / "c.sqlite") as s:
        r2 = complete(s, req)
    assert r2.ok and not r2.cached and r2.finish_reason == "stop"


_WRITER = textwrap.dedent("""
    import sys
    from mmfr_assets.llm.cache import ResponseCache
    tag = sys.argv[2]
    with ResponseCache(sys.argv[1], busy_timeout_s=30) as c:
        for i in range(300):
            c.put(f"{tag}-{i}", {"choices": [{"content": f"{tag} {i}"}]})
            if i % 50 == 0:
                c.get(f"{tag}-{i // 2}")
""")


@pytest.mark.process
def test_several_processes_can_write_concurrently(shared_cache):
    path = shared_cache
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"p{j}"], cwd=REPO) for j in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with ResponseCache(path) as c:
        assert len(c) == 1200
        assert c.get("p3-299")["choices"][0]["content"] == "p3 299"


# -- resume after SIGKILL ----------------------------------------------------------

_KILLED_CLIENT = textwrap.dedent("""
    import sys
    from mmfr_assets.llm.client import EndpointSettings, LLMSession
    from mmfr_assets.llm.types import ChatRequest
    from mmfr_devkit.drive import run_requests
    url, cache, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = EndpointSettings(base_url=url, model="fake-model", max_concurrency=4, timeout_s=10, max_retries=1)
    with LLMSession(s, cache=cache) as session:
        pairs = ((i, ChatRequest.from_text(f"{tag} item {i}")) for i in range(n))
        for key, res in run_requests(session, pairs):
            print("DONE", key, res.ok, flush=True)
""")


def test_resume_after_sigkill_rerequests_nothing_that_finished(fake_llm, llm_settings, shared_cache):
    # Constant latency makes the 4 slots complete in waves 0.3 s apart, so the kill
    # (0.1 s after a wave) lands while exactly one wave is in flight on the server.
    n, c = 24, 4
    tag = f"kill-{time.time_ns()}"
    cache_path = shared_cache
    fake_llm.configure(latency_s=0.3)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CLIENT, fake_llm.url, str(cache_path), str(n), tag],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    done: list[int] = []
    deadline = time.monotonic() + 30
    while len(done) < 8 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("DONE"):
            done.append(int(line.split()[1]))
    assert len(done) >= 8, "client subprocess did not make progress"
    # Killed once the finished responses are in the cache (committed within milliseconds):
    # the keys the child's session gives them, read from the cache as another process would.
    child = EndpointSettings(base_url=fake_llm.url, model="fake-model", max_concurrency=4, timeout_s=10, max_retries=1)
    keys = [cache_key(build_body(child, ChatRequest.from_text(f"{tag} item {i}"))) for i in done]
    with ResponseCache(cache_path) as cache:
        wait_until(lambda: len(cache.get_many(keys)) == len(keys), "the finished responses to reach the cache")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with LLMSession(llm_settings(max_concurrency=c), cache=cache_path) as s:
        rerun = dict(run_requests(s, ((i, ChatRequest.from_text(f"{tag} item {i}")) for i in range(n))))
    assert len(rerun) == n and all(r.ok for r in rerun.values())

    by_prompt = fake_llm.stats(detail=True)["by_prompt"]
    counts = {i: by_prompt.get(prompt_digest(ChatRequest.from_text(f"{tag} item {i}").messages), 0)
              for i in range(n)}
    assert all(counts[i] == 1 for i in done), {i: counts[i] for i in done if counts[i] != 1}
    assert all(rerun[i].cached for i in done)
    total = sum(counts.values())
    assert total <= n + c, (total, counts)          # only the in-flight ones were paid twice
    assert s.usage.cache_hits >= len(done)


def test_default_cache_path(monkeypatch):
    from mmfr_assets.llm.cache import default_cache_path
    # in the checkout's data/ folder (beside the lake), not under the current directory
    assert default_cache_path({}) == str(Path(__file__).resolve().parent.parent / "data" / "llm_cache.sqlite")
    monkeypatch.setenv("MMFR_LLM_CACHE", "/tmp/elsewhere.sqlite")
    assert default_cache_path() == "/tmp/elsewhere.sqlite"


def test_a_postgres_cache_is_shared_and_keeps_its_password_out_of_sight(postgres_database):
    url = postgres_database["_url"]
    secret = urlsplit(url).password
    with ResponseCache(url) as one, ResponseCache(url) as other:
        one.put("k", {"choices": [{"content": "first"}]})
        other.put("k", {"choices": [{"content": "second"}]})  # a concurrent writer of the same key
        assert one.flush(10) and other.flush(10)
        # the first answer committed is the one everybody reads, from either instance
        assert one.get("k") == other.get("k") and len(one) == 1
        for shown in (repr(one), str(one.path)):
            assert secret is None or secret not in shown


def test_redacted_hides_url_passwords():
    assert redacted("postgresql://mmfr:s3cret@db:5432/cache") == "postgresql://mmfr:***@db:5432/cache"
    assert redacted("/data/llm_cache.sqlite") == "/data/llm_cache.sqlite"
