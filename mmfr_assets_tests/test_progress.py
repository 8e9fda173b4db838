"""Progress while a step runs: the rate/ETA arithmetic on an injected clock, the line's wording,
`mmfr run`'s two views of it, and a model step against the fake server whose progress lines
are in the run's event log before the step ends."""

from __future__ import annotations

import io

import pytest

from mmfr_assets import progress
from mmfr_assets.cli.progress_view import Bars, Lines, detail_of, showing_progress
from mmfr_assets.progress import Counts, RateWindow, Reporter, Snapshot, duration, listening, rate
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401 (fixtures)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_are_over_the_last_minute_only():
    window = RateWindow(span_s=60, sample_s=1)
    window.add(0, 0, 0)
    window.add(30, 300, 3000)  # 10 rows/s, 100 tok/s
    assert window.rates() == (10.0, 100.0)
    window.add(90, 300, 3000)  # nothing in the last minute but the first half of it
    assert window.rates() == (0.0, 0.0)  # the window starts at 30: no row since
    window.add(120, 600, 3000)  # 300 rows in the 90 s since the sample at 30
    rows, tokens = window.rates()
    assert rows == pytest.approx(300 / 90) and tokens == 0


def test_samples_closer_than_a_second_replace_each_other():
    window = RateWindow(span_s=60, sample_s=1)
    for k in range(1000):  # a tick per row: memory stays bounded
        window.add(k * 0.01, k, 0)
    assert len(window._samples) <= 12
    assert window.rates()[0] == pytest.approx(100.0)


def test_no_rate_before_two_samples_apart():
    window = RateWindow()
    assert window.rates() == (0.0, 0.0)
    window.add(5, 10, 0)
    assert window.rates() == (0.0, 0.0)


def _snapshot(**kw) -> Snapshot:
    values = dict(step="teacher_responses", label="BMMR", total=20_000,
                  counts=Counts(done=1_200, tokens=1, in_flight=64, cache_hits=12, failed=3, reasked=2),
                  rows_per_s=31.0, tokens_per_s=18_400.0, elapsed_s=40.0, event="line")
    values.update(kw)
    return Snapshot(**values)


def test_the_line_says_rows_rates_counts_and_eta():
    assert _snapshot().line() == (
        "teacher_responses BMMR: 1,200 / 20,000 rows (6%), 31 rows/s, 18,400 tok/s, 64 in flight, "
        "12 cache hits, 3 failed, 2 re-asked, ETA 10m06s")
    assert _snapshot().eta_s == pytest.approx(18_800 / 31)


def test_a_cpu_stage_line_leaves_out_what_it_does_not_have():
    line = _snapshot(step="collected", counts=Counts(done=512), total=None, rows_per_s=250.0).line()
    assert line == "collected BMMR: 512 rows, 250 rows/s, ETA unknown (rows to do not known)"


def test_no_eta_without_a_recent_row_and_done_at_the_end():
    assert _snapshot(rows_per_s=0.0).line().endswith("ETA unknown (no row finished in the last minute)")
    assert _snapshot(event="end", elapsed_s=3725).line().endswith("2 re-asked, done in 1h02m")
    assert _snapshot(total=0, counts=Counts(done=0)).line().startswith("teacher_responses BMMR: 0 / 0 rows (100%)")


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45.4, "45s"), (605, "10m05s"), (7380, "2h03m"),
                                           (273600, "3d04h")])
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("value, text", [(18_400.2, "18,400"), (31.4, "31"), (2.46, "2.5"), (0.042, "0.04")])
def test_rate(value, text):
    assert rate(value) == text


def test_the_reporter_logs_a_line_per_interval_and_samples_each_second():
    clock, lines, seen = Clock(), [], []
    done = {"rows": 0}
    with listening(seen.append):
        reporter = Reporter("answer_verdicts", "S", 1000, lines.append, clock=clock, interval_s=10,
                            sample=lambda: Counts(done=done["rows"], tokens=done["rows"] * 50))
        for second in range(1, 26):
            clock.now += 1
            done["rows"] += 20
            for _ in range(5):  # ticks in between cost a clock read and nothing else
                reporter.tick()
        reporter.finish()
        reporter.finish()  # once
    assert lines == [
        "answer_verdicts S: 200 / 1,000 rows (20%), 20 rows/s, 1,000 tok/s, ETA 40s",
        "answer_verdicts S: 400 / 1,000 rows (40%), 20 rows/s, 1,000 tok/s, ETA 30s",
    ]
    events = [s.event for s in seen]
    assert events[0] == "start" and events[-1] == "end" and events.count("end") == 1
    assert events.count("line") == 2 and len(events) == 27  # start, 25 samples, end


def test_a_step_waiting_on_its_endpoint_still_reports():
    """The session's heartbeat ticks while the caller waits: lines keep coming without rows."""
    clock, lines = Clock(), []
    reporter = Reporter("teacher_responses", "S", 10, lines.append, clock=clock, interval_s=5)
    for _ in range(12):
        clock.now += 1
        reporter.tick()
    assert len(lines) == 2 and all("ETA unknown" in line for line in lines)


