"""The Dagster resource: env-var roles, run-config overrides, secrets never leaking."""


import logging

import dagster as dg
import pytest

from mmfr_devkit.drive import complete, run_requests
from mmfr_assets.llm import (ROLES, ChatRequest, LLMDisabledError, LLMEndpoint, LLMSession, ResponseCache,
                             endpoint_resources_from_env)
from mmfr_assets.llm.endpoint import Redactor
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server, llm_settings  # noqa: F401

SECRET = "sk-live-Zq8W1xSECRETvalue42"

EXPECTED_ROLES = {"cleaner_llm", "answer_llm", "cot_teacher", "caption_teacher", "judge_llm", "student_llm", "policy_llm"}


def _clear_env(monkeypatch):
    for role in EXPECTED_ROLES:
        for suffix in ("BASE_URL", "MODEL", "API_KEY", "MAX_CONCURRENCY"):
            monkeypatch.delenv(f"MMFR_{role.upper()}_{suffix}", raising=False)


def test_six_roles_from_env(monkeypatch):
    _clear_env(monkeypatch)
    monkeypatch.setenv("MMFR_COT_TEACHER_BASE_URL", "http://vllm-cot:8000/v1")
    monkeypatch.setenv("MMFR_COT_TEACHER_MODEL", "my-cot-model")
    monkeypatch.setenv("MMFR_COT_TEACHER_API_KEY", SECRET)
    monkeypatch.setenv("MMFR_COT_TEACHER_MAX_CONCURRENCY", "17")
    monkeypatch.setenv("MMFR_STUDENT_LLM_BASE_URL", "http://vllm-student:8000/v1")
    res = endpoint_resources_from_env()
    assert set(res) == EXPECTED_ROLES == set(ROLES)
    cot = res["cot_teacher"]
    assert isinstance(cot, LLMEndpoint) and cot.enabled and cot.name == "cot_teacher"
    assert cot.model == "my-cot-model" and cot.max_concurrency == 17
    assert isinstance(cot.api_key, dg.EnvVar) and cot.api_key.env_var_name == "MMFR_COT_TEACHER_API_KEY"
    assert SECRET not in repr(cot) and SECRET not in str(cot)
    assert cot.settings().api_key == SECRET          # resolvable outside a run too
    student = res["student_llm"]
    assert student.enabled and student.api_key is None and student.model == "Qwen/Qwen3-VL-4B-Thinking"
    assert not res["cleaner_llm"].enabled and res["cleaner_llm"].model == "Qwen/Qwen3-30B-A3B-Thinking-2507"
    assert res["caption_teacher"].model == "Qwen/Qwen3-VL-235B-A22B-Instruct"
    assert res["cot_teacher"].max_tokens and res["cot_teacher"].extra_body == {"top_k": 20}


def test_explicit_environ_mapping_and_bad_concurrency():
    res = endpoint_resources_from_env({"MMFR_JUDGE_LLM_BASE_URL": "http://j/v1"})
    assert res["judge_llm"].enabled and not res["cot_teacher"].enabled
    with pytest.raises(ValueError, match="MMFR_JUDGE_LLM_MAX_CONCURRENCY"):
        endpoint_resources_from_env({"MMFR_JUDGE_LLM_MAX_CONCURRENCY": "lots"})


def test_disabled_endpoint_refuses_sessions():
    with pytest.raises(LLMDisabledError, match="MMFR_ANSWER_LLM_BASE_URL"):
        LLMEndpoint(name="answer_llm", base_url="").open_session()


