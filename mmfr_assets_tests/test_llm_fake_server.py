"""The fake OpenAI-compatible server: real openai client, subprocess mode, canned replies."""

from __future__ import annotations

import re

import openai
import pytest

from mmfr_devkit.fake_server import caption_reply, reasoning_reply, start_fake_server
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401


def test_real_openai_client_models_and_chat(fake_llm):
    client = openai.OpenAI(base_url=fake_llm.url, api_key="EMPTY", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["fake-model"]
    resp = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "ping"}])
    assert resp.choices[0].message.content == "Echo: ping" and resp.usage.prompt_tokens == 1
    client.close()


def test_canned_reasoning_is_long_varied_and_deterministic():
    r1, c1 = reasoning_reply("Solve step by step: (A) 1 (B) 2 (C) 3", 0, 0, None)
    assert (r1, c1) == reasoning_reply("Solve step by step: (A) 1 (B) 2 (C) 3", 0, 0, None)
    words = re.findall(r"[a-z0-9']+", r1.lower())
    assert len(set(words)) >= 250
    windows = [tuple(words[i:i + 50]) for i in range(len(words) - 49)]
    assert len(windows) == len(set(windows))
    assert re.search(r"<answer>[ABC]</answer>$", c1)
    assert reasoning_reply("Solve step by step: x", 0, 0, "42")[1].endswith("<answer>42</answer>")
    assert len(caption_reply("Describe it", 0, 0).split()) >= 120


@pytest.mark.process
def test_subprocess_server_counts_resets_and_reconfigures():
    srv = start_fake_server({"latency_s": 0.0}, in_process=False)
    try:
        assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/v1")
        client = openai.OpenAI(base_url=srv.url, api_key="EMPTY", max_retries=0)
        srv.configure(rules=[{"fault": "429", "first": 1, "retry_after": 7}])
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            raise AssertionError("expected a 429")
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "7"
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        stats = srv.stats(detail=True)
        assert stats["requests"] == 2 and stats["completed"] == 1 and stats["faults"] == {"429": 1}
        srv.reset()
        assert srv.stats()["requests"] == 0
        client.close()
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


def test_fraction_and_marker_rules(fake_llm):
    fake_llm.configure(seed=3, rules=[{"fault": "500", "marker": "ALWAYS"}, {"fault": "503", "fraction": 0.5}])
    client = openai.OpenAI(base_url=fake_llm.url, api_key="EMPTY", max_retries=0)
    failures = 0
    for i in range(60):
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q {i}"}])
        except openai.InternalServerError:
            failures += 1
    with_marker = 0
    for i in range(5):
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"ALWAYS {i}"}])
        except openai.InternalServerError as exc:
            with_marker += exc.status_code == 500
    client.close()
    assert 15 <= failures <= 45 and with_marker == 5
    stats = fake_llm.stats()
    assert stats["faults"] == {"503": failures, "500": 5} and stats["completed"] == 60 - failures
