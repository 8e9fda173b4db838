"""The shared model-step mechanism: one request window per partition, rows back in input order,
samples and attempts with deterministic seeds, cache hits, fail-fast on a broken endpoint."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from mmfr_assets.llm import LLMEndpointError, LLMSession, ResponseCache
from mmfr_assets.llm.resource import LLMCache
from mmfr_assets.llm.types import ChatRequest
from mmfr_assets.model_step import ModelStep, Parsed, Retry
from mmfr_assets.model_step.runner import StepStats, check_declaration, run_model_step, skipped
from mmfr_assets.prompts import Prompt
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server, llm_settings  # noqa: F401

PROMPT = Prompt(name="echo", system="", user="Please answer: {question}")


class EchoStep(ModelStep):
    """Sends rows whose `question` is set; keeps the echoed text, retries replies lacking
    the word `ok` when asked to."""

    asset = "echo"
    role = "answer_llm"
    upstream = "cleaned"
    columns = ("question",)
    prompt = "echo"
    output_schema = pa.schema([("text", pa.string()), ("texts", pa.list_(pa.string())),
                               ("status", pa.string()), ("why", pa.string())])
    status_column = "status"
    reason_column = "why"
    skipped_status = "no_model"

    def __init__(self, samples=1, max_attempts=1, want=None):
        self.samples, self.max_attempts, self.want = samples, max_attempts, want

    def needs(self, batch):
        return batch["question"].is_not_null()

    def render(self, row, prompt):
        return prompt.render(question=row["question"])

    def parse(self, row, replies, attempt):
        if not all(r.ok for r in replies):
            error = next(r.error for r in replies if not r.ok)
            return Parsed({"status": "failed"}, failure=error)
        texts = [r.content for r in replies]
        out = Parsed({"text": texts[0], "texts": texts, "status": f"attempt{attempt}"})
        if self.want and not any(self.want in t for t in texts):
            return Retry("unwanted", Parsed({**out.columns, "status": "gave_up"}))
        return out

    def without_model(self, row):
        return Parsed({"status": "not_needed"})


def _batches(n, every=1, size=100):
    ids = [f"r{i:05d}" for i in range(n)]
    questions = [f"q{i}" if i % every == 0 else None for i in range(n)]
    frame = pl.DataFrame({"subset": ["S"] * n, "id": ids, "question": questions})
    return [frame.slice(k, size) for k in range(0, n, size)]


def _run(step, session, batches, **kw):
    build = lambda text, image: ChatRequest.from_text(text)  # noqa: E731
    frames = list(run_model_step(step, batches, session=session, prompt=PROMPT, build_request=build, **kw))
    return pl.concat(frames) if frames else None


def test_rows_come_back_in_input_order_under_heavy_tailed_latency(fake_llm, llm_settings, tmp_path):
    fake_llm.configure(latency_s=0.02, latency_sigma=1.5)
    stats = StepStats()
    with LLMSession(llm_settings(max_concurrency=8), cache=str(tmp_path / "c.sqlite")) as s:
        out = _run(EchoStep(), s, _batches(400, every=3), reorder_limit=40, write_rows=64, stats=stats)
    assert out["id"].to_list() == [f"r{i:05d}" for i in range(400)]
    sent = [i % 3 == 0 for i in range(400)]
    assert out["status"].to_list() == ["attempt1" if s else "not_needed" for s in sent]
    assert all(t == f"Echo: Please answer: q{i}" for i, t in zip(range(0, 400, 3), out["text"].drop_nulls()))
    assert stats.sent == sum(sent) and stats.rows == 400 and stats.statuses["not_needed"] == 400 - sum(sent)
    assert out["prompt_version"].null_count() == 400 - sum(sent)
    assert fake_llm.stats()["max_in_flight"] == 8  # the window stayed full across batches


def test_no_endpoint_says_why_for_every_row_that_needed_one():
    stats = StepStats()
    out = _run(EchoStep(), None, _batches(10, every=2), stats=stats)
    assert out["status"].to_list() == ["no_model", "not_needed"] * 5
    assert out["why"].to_list() == ["no answer_llm endpoint configured (MMFR_ANSWER_LLM_BASE_URL unset)", None] * 5
    assert set(out["attempts"]) == {0} and set(out["prompt_version"]) == {None}
    assert (stats.rows, stats.sent, stats.not_sent, stats.statuses) == (10, 0, 5, {"no_model": 5, "not_needed": 5})


class _Noted(EchoStep):
    """A step whose rows carry a note without the model, and no skipped status of its own."""

    skipped_status = None

    def without_model(self, row):
        return Parsed({"status": "bounds", "why": "2 of 4 undecided"})


def test_the_runner_appends_the_reason_and_keeps_a_status_the_step_does_not_override():
    row = {"subset": "S", "id": "1", "question": "q"}
    assert skipped(_Noted(), row, "no endpoint").columns == {"status": "bounds", "why": "2 of 4 undecided; no endpoint"}
    assert skipped(EchoStep(), row, "no endpoint").columns == {"status": "no_model", "why": "no endpoint"}


def test_a_declaration_that_does_not_hold_together_fails_at_definition_time():
    check_declaration(EchoStep)

    class NoSuchColumn(EchoStep):
        reason_column = "nope"

    class NoStatus(EchoStep):
        status_column = None

    with pytest.raises(TypeError, match="echo: reason_column 'nope'"):
        check_declaration(NoSuchColumn)
    with pytest.raises(TypeError, match="skipped_status needs a status_column"):
        check_declaration(NoStatus)


def test_samples_in_one_request_with_n_or_one_request_per_seed(fake_llm, llm_settings, tmp_path):
    with LLMSession(llm_settings(), cache=str(tmp_path / "c.sqlite")) as s:
        _run(EchoStep(samples=3), s, _batches(5))
        assert fake_llm.stats()["requests"] == 5
    fake_llm.reset()
    with LLMSession(llm_settings(), cache=str(tmp_path / "d.sqlite")) as s:
        out = _run(EchoStep(samples=3), s, _batches(5), supports_n=False, base_seed=7)
        seen = fake_llm.stats()["requests"]
    assert seen == 15 and out["texts"].list.len().to_list() == [3] * 5


class TwoAsksStep(EchoStep):
    """Asks each row two ways (as the RL rollouts do: with and without the image)."""

    def asks(self, row, prompt):
        from mmfr_assets.model_step.declaration import Ask

        return (Ask(self.render(row, prompt), False, 3), Ask(f"blind {row['question']}", False, 2))


@pytest.mark.parametrize("supports_n, requests", [(True, 2), (False, 5)])
def test_several_asks_per_row_come_back_in_order(fake_llm, llm_settings, tmp_path, supports_n, requests):
    with LLMSession(llm_settings(), cache=str(tmp_path / "c.sqlite")) as s:
        out = _run(TwoAsksStep(samples=3), s, _batches(4), supports_n=supports_n, base_seed=7)
        assert fake_llm.stats()["requests"] == 4 * requests
    for i, texts in enumerate(out["texts"].to_list()):
        assert texts == [f"Echo: Please answer: q{i}"] * 3 + [f"Echo: blind q{i}"] * 2


def test_a_retry_asks_again_with_a_new_seed_and_a_rerun_pays_nothing(fake_llm, llm_settings, tmp_path):
    # every first attempt is scripted to lack "ok"; later attempts get the normal echo ...
    fake_llm.configure(rules=[{"fault": "reply", "marker": "q", "first_per_prompt": 1, "content": "nope"}])
    cache = str(tmp_path / "c.sqlite")
    stats = StepStats()
    with LLMSession(llm_settings(), cache=cache) as s:
        out = _run(EchoStep(max_attempts=3, want="Echo"), s, _batches(6), stats=stats)
    assert out["status"].to_list() == ["attempt2"] * 6 and set(out["attempts"]) == {2}
    assert stats.retried_rows == 6 and stats.attempts[2] == 6
    sent = fake_llm.stats()["requests"]
    assert sent == 12
    with LLMSession(llm_settings(), cache=cache) as s:
        again = _run(EchoStep(max_attempts=3, want="Echo"), s, _batches(6))
    assert fake_llm.stats()["requests"] == sent  # same seeds, same requests: all from the cache
    assert again["text"].to_list() == out["text"].to_list()
    # ... and one that never passes keeps its fallback after max_attempts
    fake_llm.configure(rules=[{"fault": "reply", "content": "nope"}])
    with LLMSession(llm_settings(), cache=str(tmp_path / "e.sqlite")) as s:
        out = _run(EchoStep(max_attempts=2, want="Echo"), s, _batches(3))
    assert out["status"].to_list() == ["gave_up"] * 3 and set(out["attempts"]) == {2}


def test_an_endpoint_that_can_never_answer_stops_the_step(fake_llm, llm_settings, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    fake_llm.configure(rules=[{"fault": "500", "marker": "q1", "message": "image input is not supported"}])
    with LLMSession(llm_settings(max_concurrency=2, fail_fast_after=5), cache=cache) as s:
        with pytest.raises(LLMEndpointError, match="image input is not supported"):
            _run(EchoStep(), s, _batches(200))
    sent = fake_llm.stats()["requests"]
    # not retried (max_retries=3 in these settings), and stopped after a short run of them
    assert fake_llm.stats()["faults"]["500"] < 12 and sent < 60
    # the rows that did finish are in the cache: a fixed endpoint resumes without asking them again
    finished = ResponseCache(cache)
    try:
        assert len(finished) >= 1
    finally:
        finished.close()


def test_transient_errors_never_trip_fail_fast(fake_llm, llm_settings, tmp_path):
    fake_llm.configure(rules=[{"fault": "503", "first_per_prompt": 1}])
    with LLMSession(llm_settings(fail_fast_after=2), cache=str(tmp_path / "c.sqlite")) as s:
        out = _run(EchoStep(), s, _batches(20))
    assert set(out["status"]) == {"attempt1"}


def test_classify_status():
    from mmfr_assets.llm.retries import classify_status

    assert classify_status(500, "image input is not supported") == (False, True)
    assert classify_status(404, "The model `x` does not exist.") == (False, True)
    assert classify_status(401, "invalid API key") == (False, True)
    assert classify_status(503, "overloaded") == (True, False)
    assert classify_status(429, "slow down") == (True, False)


# -- the one join, the registry, the cache resource ----------------------------------------

def _write(lake, table, frame, schema):
    from mmfr_assets.stage import Verdicts, run_stage

    run_stage(lake, stage=table, subset="S", batches=[frame], decide=Verdicts.no_drops, schema=schema)


def test_join_step_takes_the_step_columns_typed_by_its_schema(tmp_path):
    from mmfr_assets.lake.resource import LakeResource
    from mmfr_assets.model_step.join import join_step, take
    from mmfr_assets.model_step.runner import table_schema

    lake = LakeResource(uri=str(tmp_path / "lake"))
    ids = [f"r{i}" for i in range(5)]
    _write(lake, "echo", pl.DataFrame({"subset": ["S"] * 5, "id": ids, "text": ["a", None, "c", None, "e"],
                                       "texts": [[]] * 5, "status": ["s"] * 5, "why": [None] * 5,
                                       "prompt_version": [None] * 5, "attempts": [0] * 5,
                                       "prompt_tokens": [0] * 5, "completion_tokens": [0] * 5}),
           table_schema(EchoStep))
    consumer = [pl.DataFrame({"id": ids[:3], "text": ["x", "y", "z"]}), pl.DataFrame({"id": ids[3:], "text": ["u", "v"]})]
    out = pl.concat(join_step(lake, iter(consumer), "S", take(EchoStep, "text", why="echo_why", status="echo_status")))
    assert out["id"].to_list() == ids
    assert out["text"].to_list() == ["a", None, "c", None, "e"]  # replaced by the step's
    assert out["echo_status"].to_list() == ["s"] * 5
    assert out.schema["echo_why"] == pl.String  # a column of nulls keeps the step's type
    with pytest.raises(ValueError, match="echo writes no column 'nope'"):
        take(EchoStep, "nope")
    # a step never materialized for the partition: an error, or named where the caller asks
    missing = take(_Noted, "text")
    object.__setattr__(missing, "step", type("Other", (EchoStep,), {"asset": "other"}))
    with pytest.raises(Exception):
        list(join_step(lake, iter(consumer), "S", missing))
    not_joined: list[str] = []
    kept = pl.concat(join_step(lake, iter(consumer), "S", [missing, take(EchoStep, "status")], not_joined=not_joined))
    assert not_joined == ["other"] and kept.columns == ["id", "text", "status"]


def test_every_registered_step_is_an_asset_of_the_definitions(sample_source):
    import dagster as dg

    from mmfr_assets.definitions import build_definitions
    from mmfr_assets.model_step.registry import MODEL_STEPS, Registered, build_model_steps

    partitions = dg.StaticPartitionsDefinition(["S"])
    built = {a.key.path[-1]: a for a in build_model_steps(partitions)}
    assert set(built) == {r.step.asset for r in MODEL_STEPS}
    for r in MODEL_STEPS:
        asset = built[r.step.asset]
        assert asset.required_resource_keys >= {r.step.role, "lake", "llm_cache"}
        assert asset.descriptions_by_key[asset.key] == r.step.description != ""
        assert {k.path[-1] for k in asset.dependency_keys} == {r.step.upstream, *(j.table for j in r.step.joins)}
    with pytest.raises(ValueError, match="registered twice: question_reviews"):
        build_model_steps(partitions, (MODEL_STEPS[0], MODEL_STEPS[0]))
    stray = type("Stray", (EchoStep,), {"role": "oracle_llm"})
    with pytest.raises(ValueError, match="role 'oracle_llm' is not an endpoint role"):
        build_model_steps(partitions, (Registered(stray),))
    defs = build_definitions(str(sample_source), "/tmp/unused-lake", {})
    assert {r.step.asset for r in MODEL_STEPS} <= {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_the_cache_is_a_resource_built_from_mmfr_llm_cache(monkeypatch):
    import dagster as dg

    from mmfr_assets.llm import llm_cache_from_env
    from mmfr_assets.llm.cache import DEFAULT_CACHE_PATH

    assert llm_cache_from_env({}).path() == DEFAULT_CACHE_PATH
    url = "postgresql://mmfr:hunter2@db:5432/cache"
    monkeypatch.setenv("MMFR_LLM_CACHE", url)
    cache = llm_cache_from_env()
    assert isinstance(cache.location, dg.EnvVar) and cache.path() == url
    assert "hunter2" not in repr(cache) and "hunter2" not in repr(LLMCache(location=url))

    seen = {}

    @dg.asset
    def probe(llm_cache: LLMCache) -> None:
        seen["path"] = llm_cache.path()

    assert dg.materialize([probe], resources={"llm_cache": cache}).success
    assert seen["path"] == url  # resolved by Dagster at run time
    run_config = {"resources": {"llm_cache": {"config": {"location": "/tmp/other.sqlite"}}}}
    assert dg.materialize([probe], resources={"llm_cache": cache}, run_config=run_config).success
    assert seen["path"] == "/tmp/other.sqlite"