def test_partial_run_config_override_keeps_env_values(monkeypatch, fake_llm):
    _clear_env(monkeypatch)
    monkeypatch.setenv("MMFR_COT_TEACHER_BASE_URL", fake_llm.url)
    monkeypatch.setenv("MMFR_COT_TEACHER_API_KEY", SECRET)
    resources = endpoint_resources_from_env()
    seen = {}

    @dg.asset
    def probe(cot_teacher: LLMEndpoint) -> None:
        seen.update(base_url=cot_teacher.base_url, key=cot_teacher.api_key, conc=cot_teacher.max_concurrency,
                    model=cot_teacher.model, extra=cot_teacher.extra_body)

    defs = dg.Definitions(assets=[probe], resources={"cot_teacher": resources["cot_teacher"]})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(run_config={"resources": {"cot_teacher": {"config": {
        "max_concurrency": 3, "extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}}}})
    assert result.success
    assert seen == {"base_url": fake_llm.url, "key": SECRET, "conc": 3, "model": "Qwen/Qwen3-VL-235B-A22B-Thinking",
                    "extra": {"chat_template_kwargs": {"enable_thinking": False}}}
    # the key is configured by env var name, its value is not in the config schema defaults
    schema = job.run_config_schema.config_type.fields["resources"].config_type.fields["cot_teacher"]
    assert SECRET not in str(schema.config_type.fields["config"].config_type.fields["api_key"].default_value)


# -- secrets --------------------------------------------------------------------

def test_redactor():
    r = Redactor(SECRET)
    assert r(f"bad key {SECRET} and Authorization: Bearer {SECRET}") == \
        "bad key *** and Authorization: Bearer ***"
    assert "abc123" not in r("header Bearer abc123")
    assert SECRET not in repr(r)


def test_api_key_never_in_errors_logs_or_metadata(fake_llm, llm_settings, caplog, tmp_path):
    fake_llm.configure(api_key=SECRET, echo_auth_in_errors=True,
                       rules=[{"fault": "500", "marker": "FAIL"}, {"fault": "400", "marker": "REJECT"}])
    caplog.set_level(logging.DEBUG)  # every logger, including openai's and httpx2's
    log = logging.getLogger("mmfr_test_llm")
    pairs = [("fail", ChatRequest.from_text("FAIL me")), ("reject", ChatRequest.from_text("REJECT me")),
             ("ok", ChatRequest.from_text("fine"))]
    with LLMSession(llm_settings(api_key=SECRET, max_retries=1), cache=tmp_path / "c.sqlite", log=log) as s:
        out = dict(run_requests(s, pairs))
    assert out["ok"].ok and not out["fail"].ok and not out["reject"].ok
    assert "HTTP 500" in out["fail"].error and "Bearer ***" in out["fail"].error   # the server did echo it
    # wrong key: 401 echoing the key we sent
    with LLMSession(llm_settings(api_key=SECRET + "-wrong", max_retries=0), log=log) as s2:
        unauthorized = complete(s2, ChatRequest.from_text("who am i"))
    assert not unauthorized.ok and "HTTP 401" in unauthorized.error
    texts = [r.error or "" for r in out.values()] + [unauthorized.error, caplog.text,
                                                     str(s.usage.to_metadata()), repr(s), repr(s.settings),
                                                     repr(out["fail"])]
    for text in texts:
        assert SECRET not in text
    assert "request failed" in caplog.text    # failures were logged, redacted


def test_dagster_asset_end_to_end_without_leaking_the_key(monkeypatch, fake_llm, tmp_path):
    _clear_env(monkeypatch)
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_BASE_URL", fake_llm.url)
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_API_KEY", SECRET)
    fake_llm.configure(api_key=SECRET, echo_auth_in_errors=True, rules=[{"fault": "500", "marker": "row 2"}])
    cache_path = tmp_path / "llm_cache.sqlite"

    @dg.asset
    def captions(context: dg.AssetExecutionContext, caption_teacher: LLMEndpoint) -> dg.MaterializeResult:
        rows = {i: f"Describe the figure of row {i}." for i in range(5)}
        ok, failed = {}, {}
        with caption_teacher.open_session(cache=ResponseCache(cache_path), log=context.log) as session:
            for row_id, res in run_requests(session, ((i, caption_teacher.request(text))
                                                     for i, text in rows.items())):
                if res.ok:
                    ok[row_id] = res.content
                else:
                    failed[row_id] = res.error
        return dg.MaterializeResult(metadata={**session.usage.to_metadata(), "failed_rows": len(failed),
                                              "first_error": next(iter(failed.values()), "")})

    resources = endpoint_resources_from_env()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([captions], resources={"caption_teacher": resources["caption_teacher"]},
                            instance=instance,
                            run_config={"resources": {"caption_teacher": {"config": {
                                "max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}}}})
    assert result.success
    meta = result.asset_materializations_for_node("captions")[0].metadata
    assert meta["failed_rows"].value == 1 and meta["llm_successes"].value == 4
    assert "HTTP 500" in meta["first_error"].value
    for event in result.all_events:
        assert SECRET not in str(event)
    logs = instance.all_logs(result.run_id)
    assert any("request failed" in (rec.user_message or "") for rec in logs)   # context.log got the failure
    for rec in logs:
        assert SECRET not in str(rec)
    assert SECRET not in str(result.dagster_run.run_config)


def test_user_message_uses_endpoint_image_bounds():
    import base64
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (10, 200, 30)).save(buf, "PNG")
    ep = LLMEndpoint(base_url="http://x/v1", model="m", max_image_edge=100)
    req = ep.request("What is shown?", image=buf.getvalue(), system="Be brief.")
    part = req.messages[1]["content"][0]
    assert req.messages[0] == {"role": "system", "content": "Be brief."}
    head, b64 = part["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64"
    assert Image.open(io.BytesIO(base64.b64decode(b64))).size == (100, 50)
    assert req.messages[1]["content"][1] == {"type": "text", "text": "What is shown?"}
