"""The recipe at the paper's scale (issue 34), first part: a source of 22 subsets in the paper's
proportions grown from the real published rows, and the whole CPU graph run as a user runs it
(`mmfr run --subsets all --until quality_filtered`, no endpoints), measured: wall time per
stage, CPU seconds and peak RSS of the run process, lake bytes per 1,000 rows; then one
templated subset at 1x and 5x its rows, for the growth of the run process's peak memory.

    python -m bench --only rehearsal [--quick]      # ~115,000 rows (--quick: ~10,000)

Every row is its own problem: the real row's question numbered, its own image bytes (the real
figure with a comment chunk naming the row: the pixels, and so the perceptual hashes, are the
figure's, as a templated family's are), its trace stretched to a length drawn from the real
distribution (lognormal, median 910 words, p90 3,428) with a running step number so that no
50-word window repeats, and the real caption, reference, label and pass rate. A share of rows
plant near-duplicates of rows of other subsets (the question reworded, the figure re-encoded);
a share have their annotations removed (with no endpoints they are left for the teachers, and
their drops say so). Then the six model roles against fake endpoints with per-role faults
(`bench/rehearsal_endpoints.py`). The daemon's backfill over shards, on PostgreSQL and the object
store, is its own section: `bench/rehearsal_backfill.py` (`--only rehearsal_backfill`).
"""

from __future__ import annotations

import math
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench import machine

#: (subset, category, share of the rows, the real subset its rows are grown from). The paper's
#: split (79.4% mathematics, 13.8% science, 4.6% puzzles, 2.2% general), within a category a
#: few large sources and many small ones; names after the published subsets.
PLAN: tuple[tuple[str, str, float, str], ...] = (
    ("MMR1", "math", 0.200, "WeMath2-Pro"),  # the sample's MMR1 rows have no image: see mmopenr1-8k
    ("WaltonColdStart", "math", 0.160, "ViRL39K"),
    ("FineVision-geo170k(qa)", "math", 0.120, "FineVision-geo170k(qa)"),
    ("ViRL39K", "math", 0.080, "ViRL39K"),
    ("Euclid30K", "math", 0.060, "Euclid30K"),
    ("WeMath2-Pro", "math", 0.050, "WeMath2-Pro"),
    ("FineVision-geometry3k(mathv360k)", "math", 0.040, "FineVision-geo170k(qa)"),
    ("FineVision-unigeo", "math", 0.030, "Euclid30K"),
    ("WeMath2-Standard", "math", 0.024, "WeMath2-Pro"),
    ("mmopenr1-8k", "math", 0.015, "MMR1"),  # rows without an image, which cleaning drops
    ("FineVision-geos(mathv360k)", "math", 0.010, "FineVision-geo170k(qa)"),
    ("WeMath2-SFT", "math", 0.005, "WeMath2-Pro"),
    ("BMMR", "science", 0.070, "BMMR"),
    ("FineVision-ai2d_merged", "science", 0.035, "FineVision-ai2d_merged"),
    ("Zebra-CoT-Physics", "science", 0.018, "Zebra-CoT-Physics"),
    ("FineVision-scienceqa", "science", 0.010, "FineVision-ai2d_merged"),
    ("TQA", "science", 0.005, "BMMR"),
    ("GameQA-140K", "puzzle", 0.030, "GameQA-140K"),
    ("FineVision-raven", "puzzle", 0.010, "FineVision-raven"),
    ("Zebra-CoT-visual-logic", "puzzle", 0.006, "GameQA-140K"),
    ("LLaVA-CoT", "general", 0.015, "LLaVA-CoT"),
    ("FineVision-visualwebinstruct(filtered)", "general", 0.007, "LLaVA-CoT"),
)
CATEGORY_SHARES = {"math": 0.794, "science": 0.138, "puzzle": 0.046, "general": 0.022}
TRACE_MEDIAN_WORDS, TRACE_P90_WORDS = 910, 3428
TRACE_SIGMA = math.log(TRACE_P90_WORDS / TRACE_MEDIAN_WORDS) / 1.2816  # z of the 90th percentile
STEP_EVERY = 30  # a running step number every this many words: no 50-word window repeats
CHUNK_ROWS = 256


