"""The fake OpenAI-compatible server: real openai client, subprocess mode, canned replies."""

from __future__ import annotations

import re

import openai
import pytest

from mmfr_devkit.fake_server import (
    caption_reply, prompt_digest, reasoning_reply, reply_words, role_fault, start_fake_server, stretch_reasoning,
)
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


def test_role_faults_have_their_rates_and_depend_only_on_seed_prompt_and_attempt():
    rates = {"429": 0.05, "5xx": 0.03, "malformed": 0.02, "empty": 0.01}
    draws = [role_fault(rates, 7, f"prompt {i}", 0) for i in range(20_000)]
    assert draws == [role_fault(rates, 7, f"prompt {i}", 0) for i in range(20_000)]
    assert draws != [role_fault(rates, 8, f"prompt {i}", 0) for i in range(20_000)]
    shares = {f: sum(d in ({"500", "502", "503"} if f == "5xx" else {f}) for d in draws) / len(draws)
              for f in rates}
    assert all(abs(shares[f] - rates[f]) < rates[f] * 0.2 for f in rates), shares
    assert sum(d is None for d in draws) / len(draws) == pytest.approx(0.89, abs=0.01)
    with pytest.raises(ValueError, match="unknown role faults"):
        role_fault({"timeout": 0.1}, 0, "p", 0)


def test_role_reasoning_lengths_follow_the_published_traces():
    role = {"words_median": 910, "words_p90": 3428}
    lengths = sorted(reply_words(role, 0, f"q {i}", None, 0) for i in range(4_000))
    assert lengths[len(lengths) // 2] == pytest.approx(910, rel=0.08)
    assert lengths[int(len(lengths) * 0.9)] == pytest.approx(3428, rel=0.1)
    reasoning, _ = reasoning_reply("Solve step by step: x", 0, 0, None)
    long = stretch_reasoning(reasoning, 3_000).split()
    assert len(long) >= 3_000
    windows = [tuple(long[i:i + 50]) for i in range(len(long) - 49)]
    assert len(windows) == len(set(windows))


def test_a_role_gets_its_faults_whatever_the_order(fake_llm):
    roles = {"cot_teacher": {"faults": {"429": 0.2, "5xx": 0.2, "malformed": 0.1, "empty": 0.1},
                             "words_median": 910, "words_p90": 3428},
             "judge_llm": {}}
    client = openai.OpenAI(base_url=fake_llm.url, api_key="EMPTY", max_retries=0)

    def ask(order):
        fake_llm.configure(seed=5, roles=roles)
        seen = {}
        for i in order:
            try:
                reply = client.chat.completions.create(
                    model="cot_teacher", messages=[{"role": "user", "content": f"Solve step by step: {i}"}])
                seen[i] = reply.choices[0].message.content or "empty"
            except openai.APIStatusError as error:
                seen[i] = str(error.status_code)
            except (openai.APIError, ValueError):
                seen[i] = "malformed"
        return seen

    forward = ask(range(40))
    stats = fake_llm.stats()["by_role"]["cot_teacher"]
    fake_llm.reset()
    assert ask(reversed(range(40))) == forward
    client.close()
    digest = {i: prompt_digest([{"role": "user", "content": f"Solve step by step: {i}"}]) for i in range(40)}
    expected = [role_fault(roles["cot_teacher"]["faults"], 5, digest[i], 0) for i in range(40)]
    assert stats["requests"] == 40 and stats["completed"] == sum(f in (None, "empty") for f in expected)
    assert stats["faults"] == {f: expected.count(f) for f in set(expected) - {None}}
    assert stats["completion_tokens"] > 300 * sum(f is None for f in expected)


def test_a_role_counts_its_busy_time_and_each_request_body(fake_llm):
    """Per role, the seconds served holding one of its slots (its `capacity`), the basis of the
    rehearsal's busy fraction; per request body, received / faulted / answered usably."""
    from mmfr_devkit.fake_server import busy_fraction, request_digest

    fake_llm.configure(roles={"judge_llm": {"latency_s": 0.05, "capacity": 1}},
                       rules=[{"fault": "500", "marker": "first fails", "first": 1}])
    client = openai.OpenAI(base_url=fake_llm.url, api_key="EMPTY", max_retries=1)
    for text in ("first fails", "asked twice", "asked twice", "once"):
        client.chat.completions.create(model="judge_llm", messages=[{"role": "user", "content": text}])
    client.close()
    stats = fake_llm.stats(detail=True)
    judge = stats["by_role"]["judge_llm"]
    assert judge["requests"] == 5 and judge["faults"] == {"500": 1}
    assert judge["served_seconds"] == pytest.approx(5 * 0.05, rel=0.05)  # every request held its slot 0.05 s
    body = lambda text: {"model": "judge_llm", "messages": [{"role": "user", "content": text}]}  # noqa: E731
    assert stats["by_request"] == {request_digest(body("first fails")): [2, 1, 1],
                                   request_digest(body("asked twice")): [2, 0, 2],
                                   request_digest(body("once")): [1, 0, 1]}
    assert busy_fraction(judge["served_seconds"], 1, 0.5) == pytest.approx(0.5, rel=0.05)
    assert busy_fraction(3.0, 8, 0.0) == 0.0 and busy_fraction(3.0, 0, 1.0) == 0.0