def test_mmfr_run_prints_the_lines_when_stdout_is_not_a_terminal():
    out = io.StringIO()
    with showing_progress(out):
        for event in ("start", "sample", "line", "end"):
            progress._listeners[-1](_snapshot(event=event))
    assert out.getvalue().splitlines() == [_snapshot().line()]


def test_mmfr_run_draws_a_bar_per_running_step():
    from rich.console import Console

    bars = Bars(Console(file=io.StringIO(), force_terminal=True))
    bars(_snapshot(event="start", counts=Counts(done=0)))
    bars(_snapshot(step="collected", event="start", counts=Counts(done=0), total=None))
    bars(_snapshot())
    [teacher, collected] = bars.progress.tasks
    assert teacher.completed == 1_200 and teacher.total == 20_000 and collected.total is None
    assert teacher.fields["detail"] == detail_of(_snapshot()) and detail_of(_snapshot()).startswith("31 rows/s")
    bars(_snapshot(event="end"))
    assert [t.description for t in bars.progress.tasks] == ["collected BMMR"]
    assert Lines  # the other view: see the test above


# -- a model step through Dagster, against the fake server ---------------------------------

@pytest.mark.process
def test_a_model_step_logs_progress_to_its_run_while_it_runs(fake_llm, tmp_path, monkeypatch):
    import dagster as dg
    import polars as pl
    import pyarrow as pa

    from mmfr_assets.lake.resource import LakeResource
    from mmfr_assets.llm.resource import LLMCache, endpoint_resources_from_env
    from mmfr_assets.model_step.asset import model_step_asset
    from mmfr_assets.stage import Verdicts, run_stage
    from mmfr_assets_tests.test_model_step import EchoStep

    class SlowEcho(EchoStep):
        asset = "slow_echo"
        prompt = "answer_extraction"  # a prompt file the loader has

        def __init__(self, config=None):
            super().__init__()

    monkeypatch.setattr(progress, "INTERVAL_S", 0.5)
    monkeypatch.setattr(progress, "SAMPLE_S", 0.1)
    fake_llm.configure(latency_s=0.1)  # 4 in flight: ~40 rows/s, 160 rows in ~4 s
    n = 160
    lake = LakeResource(uri=str(tmp_path / "lake"))
    frame = pl.DataFrame({"subset": ["S"] * n, "id": [f"r{i:04d}" for i in range(n)],
                          "question": [f"q{i}" for i in range(n)]})
    run_stage(lake, stage="cleaned", subset="S", batches=[frame], decide=Verdicts.no_drops,
              schema=pa.schema([("subset", pa.string()), ("id", pa.string()), ("question", pa.string())]))
    endpoint = endpoint_resources_from_env({"MMFR_ANSWER_LLM_BASE_URL": fake_llm.url,
                                            "MMFR_ANSWER_LLM_MAX_CONCURRENCY": "4"})["answer_llm"]
    asset = model_step_asset(SlowEcho, dg.StaticPartitionsDefinition(["S"]), group="test")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset], partition_key="S", instance=instance,
        resources={"lake": lake, "llm_cache": LLMCache(location=str(tmp_path / "c.sqlite")),
                   "answer_llm": endpoint},
    )
    assert result.success
    records = instance.all_logs(result.run_id)
    ended = next(i for i, r in enumerate(records)
                 if r.dagster_event is not None and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION")
    lines = [(i, r.user_message) for i, r in enumerate(records)
             if r.user_message.startswith("slow_echo S: ") and " rows (" in r.user_message]
    during = [(i, m) for i, m in lines if i < ended]
    assert len(during) >= 3, lines  # several lines, all before the step's end
    done = [int(m.split(": ", 1)[1].split(" / ")[0].replace(",", "")) for _, m in during]
    assert done == sorted(done) and done[0] < n, during
    for _, message in during:
        assert f" / {n} rows (" in message and " rows/s, " in message and " tok/s, " in message
        assert " in flight, " in message and " failed, " in message and ", ETA " in message
    assert any(", ETA " in m and "unknown" not in m.split(", ETA ")[1] for _, m in during)


def test_a_cpu_stage_reports_the_rows_it_has_read_after_each_batch(tmp_path):
    import polars as pl
    import pyarrow as pa

    from mmfr_assets.lake.resource import LakeResource
    from mmfr_assets.stage import Verdicts, run_stage

    clock, lines, seen = Clock(), [], []

    def batches():
        for k in range(6):
            clock.now += 5  # each batch takes 5 s
            yield pl.DataFrame({"subset": ["S"] * 100, "id": [f"{k}-{i}" for i in range(100)]})

    with listening(seen.append):
        reporter = Reporter("collected", "S", 600, lines.append, clock=clock, interval_s=10)
        run_stage(LakeResource(uri=str(tmp_path / "lake")), stage="collected", subset="S", batches=batches(),
                  decide=Verdicts.no_drops, schema=pa.schema([("subset", pa.string()), ("id", pa.string())]),
                  progress=reporter)
    assert lines == ["collected S: 200 / 600 rows (33%), 20 rows/s, ETA 20s",
                     "collected S: 400 / 600 rows (67%), 20 rows/s, ETA 10s",
                     "collected S: 600 / 600 rows (100%), 20 rows/s, ETA 0s"]
    assert seen[-1].event == "end" and seen[-1].counts.done == 600  # run_stage finished it