@dataclass
class SourceSpec:
    total_rows: int
    duplicate_share: float = 0.02
    unannotated_share: float = 0.05
    seed: int = 0

    def rows_of(self, plan=PLAN) -> dict[str, int]:
        return {name: max(20, round(self.total_rows * share)) for name, _, share, _ in plan}


def trace_words(rng: random.Random) -> int:
    """A trace length from the real distribution: lognormal, median 910 words, p90 3,428."""
    return max(60, int(round(rng.lognormvariate(math.log(TRACE_MEDIAN_WORDS), TRACE_SIGMA))))


def stretch_trace(trace: str | None, words: int) -> str | None:
    """`trace` with its think block grown or cut to `words` words (its own words cycled, a
    running `[k]` every STEP_EVERY words so that no 50-word window repeats, as the repetition
    rule would otherwise drop it), its text after `</think>` (the final answer) kept."""
    if trace is None or "</think>" not in trace:
        return trace
    head, tail = trace.split("</think>", 1)
    body = head.split("<think>", 1)[-1].split()
    if not body:
        return trace
    out: list[str] = []
    for i in range(words):
        out.append(body[i % len(body)])
        if i % STEP_EVERY == STEP_EVERY - 1:
            out.append(f"[{i // STEP_EVERY}]")
    return "<think>" + " ".join(out) + "</think>" + tail


def tag_image(data: bytes | None, label: str) -> bytes | None:
    """The figure's bytes with a comment naming the row (a PNG tEXt chunk after IHDR, a JPEG
    COM segment after SOI): the pixels, and so the perceptual hashes, are the figure's, the
    bytes the row's own (stored once each, as real rows' are)."""
    if not data:
        return data
    text = label.encode()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        first_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # length, type, data, CRC
        chunk = b"tEXtComment\x00" + text
        body = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
        return data[:first_end] + body + data[first_end:]
    if data.startswith(b"\xff\xd8"):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    return data


