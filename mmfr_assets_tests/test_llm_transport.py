"""The client's HTTP layer: error texts from servers, proxies from the environment, and the
garbage-collector tuning a model step runs under."""

from __future__ import annotations

import gc

import pytest

from mmfr_assets.llm.transport import env_proxy, error_message, no_reply_text, open_transport
from mmfr_assets.model_step.collector import STEP_THRESHOLDS, steady_collector


def test_error_message_takes_the_servers_words():
    assert error_message('{"error": {"message": "image input is not supported", "code": 500}}') == \
        "image input is not supported"
    assert error_message('{"error": "model not loaded"}') == "model not loaded"
    assert error_message('{"detail": "nope"}') == '{"detail": "nope"}'
    assert error_message("<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert len(error_message("x" * 2000)) == 500


def test_no_reply_text_names_the_root_cause():
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert no_reply_text(exc, 5).startswith("connection error: ConnectionRefusedError:")
    assert no_reply_text(TimeoutError(), 2.5) == "timeout after 2.5s (TimeoutError)"


def test_env_proxy_is_read_once_from_the_environment(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.example.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "vllm.local")
    assert env_proxy("https://api.example.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert env_proxy("http://api.example.com/v1") is None  # no HTTP_PROXY
    assert env_proxy("https://vllm.local:8000/v1") is None


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="aiohttp, httpx"):
        open_transport("requests", "http://h/v1/chat/completions", api_key=None, timeout_s=1, max_connections=1)


def test_steady_collector_tunes_then_restores_even_nested_and_on_error():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError):
        with steady_collector():
            assert gc.get_threshold() == STEP_THRESHOLDS and gc.get_freeze_count() > frozen
            with steady_collector():
                assert gc.get_threshold() == STEP_THRESHOLDS
            assert gc.get_threshold() == STEP_THRESHOLDS  # the outer step still runs
            raise RuntimeError("step failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
