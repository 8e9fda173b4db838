"""Distillation with teacher endpoints: the fake OpenAI-compatible server stands in for vLLM."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.model_step.runner import skipped
from mmfr_assets.definitions import build_definitions
from mmfr_assets.prompts import load_prompt
from mmfr_assets.distillation.teachers import (
    CaptionTeacher, CaptionTeacherConfig, CotTeacher, CotTeacherConfig,
)
from mmfr_assets.llm import ChatResult, Choice
from mmfr_assets.model_step import Parsed, Retry
from mmfr_assets.rules.config import QUALITY_THRESHOLDS, QualityThresholds

TEACHER_ASSETS = ["collected", "cleaned", "dedup_signatures", "deduplicated", "teacher_captions",
                  "teacher_responses", "distilled"]


def test_the_thinking_teacher_never_sees_the_caption_and_the_captioner_no_question():
    cot, caption = CotTeacher(CotTeacherConfig()), CaptionTeacher(CaptionTeacherConfig())
    assert not any("caption" in c for c in cot.columns)
    assert "question" not in caption.columns
    row = {"subset": "S", "id": "1", "question": "What is the angle ABC?"}
    text = cot.render(row, load_prompt("cot_teacher"))
    assert "What is the angle ABC?" in text and "step-by-step" in text and "{question}" not in text
    assert "caption" not in (text + load_prompt("cot_teacher").system).lower()
    assert "ABC" not in caption.render(row, load_prompt("caption_teacher"))


def _reply(content, reasoning="", finish="stop"):
    return ChatResult(ok=True, choices=(Choice(content=content, reasoning=reasoning, finish_reason=finish),),
                      model="teacher-m")


GOOD_THINK = " ".join(f"step{i} reasoning word" for i in range(120))


def test_a_trace_is_kept_only_when_it_passes_the_selection_rules():
    cot = CotTeacher(CotTeacherConfig(max_attempts=2))
    row = {"subset": "BMMR", "id": "1", "question": "q", "qwen3vl_235b_thinking_response": None}
    good = cot.parse(row, [_reply("so <answer>B</answer>", GOOD_THINK)], 1)
    assert isinstance(good, Parsed) and good.failure is None
    assert good.columns["response"].startswith("<think>\n") and good.columns["response_origin"] == "generated"
    assert good.columns["response_model"] == "teacher-m" and good.columns["samples_passed"] == 1
    short = cot.parse(row, [_reply("<answer>B</answer>", "too short")], 1)
    assert isinstance(short, Retry) and short.reason == "content_short_response"
    assert short.fallback.columns["response_origin"] == "rejected"
    assert short.fallback.columns["response_error"] == "content_short_response"
    repeated = cot.parse(row, [_reply("<answer>B</answer>", " ".join(["the same sixty words"] * 60))], 1)
    assert isinstance(repeated, Retry) and repeated.reason == "repetition_ngram"
    no_answer = cot.parse(row, [_reply("no tags at all", GOOD_THINK)], 1)
    assert isinstance(no_answer, Retry) and no_answer.reason.startswith("structure_")
    failed = cot.parse(row, [ChatResult(ok=False, error="HTTP 500: boom (after 3 attempts)")], 1)
    assert isinstance(failed, Parsed) and failed.failure == "HTTP 500: boom (after 3 attempts)"
    assert failed.columns["response_origin"] == "failed"
    cut = cot.parse(row, [ChatResult(ok=False, error="finish_reason=length (output truncated at max_tokens)")], 1)
    assert isinstance(cut, Retry) and cut.fallback.columns["response_origin"] == "failed"
    # several samples: the first valid one is kept, and how many passed is recorded
    cot4 = CotTeacher(CotTeacherConfig(samples_per_question=3))
    out = cot4.parse(row, [_reply("x", "short"), _reply("<answer>A</answer>", GOOD_THINK),
                           _reply("<answer>C</answer>", GOOD_THINK + " more")], 1)
    assert out.columns["response"].endswith("<answer>A</answer>")
    assert (out.columns["samples_drawn"], out.columns["samples_passed"]) == (3, 2)


def test_a_trace_whose_answer_is_not_the_reference_is_asked_again():
    cot = CotTeacher(CotTeacherConfig())
    try:
        row = {"subset": "BMMR", "id": "1", "question": "How long is AB?\nChoices:\nA. 3\nB. 5", "answer": "5",
               "original_answer": None, "qwen3vl_235b_thinking_response": None}
        wrong = cot.parse(row, [_reply("so <answer>7</answer>", GOOD_THINK)], 1)
        assert isinstance(wrong, Retry) and wrong.reason == "correctness_inconsistent"
        assert wrong.fallback.columns["response_error"] == "correctness_inconsistent"
        assert isinstance(cot.parse(row, [_reply("so <answer>B</answer>", GOOD_THINK)], 1), Parsed)
        assert isinstance(cot.parse(row, [_reply("so <answer>5</answer>", GOOD_THINK)], 1), Parsed)
        # the solution is the reference when there is no answer; no reference, no check
        solution = {**row, "answer": None, "original_answer": "AB = 2 + 3, so AB is \\boxed{5}."}
        assert isinstance(cot.parse(solution, [_reply("<answer>7</answer>", GOOD_THINK)], 1), Retry)
        unchecked = {**row, "answer": None, "original_answer": None}
        assert isinstance(cot.parse(unchecked, [_reply("<answer>7</answer>", GOOD_THINK)], 1), Parsed)
    finally:
        cot.close()
    off = CotTeacher(CotTeacherConfig(check_answer=False))
    assert isinstance(off.parse(row, [_reply("so <answer>7</answer>", GOOD_THINK)], 1), Parsed)


@pytest.mark.process  # the teachers' answer check starts math-verify workers
def test_math_verify_different_is_weak_and_costs_no_second_trace():
    cot = CotTeacher(CotTeacherConfig(max_attempts=3))
    try:
        row = {"subset": "BMMR", "id": "1", "question": "Simplify.", "answer": "x^2 + 2",
               "original_answer": None, "qwen3vl_235b_thinking_response": None}
        kept = cot.parse(row, [_reply("so <answer>x^2 + 1</answer>", GOOD_THINK)], 1)
        assert isinstance(kept, Parsed) and kept.columns["response_origin"] == "generated"
        assert cot.extra_metadata()["answer_check/weak_different_kept"] == 1
        # a rule's "different" (two numbers) is strong: asked again, counted by cause with its tokens
        numbers = {**row, "answer": "5"}
        reply = ChatResult(ok=True, choices=(Choice(content="so <answer>7</answer>", reasoning=GOOD_THINK),),
                           completion_tokens=321)
        assert isinstance(cot.parse(numbers, [reply], 1), Retry)
        metadata = cot.extra_metadata()
        assert metadata["reasks/answer_rule"] == 1 and metadata["reask_tokens/answer_rule"] == 321
    finally:
        cot.close()


def test_teachers_validate_with_the_thresholds_selection_applies_in_the_run():
    run = {QUALITY_THRESHOLDS: QualityThresholds(min_response_words=400, min_caption_words=5)}
    cot = CotTeacher.for_run(CotTeacherConfig(), {}, run)
    assert cot.rules.min_response_words == 400
    row = {"subset": "BMMR", "id": "1", "question": "q", "qwen3vl_235b_thinking_response": None}
    # 360 words pass the default 200 but not the run's 400: selection would drop it, so the teacher asks again
    short = cot.parse(row, [_reply("so <answer>B</answer>", GOOD_THINK)], 1)
    assert isinstance(short, Retry) and short.reason == "content_short_response"
    paper = {QUALITY_THRESHOLDS: QualityThresholds()}
    assert CotTeacher.for_run(CotTeacherConfig(), {}, paper).rules.min_response_words == 200
    assert CotTeacher.for_run(CotTeacherConfig(min_response_words=50), {}, run).rules.min_response_words == 50
    caption = CaptionTeacher.for_run(CaptionTeacherConfig(), {}, run)
    assert isinstance(caption.parse(row, [_reply("a red ball on a table")], 1), Parsed)


def test_dataset_annotations_are_kept_unless_regenerate():
    batch = pl.DataFrame({"subset": ["S"] * 3, "id": ["a", "b", "c"],
                          "qwen3vl_235b_thinking_response": ["<think>x</think>", None, "  "]})
    assert CotTeacher(CotTeacherConfig()).needs(batch).to_list() == [False, True, True]
    assert CotTeacher(CotTeacherConfig(regenerate=True)).needs(batch).to_list() == [True] * 3
    cot = CotTeacher(CotTeacherConfig())
    kept = cot.without_model({"qwen3vl_235b_thinking_response": "<think>x</think>"})
    assert kept.columns["response_origin"] == "dataset" and kept.columns["response"] == "<think>x</think>"
    missing = skipped(cot, {"qwen3vl_235b_thinking_response": None}, "no cot_teacher endpoint")
    assert missing.columns["response_origin"] == "missing" and missing.failure is None
    assert (missing.columns["response"], missing.columns["response_error"]) == (None, "no cot_teacher endpoint")
    # regenerate: every row needs the teacher; without one, the stale dataset trace is not kept
    again = skipped(CotTeacher(CotTeacherConfig(regenerate=True)),
                    {"qwen3vl_235b_thinking_response": "<think>x</think>"}, "no cot_teacher endpoint")
    assert (again.columns["response"], again.columns["response_origin"]) == (None, "missing")


def _defs(monkeypatch, sample_source, tmp_path, url):
    for role in ("COT_TEACHER", "CAPTION_TEACHER"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", url)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", "fake-model")
        monkeypatch.setenv(f"MMFR_{role}_API_KEY", "sk-test-secret-4242")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    return build_definitions(str(sample_source), str(tmp_path / "lake"), {})


FAST = {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 10.0}


# The fake teacher answers at random, so the answer check would reject its traces: tests about
# other things switch it off (it has tests of its own below).
NO_ANSWER_CHECK = {"teacher_responses": {"config": {"check_answer": False}}}


def _materialize(defs, instance, run_config=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key="BMMR", instance=instance, raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in TEACHER_ASSETS],
        run_config=run_config or {"resources": {r: {"config": FAST} for r in ("cot_teacher", "caption_teacher")},
                                  "ops": NO_ANSWER_CHECK},
    )


def _metadata(result, asset):
    [m] = [e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()
           if e.event_specific_data.materialization.asset_key.path[-1] == asset]
    return m


def test_teachers_fill_the_gaps_and_a_rerun_pays_nothing(monkeypatch, sample_source, tmp_path, fake_llm):
    from mmfr_devkit.sample import expected_reasons

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
    # (counts besides the row counts are text: the UI plots numbers across partitions)
    assert int(cot["llm_requests_sent"].value) == len(missing_response) == int(cot["rows/generated"].value)
    assert int(cot["llm_completion_tokens"].value) > 0 and float(cot["llm_latency_p95_s"].value) >= 0
    assert "sent to cot_teacher" in cot["model_calls"].value
    teacher = pl.read_delta(str(lake / "teacher_responses")).filter(pl.col("response_origin") == "generated")
    assert teacher["prompt_version"].to_list() == [load_prompt("cot_teacher").version] * teacher.height
    assert set(teacher["attempts"]) == {1} and teacher["completion_tokens"].min() > 0
    sent = fake_llm.stats()["requests"]
    assert sent == len(missing_response) + len(missing_caption)
    # the re-run asks nothing: every answer comes from the durable cache
    again = _materialize(defs, instance)
    assert again.success and fake_llm.stats()["requests"] == sent
    assert int(_metadata(again, "teacher_responses")["llm_cache_hits"].value) == len(missing_response)
    # and the secret key is nowhere in what Dagster recorded
    logs = str([e.message for e in instance.all_logs(result.run_id)])
    assert "sk-test-secret-4242" not in logs


def test_failed_requests_are_recorded_and_the_failure_check_fails(monkeypatch, sample_source, tmp_path, fake_llm):
    fake_llm.configure(rules=[{"fault": "500"}])
    defs = _defs(monkeypatch, sample_source, tmp_path, fake_llm.url)
    result = _materialize(defs, dg.DagsterInstance.ephemeral())
    # the failure check blocks: the run fails and `distilled` is not built on the failed rows
    assert not result.success
    assert not (tmp_path / "lake" / "distilled").exists()
    failed = pl.read_delta(str(tmp_path / "lake" / "teacher_responses")).filter(
        pl.col("response_origin") == "failed"
    )
    assert failed.height >= 1 and "500" in failed["response_error"][0]
    assert "sk-test-secret-4242" not in failed["response_error"][0]
    assert failed["response"].null_count() == failed.height
    checks = {
        (e.event_specific_data.asset_check_key.asset_key.path[-1], e.event_specific_data.check_name):
            e.event_specific_data.passed
        for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks[("teacher_responses", "generation_failure_rate")] is False
    assert checks[("teacher_responses", "rows_accounted_for")] is True
    assert ("distilled", "rows_accounted_for") not in checks


def test_a_rerun_after_a_kill_repeats_no_finished_request(sample_source, tmp_path, fake_llm):
    """`mmfr run` SIGKILLed while the teacher is mid-partition: the re-run asks the endpoint only
    for what had not finished (at most the requests that were in flight at the kill)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mmfr_assets_tests.dagster_process import dagster_env
    from mmfr_assets_tests.waiting import wait_until

    concurrency = 4
    fake_llm.configure(latency_s=0.25)
    env = dagster_env(tmp_path / "home", sample_source, tmp_path / "lake",
                      MMFR_COT_TEACHER_BASE_URL=fake_llm.url,
                      MMFR_COT_TEACHER_MAX_CONCURRENCY=str(concurrency),
                      MMFR_LLM_CACHE=str(tmp_path / "cache.sqlite"))
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  teacher_responses:\n    config: {regenerate: true, check_answer: false}\n")
    mmfr = [str(Path(sys.executable).parent / "mmfr"), "run", "--subsets", "BMMR",
            "--until", "teacher_responses", "--config", str(config)]
    first = subprocess.Popen(mmfr, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_until(lambda: first.poll() is not None or fake_llm.stats()["completed"] >= 12,
                   "the first run to get going", timeout_s=300)
        assert first.poll() is None, "the first run ended before it was killed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    wait_until(lambda: fake_llm.stats()["in_flight"] == 0, "the server to finish what was in flight")
    finished_before = fake_llm.stats()["completed"]
    assert finished_before < 35  # killed mid-partition (BMMR has 35 cleaned rows)
    again = subprocess.run(mmfr, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    stats = fake_llm.stats(detail=True)
    asked_twice = [d for d, n in stats["completed_by_prompt"].items() if n > 1]
    assert len(asked_twice) <= concurrency  # only what was in flight when the run was killed
    assert stats["completed"] - finished_before <= 35 - finished_before + concurrency
    assert "had died without finishing" in again.stderr  # the killed run no longer holds the pool
    teacher = pl.read_delta(str(tmp_path / "lake" / "teacher_responses"))
    assert teacher.height == 35 and set(teacher["response_origin"]) == {"generated"}


def test_invalid_first_replies_are_asked_again_with_a_new_seed(monkeypatch, sample_source, tmp_path, fake_llm):
    """Scripted first replies that are too short, repetitive or untagged: each row's second
    attempt (a new seed) passes and is kept, with the attempts recorded; captions too short the
    first time likewise."""
    fake_llm.configure(rules=[
        {"fault": "reply", "marker": "four phases", "first_per_prompt": 1,
         "content": "<answer>B</answer>", "reasoning": "much too short"},
        {"fault": "reply", "marker": "Describe this image", "first_per_prompt": 1, "content": "A figure."},
    ])
    defs = _defs(monkeypatch, sample_source, tmp_path, fake_llm.url)
    result = _materialize(defs, dg.DagsterInstance.ephemeral(), run_config={
        "resources": {**{r: {"config": FAST} for r in ("cot_teacher", "caption_teacher")},
                      # the run's thresholds reach the teachers ("A figure." is still too short)
                      QUALITY_THRESHOLDS: {"config": {"min_caption_words": 3}}},
        "ops": {"teacher_responses": {"config": {"regenerate": True, "check_answer": False}},
                "teacher_captions": {"config": {"regenerate": True}}}})
    assert result.success
    assert _metadata(result, "teacher_captions")["validation_thresholds"].value["min_caption_words"] == 3
    assert _metadata(result, "teacher_responses")["validation_thresholds"].value["min_response_words"] == 200
    lake = tmp_path / "lake"
    traces = pl.read_delta(str(lake / "teacher_responses"))
    assert set(traces["response_origin"]) == {"generated"} and set(traces["attempts"]) == {2}
    meta = _metadata(result, "teacher_responses")
    assert meta["rows_asked_again"].value == str(traces.height)
    assert meta["attempts_histogram"].value == {"2": traces.height}
    # the caption prompt is the same text for every row, so only the first request is scripted
    captions = pl.read_delta(str(lake / "teacher_captions"))
    assert set(captions["caption_origin"]) == {"generated"}
    assert captions["attempts"].sort().to_list() == [1] * (captions.height - 1) + [2]
    assert all(len(t.split()) >= 200 for t in pl.read_delta(str(lake / "teacher_responses"))["response"])


def _asset_job():
    """The asset job as the daemon's runs load it: from the code location's module, rebuilt in
    every step process."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module("mmfr_assets.definitions", "defs").get_reconstructable_job(
        "__ASSET_JOB")


def test_the_two_teachers_run_at_once_on_their_two_endpoints(monkeypatch, sample_source, tmp_path, fake_llm):
    """Through the multiprocess executor (the UI's and the daemon's runs), the caption and CoT
    teachers are separate steps in separate pools, so both endpoints are busy at the same time:
    with max_concurrency 2 each, the shared fake server sees more than 2 requests at once."""
    fake_llm.configure(latency_s=0.3)
    for role in ("COT_TEACHER", "CAPTION_TEACHER"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", fake_llm.url)
        monkeypatch.setenv(f"MMFR_{role}_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("MMFR_SOURCE", str(sample_source))
    monkeypatch.setenv("MMFR_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    regenerate = {"config": {"regenerate": True}}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        upstream = dg.execute_job(
            _asset_job(), instance, tags={"dagster/partition": "BMMR"},
            asset_selection=[dg.AssetKey(a) for a in ("collected", "cleaned", "dedup_signatures",
                                                       "deduplicated")],
        )
        assert upstream.success
        result = dg.execute_job(
            _asset_job(), instance, tags={"dagster/partition": "BMMR"},
            asset_selection=[dg.AssetKey("teacher_captions"), dg.AssetKey("teacher_responses")],
            run_config={"ops": {"teacher_captions": regenerate,
                                "teacher_responses": {"config": {"regenerate": True, "check_answer": False}}}},
        )
        assert result.success
    assert fake_llm.stats()["max_in_flight"] > 2