def write_source(real_sample: Path, out: Path, spec: SourceSpec, *, plan=PLAN, log=print) -> dict:
    """The grown source in hub layout (the published columns) under `out`; returns what was
    planted: {"rows": total, "duplicates": [(subset, id, of_subset, of_id)], "unannotated": n}."""
    from mmfr_assets_tests.paper_oracle import published_rows
    from mmfr_assets_tests.planted_duplicates import reencode, reword

    started = time.perf_counter()
    real = published_rows(real_sample)
    by_subset = {s: real.filter(real["subset"] == s).to_dicts() for s in real["subset"].unique().to_list()}
    schema = pq.read_schema(next((real_sample / "BMMR").glob("*.parquet"))).remove_metadata()
    rng = random.Random(spec.seed)
    planted: list[tuple[str, str, str, str]] = []
    earlier: list[tuple[str, dict]] = []  # rows of earlier subsets a duplicate may copy
    unannotated = 0
    sizes = spec.rows_of(plan)
    configs = []
    for name, _, _, base in plan:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = by_subset[base]
        writer = pq.ParquetWriter(folder / "train-00000-of-00001.parquet", schema, compression="snappy")
        chunk: list[dict] = []
        current: list[tuple[str, dict]] = []  # rows later subsets' duplicates may copy
        try:
            for k in range(sizes[name]):
                real_row = rows[k % len(rows)]
                row_id = k + 1
                if earlier and rng.random() < spec.duplicate_share:
                    of_subset, of = earlier[rng.randrange(len(earlier))]
                    question = reword(of["question"], random.Random(f"{name}/{row_id}"))
                    image = tag_image(reencode(of["image"], quality=80), f"{name}/{row_id}") if of["image"] else None
                    row = {**of, "question": question, "original_question": question,
                           "image": image, "id": row_id, "source": name}  # the same answer
                    planted.append((name, str(row_id), of_subset, str(of["id"])))
                else:
                    number = f"\n\n(Problem {row_id} of {name}.)"
                    row = {
                        "source": name, "id": row_id,
                        "original_question": real_row["original_question"] + number
                        if real_row["original_question"] else real_row["original_question"],
                        "original_answer": real_row["original_answer"],
                        "image": tag_image(real_row["image_bytes"], f"{name}/{row_id}"),
                        "question": real_row["question"] + number,
                        "answer": real_row["answer"],
                        "qwen3vl_235b_instruct_caption": real_row["qwen3vl_235b_instruct_caption"],
                        "qwen3vl_235b_thinking_response": stretch_trace(
                            real_row["qwen3vl_235b_thinking_response"], trace_words(rng)),
                        "qwen3vl_4b_pass_rate": real_row["qwen3vl_4b_pass_rate"],
                        "is_consistent": real_row["is_consistent"],
                        "consistency_analysis": real_row["consistency_analysis"],
                    }
                    if rng.random() < spec.unannotated_share:
                        unannotated += 1
                        row.update(qwen3vl_235b_instruct_caption=None, qwen3vl_235b_thinking_response=None,
                                   qwen3vl_4b_pass_rate=None, is_consistent=None, consistency_analysis=None)
                    if len(earlier) + len(current) < 2000 and rng.random() < 0.05:
                        current.append((name, row))
                chunk.append({**row, "image": {"bytes": row["image"], "path": None} if row["image"] else None})
                if len(chunk) == CHUNK_ROWS:
                    writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                    chunk = []
            if chunk:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
        finally:
            writer.close()
        configs.append(name)
        earlier += current
    card = "".join(f'- config_name: "{s}"\n  data_files:\n  - split: train\n    path: "{s}/*.parquet"\n'
                   for s in configs)
    (out / "README.md").write_text(f"---\nconfigs:\n{card}---\n\nRehearsal source (bench/rehearsal.py).\n")
    total = sum(sizes.values())
    log(f"rehearsal source: {total:,} rows in {len(configs)} subsets, {len(planted)} planted duplicates, "
        f"{unannotated} without annotations, in {time.perf_counter() - started:.0f} s")
    return {"rows": total, "sizes": sizes, "duplicates": planted, "unannotated": unannotated}


@dataclass
class RunMeasure:
    rows: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    exit_code: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    lake_bytes: dict[str, int] = field(default_factory=dict)
    output: str = ""
    between_steps: dict[str, float] = field(default_factory=dict)  # step -> MB kept after it
    step_peaks: dict[str, float] = field(default_factory=dict)  # step -> MB at most while it ran


def stage_seconds(windows: list[tuple[float, float, str]]) -> dict[str, float]:
    """Seconds each step ran, summed over its runs (`step_windows`)."""
    totals: dict[str, float] = defaultdict(float)
    for start, end, step in windows:
        totals[step] += end - start
    return dict(totals)


def lake_bytes(lake: Path) -> dict[str, int]:
    return {table.name: sum(f.stat().st_size for f in table.rglob("*") if f.is_file())
            for table in sorted(lake.iterdir()) if table.is_dir()} if lake.exists() else {}


def _rss_mb(pid: int) -> float | None:
    """The process's resident memory now (`/proc/<pid>/status` VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def step_windows(home: Path) -> list[tuple[float, float, str]]:
    """(start, end, step) of every step in the instance's runs, in time order."""
    import dagster as dg

    windows = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records():
            windows += run_step_windows(instance, record.dagster_run.run_id)
    return sorted(windows)


def run_step_windows(instance, run_id: str) -> list[tuple[float, float, str]]:
    """(start, end, step) of every step of one run, from its event log, in time order."""
    started: dict[str, float] = {}
    windows = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
            windows.append((started.pop(entry.step_key), entry.timestamp, entry.step_key))
    return sorted(windows)


