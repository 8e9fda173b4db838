"""`max_concurrency` is an endpoint's total over every run: each step keeps its pool's share
(`mmfr_assets/llm/bound.py`), read from the instance at run time, on the URL its partition key
chooses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import dagster as dg
import pytest

from mmfr_assets.llm.bound import (PoolSlots, endpoint_bound, per_step_concurrency, pool_slots,
                                   split_base_urls, url_index)
from mmfr_devkit.fake_server import start_fake_server
from mmfr_assets.llm.resource import endpoint_class_for_role
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401


def test_per_step_share_never_exceeds_the_total_and_wastes_less_than_one_step():
    for total in range(1, 130):
        for steps in range(1, 40):
            share = per_step_concurrency(total, steps)
            assert share >= 1
            if steps <= total:
                assert steps * share <= total < steps * (share + 1)
            else:
                assert share == 1  # more steps than the total: one request each
    assert per_step_concurrency(64, 1) == 64  # one slot: today's behaviour
    with pytest.raises(ValueError):
        per_step_concurrency(0, 1)


def test_base_urls_split_at_commas():
    assert split_base_urls("http://a:8000/v1") == ["http://a:8000/v1"]
    assert split_base_urls(" http://a/v1, http://b/v1 ,,http://c/v1") == ["http://a/v1", "http://b/v1", "http://c/v1"]
    assert split_base_urls(None) == split_base_urls("  ") == []


@pytest.mark.process
def test_url_choice_is_stable_and_spreads_keys():
    assert url_index("BMMR", 1) == 0
    keys = [f"subset-{i}" for i in range(400)]
    picks = [url_index(k, 4) for k in keys]
    assert picks == [url_index(k, 4) for k in keys]  # same in this process
    assert set(Counter(picks)) == {0, 1, 2, 3} and min(Counter(picks).values()) > 60
    # ... and in another process whatever its hash seed (a retried run on another pod)
    code = ("from mmfr_assets.llm.bound import url_index; "
            f"print([url_index(k, 4) for k in {keys[:50]!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert out.strip() == str(picks[:50])


def test_a_shard_dimension_sends_consecutive_shards_to_different_urls():
    for subset in ("BMMR", "FineVision-geo170k(qa)"):
        first = url_index(dg.MultiPartitionKey({"subset": subset, "shard": "0"}), 4)
        for shard in range(12):
            key = dg.MultiPartitionKey({"subset": subset, "shard": str(shard)})
            assert url_index(key, 4) == (first + shard) % 4
            # ... and the same key as a plain string (`--partition 2|BMMR`, a run tag)
            assert url_index(f"{shard}|{subset}", 4) == url_index(key, 4)
    # shard keys with a prefix ("s03") count by their number too
    assert url_index(dg.MultiPartitionKey({"subset": "A", "shard": "s07"}), 4) == (
        url_index(dg.MultiPartitionKey({"subset": "A", "shard": "3"}), 4))
    # the same shard of many subsets is spread over the URLs: with fewer shards than URLs
    # (2 shards, 4 URLs) every URL still gets runs
    picks = Counter(url_index(f"{shard}|subset-{i}", 4) for i in range(100) for shard in range(2))
    assert set(picks) == {0, 1, 2, 3} and min(picks.values()) > 25, picks


def test_bound_of_one_and_of_several_urls():
    urls = ["http://a/v1", "http://b/v1", "http://c/v1", "http://d/v1"]
    one = endpoint_bound(urls[:1], 64, PoolSlots("cot_teacher", 4, "set"), "BMMR")
    assert (one.url, one.per_step, one.steps_sharing, one.worst_case_in_flight) == (urls[0], 16, 4, 64)
    assert "16 requests in flight" in one.explain() and "http" not in one.explain()
    key = dg.MultiPartitionKey({"subset": "BMMR", "shard": "2"})
    four = endpoint_bound(urls, 64, PoolSlots("cot_teacher", 4, "set"), key)
    assert (four.url, four.per_step, four.steps_sharing) == (urls[url_index(key, 4)], 64, 1)
    assert f"URL {url_index(key, 4) + 1} of 4" in four.explain()
    eight = endpoint_bound(urls, 64, PoolSlots("cot_teacher", 8, "set"), "BMMR")
    assert eight.per_step == 32  # two steps per URL
    unlimited = endpoint_bound(urls[:1], 64, PoolSlots("cot_teacher", None, "no limit"), "BMMR")
    assert unlimited.per_step == 64 and not unlimited.bounded
    assert "not bounded across runs" in unlimited.explain()
    crowded = endpoint_bound(urls[:1], 2, PoolSlots("cot_teacher", 5, "set"), "BMMR")
    assert crowded.per_step == 1 and "may see 5" in crowded.explain()


def test_pool_limit_is_read_from_a_real_instance(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "a")) as instance:
        assert pool_slots(instance, "cot_teacher").limit is None  # no limit, no default
        instance.event_log_storage.set_concurrency_slots("cot_teacher", 3)
        slots = pool_slots(instance, "cot_teacher")
        assert (slots.limit, slots.slots) == (3, 3) and "3 slots" in slots.source
    defaults = {"concurrency": {"pools": {"default_limit": 2}}}
    with dg.instance_for_test(temp_dir=str(tmp_path / "b"), overrides=defaults) as instance:
        slots = pool_slots(instance, "caption_teacher")
        assert slots.limit == 2 and "default_limit" in slots.source
        instance.event_log_storage.set_concurrency_slots("caption_teacher", 5)
        assert pool_slots(instance, "caption_teacher").limit == 5
    assert pool_slots(object(), "cot_teacher").limit is None  # no pools at all: per process


def test_resource_with_several_urls_keeps_one_url_working():
    one = endpoint_class_for_role("cot_teacher", {"MMFR_COT_TEACHER_BASE_URL": "http://a/v1"})()
    assert one.enabled and one.base_urls == ["http://a/v1"] and one.settings().base_url == "http://a/v1"
    assert one.settings().max_concurrency == 64
    env = {"MMFR_COT_TEACHER_BASE_URL": "http://a/v1,http://b/v1", "MMFR_COT_TEACHER_MAX_CONCURRENCY": "10"}
    two = endpoint_class_for_role("cot_teacher", env)()
    assert two.enabled and two.base_urls == ["http://a/v1", "http://b/v1"]
    key = dg.MultiPartitionKey({"subset": "A", "shard": "1"})
    chosen = two.base_urls[url_index(key, 2)]
    bound = two.bound(PoolSlots("cot_teacher", 4, "set"), key)
    assert (bound.url, bound.per_step) == (chosen, 5)
    settings = two.settings(base_url=bound.url, max_concurrency=bound.per_step)
    assert (settings.base_url, settings.max_concurrency) == (chosen, 5)
    assert not endpoint_class_for_role("cot_teacher", {"MMFR_COT_TEACHER_BASE_URL": " , "})().enabled


@pytest.mark.process
def test_a_step_keeps_its_pools_share_on_its_partitions_url(monkeypatch, sample_source, tmp_path, fake_llm):
    """`teacher_responses` for one subset with two URLs, max_concurrency 6, on an instance whose
    `cot_teacher` pool has 4 slots (2 per URL): the step sends to the URL its partition key
    chooses only and keeps 6 // 2 = 3 in flight there; its metadata says so and why."""
    from mmfr_assets.definitions import build_definitions
    from mmfr_assets_tests.test_distillation import _metadata

    steps = ["collected", "cleaned", "dedup_signatures", "deduplicated", "teacher_responses"]
    every_row = {"ops": {"teacher_responses": {"config": {"regenerate": True, "check_answer": False}}}}
    other = start_fake_server()
    try:
        servers = [fake_llm, other]
        for server in servers:
            server.configure(latency_s=0.15)
        monkeypatch.setenv("MMFR_COT_TEACHER_BASE_URL", f"{fake_llm.url}, {other.url}")
        monkeypatch.setenv("MMFR_COT_TEACHER_MAX_CONCURRENCY", "6")
        monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
        defs = build_definitions(str(sample_source), str(tmp_path / "lake"), {})
        (tmp_path / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
            instance.event_log_storage.set_concurrency_slots("cot_teacher", 4)
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                partition_key="BMMR", instance=instance, run_config=every_row,
                asset_selection=[dg.AssetKey(a) for a in steps])
            assert result.success
            meta = _metadata(result, "teacher_responses")
        assert int(meta["endpoint_concurrency"].value) == 3
        derivation = meta["endpoint_concurrency_derivation"].value
        chosen = url_index("BMMR", 2)
        assert f"URL {chosen + 1} of 2" in derivation and "pool 'cot_teacher': 4 slots" in derivation
        assert "http" not in derivation  # a URL may carry credentials: never in metadata
        sent = int(meta["llm_requests_sent"].value)
        assert sent > 3  # more rows than the window: it filled up
        assert servers[chosen].stats()["requests"] == sent
        assert servers[chosen].stats()["max_in_flight"] == 3
        assert servers[1 - chosen].stats()["requests"] == 0
    finally:
        other.stop()
