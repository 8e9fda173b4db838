"""Distillation with teacher endpoints: the fake OpenAI-compatible server stands in for vLLM."""

from __future__ import annotations

import dagster as dg
import polars as pl

from mmfr_assets.definitions import build_definitions
from mmfr_assets.prompts import load_prompt
from mmfr_assets.distillation.teachers import CAPTION, COT, annotate
from mmfr_assets.llm import ChatResult, Choice, LLMEndpoint

TEACHER_ASSETS = ["collected", "cleaned", "teacher_captions", "teacher_responses", "distilled"]


def test_the_thinking_teacher_never_sees_the_caption_and_the_captioner_no_question():
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    endpoint = LLMEndpoint(base_url="http://127.0.0.1:9/v1", model="m")
    cot = COT.request(endpoint, load_prompt("cot_teacher"), "What is the angle ABC?", png.getvalue())
    assert "data:image/png;base64," in str(cot.messages)
    text = str(cot.messages)
    assert "What is the angle ABC?" in text and "step-by-step" in text
    assert "caption" not in text.lower()
    caption = CAPTION.request(endpoint, load_prompt("caption_teacher"), "What is ABC?", None)
    assert "What is ABC?" not in str(caption.messages)


def test_annotate_records_where_every_text_came_from():
    batch = pl.DataFrame(
        {"subset": ["S"] * 4, "id": ["a", "b", "c", "d"],
         "qwen3vl_235b_thinking_response": ["<think>x</think>", None, "  ", None]}
    )
    ok = ChatResult(ok=True, choices=(Choice(content="<answer>B</answer>", reasoning="because"),))
    failed = ChatResult(ok=False, error="HTTP 500 after 3 attempts")
    rows = annotate(batch, COT, {"b": ok, "c": failed, "d": ok})
    assert rows["response_origin"].to_list() == ["dataset", "generated", "failed", "generated"]
    assert rows["response"].to_list()[1] == "<think>\nbecause\n</think>\n\n<answer>B</answer>"
    assert rows["response_error"].to_list()[2] == "HTTP 500 after 3 attempts"
    skipped = annotate(batch, COT, None)
    assert skipped["response_origin"].to_list() == ["dataset", "missing", "missing", "missing"]


def _defs(monkeypatch, sample_source, tmp_path, url):
    for role in ("COT_TEACHER", "CAPTION_TEACHER"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", url)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", "fake-model")
        monkeypatch.setenv(f"MMFR_{role}_API_KEY", "sk-test-secret-4242")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    return build_definitions(str(sample_source), str(tmp_path / "lake"), {})


FAST = {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 10.0}


def _materialize(defs, instance, run_config=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key="BMMR", instance=instance, raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in TEACHER_ASSETS],
        run_config=run_config or {"resources": {r: {"config": FAST} for r in ("cot_teacher", "caption_teacher")}},
    )


def _metadata(result, asset):
    [m] = [e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
           if e.event_specific_data.materialization.asset_key.path[-1] == asset]
    return m


def test_teachers_fill_the_gaps_and_a_rerun_pays_nothing(monkeypatch, sample_source, tmp_path, fake_llm):
    from mmfr_assets.sample import expected_reasons

    defs = _defs(monkeypatch, sample_source, tmp_path, fake_llm.url)
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(defs, instance)
    assert result.success
    lake = tmp_path / "lake"
    distilled = pl.read_delta(str(lake / "distilled"))
    plan = {str(k): v for k, v in expected_reasons("BMMR").items()}
    missing_response = [i for i, r in plan.items() if r == "content_missing_response"]
    missing_caption = [i for i, r in plan.items() if r == "content_missing_caption"]
    generated = distilled.filter(pl.col("response_origin") == "generated")
    assert generated["id"].to_list() == missing_response
    assert generated["response"][0].startswith("<think>") and "<answer>" in generated["response"][0]
    assert distilled.filter(pl.col("caption_origin") == "generated")["id"].to_list() == missing_caption
    assert len(generated["response"][0].split()) >= 200
    assert set(distilled["response_origin"]) == {"dataset", "generated"}
    cot = _metadata(result, "teacher_responses")
    assert cot["llm_requests_sent"].value == len(missing_response) == cot["rows_generated"].value
    assert cot["llm_completion_tokens"].value > 0 and cot["llm_latency_p95_s"].value >= 0
    assert "sent to cot_teacher" in cot["generation"].value
    sent = fake_llm.stats()["requests"]
    assert sent == len(missing_response) + len(missing_caption)
    # the re-run asks nothing: every answer comes from the durable cache
    again = _materialize(defs, instance)
    assert again.success and fake_llm.stats()["requests"] == sent
    assert _metadata(again, "teacher_responses")["llm_cache_hits"].value == len(missing_response)
    # and the secret key is nowhere in what Dagster recorded
    logs = str([e.message for e in instance.all_logs(result.run_id)])
    assert "sk-test-secret-4242" not in logs


def test_failed_requests_are_recorded_and_the_failure_check_fails(monkeypatch, sample_source, tmp_path, fake_llm):
    fake_llm.configure(rules=[{"fault": "500"}])
    defs = _defs(monkeypatch, sample_source, tmp_path, fake_llm.url)
    result = _materialize(defs, dg.DagsterInstance.ephemeral())
    assert result.success  # the failure check does not block: the rows that failed are recorded
    distilled = pl.read_delta(str(tmp_path / "lake" / "distilled"))
    failed = pl.read_delta(str(tmp_path / "lake" / "teacher_responses")).filter(
        pl.col("response_origin") == "failed"
    )
    assert failed.height >= 1 and "500" in failed["response_error"][0]
    assert "sk-test-secret-4242" not in failed["response_error"][0]
    assert distilled.filter(pl.col("response_origin") == "failed")["response"].null_count() == failed.height
    checks = {
        (e.event_specific_data.asset_check_key.asset_key.path[-1], e.event_specific_data.check_name):
            e.event_specific_data.passed
        for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks[("teacher_responses", "generation_failure_rate")] is False
    assert checks[("teacher_responses", "rows_accounted_for")] is True
    assert checks[("distilled", "rows_accounted_for")] is True