def run_cli(root: Path, source: Path, rows: int, *, until: str = "quality_filtered", shards: int = 1,
            subsets: str = "all", log=print) -> RunMeasure:
    """`mmfr run --subsets all --until <until>` in a fresh process: its peak RSS and CPU seconds
    (`wait4`'s rusage of that process), and its resident memory sampled every 0.2 s, so the
    memory it keeps between steps (after each step's end) is seen, not only the peak."""
    import threading

    from bench.lake import Lake

    lake = Lake(root, source)
    env = {**lake.env(), "MMFR_SHARDS": str(shards)}
    command = [str(Path(sys.executable).with_name("mmfr")), "run", "--subsets", subsets, "--until", until]
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()
    with open(root / "mmfr-run.log", "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                rss = _rss_mb(process.pid)
                if rss is not None:
                    samples.append((time.time(), rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    output = (root / "mmfr-run.log").read_text(errors="replace")
    measure = RunMeasure(rows, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                         process.returncode, {}, lake_bytes(lake.lake), output[-8000:])
    windows = step_windows(lake.home)  # one pass over the instance's event logs
    measure.stage_seconds = stage_seconds(windows)
    measure.between_steps = _between_steps(samples, [(end, step) for _, end, step in windows])
    measure.step_peaks = _step_peaks(samples, windows)
    log(f"mmfr run --until {until} on {rows:,} rows (MMFR_SHARDS={shards}): exit {process.returncode}, "
        f"{seconds:.0f} s, {measure.cpu_seconds:.0f} CPU-s, peak RSS {measure.peak_rss_mb:,.0f} MB, "
        f"kept between steps up to {max(measure.between_steps.values(), default=0):,.0f} MB")
    if process.returncode != 0:
        raise RuntimeError(f"mmfr run failed (exit {process.returncode}):\n{measure.output}")
    return measure


def _step_peaks(samples: list[tuple[float, float]], windows: list[tuple[float, float, str]]) -> dict[str, float]:
    """Per step, the most resident memory sampled while it ran (the most over its runs)."""
    peaks: dict[str, float] = {}
    for start, end, step in windows:
        during = [rss for t, rss in samples if start <= t <= end]
        if during:
            peaks[step] = max(peaks.get(step, 0.0), max(during))
    return peaks


def _between_steps(samples: list[tuple[float, float]], ends: list[tuple[float, str]]) -> dict[str, float]:
    """Per step, the least resident memory sampled in the 2 s after its end (the largest over its
    ends, one per run): what the process keeps alive once the step is done and its garbage
    freed (the next step has barely started by then)."""
    kept: dict[str, float] = {}
    for at, step in ends:
        after = [rss for t, rss in samples if at <= t <= at + 2.0]
        if after:
            kept[step] = max(kept.get(step, 0.0), min(after))
    return kept


def templated_source(real_sample: Path, out: Path, rows: int) -> Path:
    """One subset of `rows` rows grown from the real rows: every row its own numbered problem over
    a figure it shares with its family (the templated-family case issue 34 measured)."""
    write_source(real_sample, out, SourceSpec(total_rows=rows, duplicate_share=0.0, unannotated_share=0.0),
                 plan=(("ScaleSet", "math", 1.0, "FineVision-geo170k(qa)"),), log=lambda *a: None)
    return out


def run(out: Path, real_sample: Path, *, quick: bool, total: int | None = None,
        templated: tuple[int, int] | None = None, log=print) -> dict:
    import shutil

    total = total or (10_000 if quick else 115_000)
    small, large = templated or ((2_000, 10_000) if quick else (20_000, 100_000))
    started, load = machine.now_utc(), machine.load_text()
    info = machine.describe()
    where = f"{info['cpus (nproc)']} cores ({info['cpu model']}), {info['ram']}"
    shutil.rmtree(out, ignore_errors=True)
    source = out / "source"
    planted = write_source(real_sample, source, SourceSpec(total_rows=total), log=log)
    whole = run_cli(out / "whole", source, planted["rows"], log=log)
    growth = {}
    for rows in (small, large):
        src = templated_source(real_sample, out / f"templated-{rows}" / "source", rows)
        growth[rows] = run_cli(out / f"templated-{rows}", src, rows, log=log)
    from bench import rehearsal_endpoints

    endpoints = rehearsal_endpoints.run(out / "endpoints", real_sample, quick=quick, log=log)
    return {"started": started, "load": load, "machine": where, "planted": planted, "whole": whole, "growth": growth,
            "quick": quick, "endpoints": endpoints}


def lake_table(sizes: dict[str, int], per_k: float, digits: int = 2) -> list[str]:
    """The lake's bytes per table per 1,000 rows, largest first, as Markdown lines."""
    return ["Lake bytes per table per 1,000 rows:", "", "| table | MB per 1,000 rows |", "| --- | ---: |",
            *[f"| {t} | {b / per_k / 1e6:,.{digits}f} |" for t, b in sorted(sizes.items(), key=lambda kv: -kv[1])]]


def render(result: dict) -> list[str]:
    whole: RunMeasure = result["whole"]
    growth: dict[int, RunMeasure] = result["growth"]
    small, large = sorted(growth)
    ratio = growth[large].peak_rss_mb / growth[small].peak_rss_mb
    per_k = whole.rows / 1000
    lines = [
        "## Rehearsal: the recipe at scale (issue 34, first part)",
        "",
        f"Measured {result['started']} on {result['machine']} (load {result['load']} at the start). "
        f"`python -m bench --only rehearsal{' --quick' if result['quick'] else ''}`: a source of "
        f"{whole.rows:,} rows in {len(PLAN)} subsets in the paper's proportions "
        f"({', '.join(f'{c} {s:.1%}' for c, s in CATEGORY_SHARES.items())}) grown from the real "
        f"sample (every row its own numbered problem, its own image bytes, traces of the real length "
        f"distribution), {len(result['planted']['duplicates'])} planted cross-subset near-duplicates, "
        f"{result['planted']['unannotated']} rows without annotations; `mmfr run --subsets all "
        f"--until quality_filtered`, no endpoints, one process (peak RSS and CPU from `getrusage`).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| wall time | {whole.seconds:,.0f} s |",
        f"| CPU seconds per 1,000 rows | {whole.cpu_seconds / per_k:,.1f} |",
        f"| peak RSS of the run process | {whole.peak_rss_mb:,.0f} MB |",
        f"| lake bytes per 1,000 rows | {sum(whole.lake_bytes.values()) / per_k / 1e6:,.1f} MB |",
        "",
        "Seconds per step (summed over the runs, one per subset):",
        "",
        "| step | seconds | per 1,000 rows |",
        "| --- | ---: | ---: |",
        *[f"| {step} | {s:,.0f} | {s / per_k:,.2f} |"
          for step, s in sorted(whole.stage_seconds.items(), key=lambda kv: -kv[1])],
        "",
        "Resident memory the run process keeps once a step is done (the least sampled in the 2 s "
        "after the step's end, the most over its runs): what stays alive between steps.",
        "",
        "| after step | MB |",
        "| --- | ---: |",
        *[f"| {step} | {mb:,.0f} |" for step, mb in sorted(whole.between_steps.items(), key=lambda kv: -kv[1])],
        "",
        *lake_table(whole.lake_bytes, per_k),
        "",
        f"Memory growth, one templated subset (every row its own problem over its family's figure): "
        f"`mmfr run --until quality_filtered` on {small:,} rows peaked at {growth[small].peak_rss_mb:,.0f} MB, "
        f"on {large:,} rows at {growth[large].peak_rss_mb:,.0f} MB: **{ratio:.2f}x** for 5x the rows "
        f"(goal <= 1.5x, and under 2,500 MB at 100,000 rows). Per step, the most resident memory "
        f"sampled while it ran:",
        "",
        f"| step | {small:,} rows, MB | {large:,} rows, MB | ratio |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {step} | {growth[small].step_peaks.get(step, 0):,.0f} | {mb:,.0f} | "
          f"{mb / growth[small].step_peaks[step]:.2f} |" if growth[small].step_peaks.get(step) else f"| {step} | - | {mb:,.0f} | - |"
          for step, mb in sorted(growth[large].step_peaks.items(), key=lambda kv: -kv[1])],
        "",
    ]
    if "endpoints" in result:
        from bench import rehearsal_endpoints

        lines += rehearsal_endpoints.render(result["endpoints"])
    return lines
