"""`python -m bench` (`make bench`): generate large partitions, materialize them, measure.

    python -m bench            # full run: 20K and 200K-row partitions (~20 min on 2 cores)
    python -m bench --quick    # smoke run: 300 and 1,200 rows (~2 min)
    python -m bench --only model_step [--quick]   # one section (model_step, shards, verify, export, dedup, rehearsal, rehearsal_backfill, run_overhead or lake_log), spliced into the results file
    python -m bench --only rehearsal_backfill [--quick] [--rows N] [--subsets K] [--timeout S]
                               # the whole graph through webserver + daemon + one backfill (needs MMFR_TEST_POSTGRES_URL)

Everything generated goes under `--out` (default `bench/out/`, git-ignored) and is deleted at
the end unless `--keep`; the figures are written to `--results` (default `bench/RESULTS.md` for
a full run, `bench/out/RESULTS-quick.md` for a quick one) and printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    dedup, images, lake_log, llm_client, machine, model_step, quality, rehearsal, rehearsal_backfill, run_overhead, shards,
    verify,
)
from bench import export as export_bench
from bench.data import SourceSpec, write_source
from bench.lake import Lake

HERE = Path(__file__).resolve().parent
ROWS_2_3M = 2_300_000
NOTES = """## Where the time goes (how ours was made fast)

Profiling `quality_reason` on 1,024 rows of 2,000-word traces (~10 MB of text) before this
work: 1.27 s per batch (~970 rows/s, slower than the baseline on two processes): 0.78 s in the
repetition rule (`str.extract_all` of every word, `explode`, a `group_by` over ~2M
(row, window) pairs) and 0.07 s in each regex word count. Now (`mmfr_assets/rules/words.py`):

- one compiled pass (numba, `nogil`, split over the cores by a thread pool) reads each
  response's UTF-8 bytes straight from the Arrow buffers Polars holds (string views: no copy)
  and yields the `str.split()` word count, blankness as `strip_chars()` sees it, the think and
  answer tags (counts, first positions, alternation, a pair outside the think block) and, inside
  the think block, the hashed 50-word windows (FNV-1a per word, polynomial rolling hash per
  window, an open-addressing table per row, stopping at the first window hashed 3 times);
- a flagged row is confirmed exactly by counting the real occurrences of the flagged window
  (falling back to the published `Counter` on a hash collision), so the hash can never change a
  decision; captions go through a word-count kernel, `[ERROR]` through Polars' literal search.
- the text stages read their upstream through `upstream_batches`, which regroups the 256-row
  parquet row groups written by the image stages into 1,024-row batches: the ~15 µs/row of
  per-batch overhead (Polars `select`, Arrow views, the thread pool hand-off) measured on
  256-row batches is amortised four times better (runs on this machine before that change:
  15–20× the baseline; after: 23–24×).

The rules are unchanged: `mmfr_assets_tests/test_selection.py` compares them with a row-by-row
reading of the published rules on real and randomized rows, and this benchmark asserts the same
kept ids as the baseline and the planned reason of every generated row.
"""


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--small", type=int, help="rows of the small partition (default 20000)")
    ap.add_argument("--large", type=int, help="rows of the large partition (default 200000)")
    ap.add_argument("--trace-words", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=384, help="longest edge of normal figures")
    ap.add_argument("--fault-rate", type=float, default=0.03)
    ap.add_argument("--photos", type=int, help="4000x3000 photos for the image benchmark (default 8)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generator processes")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--results", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the generated data and lake")
    ap.add_argument("--only", choices=["model_step", "shards", "verify", "export", "dedup", "rehearsal", "rehearsal_backfill",
                                       "run_overhead", "lake_log"],
                    help="run one section and replace it in the results file (the rest is kept)")
    ap.add_argument("--repeats", type=int, help="model_step: runs per case (default 2, 1 with --quick)")
    ap.add_argument("--rows", type=int, help="rehearsal_backfill: source rows (default 10,000; 1,000 with --quick)")
    ap.add_argument("--subsets", type=int, help="rehearsal_backfill: the first K subsets of the plan (default all 22)")
    ap.add_argument("--timeout", type=float, help="rehearsal_backfill: stop waiting after S seconds, cancel the "
                    "backfill and record what ran")
    a = ap.parse_args(argv)
    a.small = a.small or (300 if a.quick else 20_000)
    a.large = a.large or (1_200 if a.quick else 200_000)
    a.photos = a.photos or (2 if a.quick else 8)
    a.results = a.results or (a.out / "RESULTS-quick.md" if a.quick else HERE / "RESULTS.md")
    return a


def model_step_section(args, log) -> list[str]:
    """The model-step benchmark (its own small lake under `--out`), rendered."""
    root = args.out / "model_step"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        result = model_step.run(root, quick=args.quick, repeats=args.repeats, log=log)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return model_step.render(result, repeats=args.repeats or (1 if args.quick else 2))


def shards_section(args, log) -> list[str]:
    """One subset over 1 and 4 step processes, 1 and 4 endpoints (its own small lake), rendered."""
    root = args.out / "shards"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        return shards.render(shards.run(root, quick=args.quick, log=log))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def verify_section(args, log) -> list[str]:
    """The answer-verification benchmark, rendered."""
    return verify.run(300 if args.quick else 20_000, 110 if args.quick else 2_000, log=log)


def export_section(args, log) -> list[str]:
    """The training-export benchmark (100,000 rows and 10,000; its own lake under `--out`)."""
    rows, distinct = (3_000, 300) if args.quick else (100_000, 10_000)
    try:
        return export_bench.run(args.out / "export", rows, 800, distinct, log=log)
    finally:
        shutil.rmtree(args.out / "export", ignore_errors=True)


def dedup_section(args, log) -> list[str]:
    """The near-duplicate benchmark (generated signature tables under `--out`), rendered."""
    real = Path(os.environ.get("MMFR_REAL_SAMPLE", HERE.parent.parent / "shared" / "real_sample"))
    return dedup.run(args.out, quick=args.quick, real_sample=real, log=log)


def _on_real_sample(args, name: str, run: Callable[[Path, Path], list[str]]) -> list[str]:
    """`run(out, real_sample)` with its own folder `name` under `--out`, removed after unless `--keep`."""
    real = Path(os.environ.get("MMFR_REAL_SAMPLE", HERE.parent.parent / "shared" / "real_sample"))
    try:
        return run(args.out / name, real)
    finally:
        if not args.keep:
            shutil.rmtree(args.out / name, ignore_errors=True)


def rehearsal_section(args, log) -> list[str]:
    """The recipe at scale: a 22-subset source grown from the real rows, the whole CPU graph as
    `mmfr run` runs it, and one templated subset at 1x and 5x (its own lakes under `--out`)."""
    return _on_real_sample(args, "rehearsal", lambda out, real: rehearsal.render(
        rehearsal.run(out, real, quick=args.quick, log=log)))


def rehearsal_backfill_section(args, log) -> list[str]:
    """The whole graph through webserver + daemon + one UI-style backfill over every subset, on
    PostgreSQL, the S3 lake, shards and fake endpoints for every role (its own folder under `--out`)."""
    return _on_real_sample(args, "rehearsal_backfill", lambda out, real: rehearsal_backfill.render(
        rehearsal_backfill.run(out, real, quick=args.quick, rows=args.rows, subsets=args.subsets,
                               timeout_s=args.timeout, log=log)))


def lake_log_section(args, log) -> list[str]:
    """Opening and counting a Delta table on S3: checkpoints every 10 vs 100 commits, counts from
    the log vs through the files (its own S3 server, under `--out`)."""
    return lake_log.render(lake_log.run(args.out / "lake_log", quick=args.quick, log=log))


def run_overhead_section(args, log) -> list[str]:
    """`mmfr run` with MMFR_SHARDS=4 vs unsharded, runs one after another vs side by side."""
    return _on_real_sample(args, "run_overhead", lambda out, real: run_overhead.render(
        run_overhead.run(out, real, quick=args.quick, log=log)))


SECTIONS = {"model_step": model_step_section, "shards": shards_section, "verify": verify_section, "export": export_section,
            "dedup": dedup_section, "rehearsal": rehearsal_section, "rehearsal_backfill": rehearsal_backfill_section,
            "run_overhead": run_overhead_section, "lake_log": lake_log_section}


def splice(text: str, section: list[str]) -> str:
    """`text` with the section under `section`'s heading replaced by it (appended if absent)."""
    lines = text.splitlines()
    heading = section[0]
    start = next((i for i, line in enumerate(lines) if line == heading), None)
    if start is None:
        return "\n".join([*lines, "", *section]) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join([*lines[:start], *section, *([""] + lines[end:] if end < len(lines) else [])]) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A bench stopped with SIGTERM (kill, a CI timeout) unwinds like Ctrl-C: its servers (the
    # rehearsal's daemon, webserver, code server, S3 and endpoint servers, each in its own
    # session) are stopped by their context managers instead of being left running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.only:
        log = lambda *a: print(*a, flush=True)  # noqa: E731
        args.out.mkdir(parents=True, exist_ok=True)
        section = SECTIONS[args.only](args, log)
        previous = args.results.read_text() if args.results.exists() else "# Benchmarks\n"
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(splice(previous, section))
        print("\n".join(section))
        print(f"wrote {args.results}")
        return 0
    started = time.perf_counter()
    info = machine.describe()
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    print(f"{command}: {info['cpus (nproc)']} cpus, {info['cpu model']}, {info['ram']}", flush=True)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    small, large = f"bmmr-{args.small}", f"bmmr-{args.large}"
    spec = SourceSpec(
        subsets={small: args.small, large: args.large},
        trace_words=args.trace_words,
        fault_rate=args.fault_rate,
        image_size=args.image_size,
    )
    try:
        t = time.perf_counter()
        source = write_source(args.out / "source", spec, workers=args.workers, log=log)
        generation = time.perf_counter() - t
        lake = Lake(args.out, source)
        shutil.rmtree(lake.lake, ignore_errors=True)
        dedup = lake.between("cleaned", "deduplicated")  # signatures + the cross-subset step
        distillation = lake.between("deduplicated", "distilled")
        runs: dict[tuple[str, str], object] = {}
        for partition in (small, large):
            for name, step, measure in (("collected", "collected", False), ("cleaned", "cleaned", True),
                                        ("dedup", dedup, True), ("distillation", distillation, False),
                                        # the verdicts quality_filtered joins (the published labels
                                        # kept, rules for the agreement figures): not timed here
                                        ("answer_verdicts", "answer_verdicts", False),
                                        ("quality_filtered", "quality_filtered", True)):
                run = lake.materialize(step, partition, measure=measure)
                runs[(name, partition)] = run
                rss = f", peak RSS {run.max_rss_mb:,.0f} MB" if run.max_rss_mb else ""
                log(f"materialized {name} / {partition}: {run.seconds:.1f} s{rss}")

        # quality_filtered compute: ours on both partitions, the baseline on the small one.
        lake_uri = str(lake.lake)
        ours_small = [quality.ours(lake_uri, small) for _ in range(3)]
        ours_small.sort(key=lambda p: p.seconds)
        ours_small_median = ours_small[1]
        ours_large = quality.ours(lake_uri, large)
        log(f"ours over {large}: {ours_large.rows} rows, {_fmt_rate(ours_large.rows_per_second)} rows/s")
        exported = args.out / "baseline_input.parquet"
        quality.export_rows(lake_uri, small, exported)
        base = quality.baseline(exported, args.out / "hf_cache")
        log(f"baseline over {small}: {base.rows} rows, {_fmt_rate(base.rows_per_second)} rows/s")
        assert base.rows == ours_small_median.rows, (base.rows, ours_small_median.rows)
        assert base.kept == ours_small_median.kept, (
            f"kept rows differ: {len(base.kept - ours_small_median.kept)} only in the baseline, "
            f"{len(ours_small_median.kept - base.kept)} only in ours"
        )
        mismatches = quality.plan_mismatches(ours_large, large, spec.plan_kwargs(large))
        assert not mismatches, f"ours disagrees with the generator's plan: {mismatches[:5]}"

        photos = images.run(args.photos, log=log)
        client = llm_client.run(latency=0.2, waves=5 if args.quick else 50)
        steps = model_step_section(args, log)
        report = render(
            args, info, command, spec, generation, runs, ours_small_median, ours_large, base,
            photos, time.perf_counter() - started,
        )
        report += "\n## LLM client: async bounded concurrency vs one request at a time\n\n"
        report += "\n".join(client) + "\n"
        report += "\n" + "\n".join(verify_section(args, log)) + "\n"
        report += "\n" + "\n".join(steps) + "\n"
        report += "\n" + "\n".join(shards_section(args, log)) + "\n"
        report += "\n" + "\n".join(export_section(args, log)) + "\n"
        report += "\n" + "\n".join(dedup_section(args, log)) + "\n"
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(report)
        print(report)
        print(f"wrote {args.results}")
    finally:
        if not args.keep:
            for child in ("source", "source.tmp", "lake", "dagster_home", "logs", "hf_cache",
                          "baseline_input.parquet"):
                path = args.out / child
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()
    return 0


def _row(label, p, base, bold=False) -> str:
    ratio = p.rows_per_second / base.rows_per_second
    cpu_ratio = p.rows_per_cpu_second / base.rows_per_cpu_second
    b = "**" if bold else ""
    return (
        f"| {label} | {p.rows:,} | {p.seconds:.2f} | {_fmt_rate(p.rows_per_second)} | "
        f"{b}{ratio:.1f}×{b} | {p.cpu_seconds:.2f} | {_fmt_rate(p.rows_per_cpu_second)} | "
        f"{cpu_ratio:.1f}× |"
    )


def _goal(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render(args, info, command, spec, generation, runs, ours_small, ours_large, base, photos,
           total) -> str:
    small, large = list(spec.subsets)
    ratio = ours_small.rows_per_second / base.rows_per_second
    ratio_large = ours_large.rows_per_second / base.rows_per_second
    q_small, q_large = runs[("quality_filtered", small)], runs[("quality_filtered", large)]
    c_small, c_large = runs[("cleaned", small)], runs[("cleaned", large)]
    lines = [
        "# Benchmarks" + (" (quick smoke run: too small to judge the goals)" if args.quick else ""),
        "",
        f"Command: `{command}` (`make bench` runs `python -m bench`). Total wall time: "
        f"{_duration(total)}, of which generating the source {_duration(generation)}.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in info.items()),
        f"| load average at the end | {machine.load_text()} |",
        "",
        "The machine is shared: other processes may run during a benchmark (see the load average), "
        "so rates move by ~±20% from run to run; ratios are measured side by side in one run.",
        "",
        "## Data",
        "",
        f"One hub-layout source generated by `bench/data.py` with the rows of "
        f"`mmfr_devkit.sample.write_sample(rows_per_subset=N, trace_words={spec.trace_words}, "
        f"fault_rate={spec.fault_rate}, image_size={spec.image_size})` (sharded over "
        f"{args.workers} processes): two subsets, `{small}` ({spec.subsets[small]:,} rows) and "
        f"`{large}` ({spec.subsets[large]:,} rows). Traces are ~{spec.trace_words:,} words "
        f"(~10 KB), captions 115-285 words; normal images are drawn figures with a longest edge "
        f"of {spec.image_size} px (75% JPEG, 25% PNG); {spec.fault_rate:.0%} of rows carry one "
        f"fault or repair each (every quality, cleaning and difficulty reason, plus 4000 px JPEG/PNG "
        f"images, palette/alpha/CMYK modes, EXIF rotations, corrupt images and decompression "
        f"bombs). Each partition was materialized with `dagster asset materialize --select <asset> "
        f"--partition <P> -m mmfr_assets.definitions` (in-process executor) with MMFR_SOURCE, "
        f"MMFR_LAKE and DAGSTER_HOME set.",
        "",
        "## quality_filtered: compute, ours vs the published way",
        "",
        "Baseline: `bench/baseline.py`, the published rules written the published way: "
        "`datasets.Dataset.from_parquet(...).filter(keep, num_proc=2)`, one Python call per whole "
        "example, repetition by a `Counter` over 50-word tuples (only `.filter` is timed). "
        "Ours: `select_quality` (the asset's batch function) over the materialized `distilled` "
        "partition read in the asset's 1,024-row batches (only the calls are timed; median of 3 "
        "passes). Same rows, same 2 cores; the benchmark asserts the kept ids are the same set, "
        "and that every row of the large partition gets exactly the drop reason the generator "
        "planned for it.",
        "",
        "| | rows | wall s | rows/s | vs baseline | CPU s | rows per CPU-second | vs baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _row(f"baseline, `{small}`", base, base),
        _row(f"ours, `{small}` (same rows)", ours_small, base, bold=True),
        _row(f"ours, `{large}`", ours_large, base),
        "",
        "CPU time is that of the filter's process and threads (and, for the baseline, its worker "
        "processes, including their start-up, as every `filter(num_proc=2)` call pays it): unlike "
        "wall time it barely moves when other processes share the cores.",
        "",
        f"Kept: {len(base.kept):,} of {base.rows:,} rows in both (sets equal). Reading the "
        f"partition (parquet → Arrow → Polars) took another {ours_large.other_seconds:.1f} s for "
        f"{ours_large.rows:,} rows; loading the baseline's dataset {base.other_seconds:.1f} s.",
        "",
        "Projected for 2.3M rows (the published dataset) on this machine:",
        "",
        "| | time for 2.3M rows |",
        "| --- | ---: |",
        f"| baseline compute (`datasets.filter`) | {_duration(ROWS_2_3M / base.rows_per_second)} |",
        f"| ours compute (`select_quality`) | {_duration(ROWS_2_3M / ours_large.rows_per_second)} |",
        f"| ours, whole `quality_filtered` materialization (read, compute, write kept rows and "
        f"rejections, commit; at the {large} rate) | "
        f"{_duration(ROWS_2_3M * q_large.seconds / spec.subsets[large])} |",
        "",
        f"Goal ≥ 20× the baseline's rows/s: {_goal(ratio >= 20)} ({ratio:.1f}× on the same rows, "
        f"{ratio_large:.1f}× at {spec.subsets[large]:,} rows; per CPU-second "
        f"{ours_small.rows_per_cpu_second / base.rows_per_cpu_second:.1f}×).",
        "",
        "## Materialization: wall time and peak memory",
        "",
        "Peak RSS of the `dagster asset materialize` process (in-process executor: the process "
        "that runs the asset), from `/usr/bin/time -v`. It includes the Dagster CLI itself "
        "(loading the code location: ~0.45 GB), and each wall time its start-up (~5 s).",
        "",
        "| asset | partition rows | wall time | rows/s | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("collected", "cleaned", "dedup", "distillation", "quality_filtered"):
        for p in (small, large):
            run = runs[(name, p)]
            rss = f"{run.max_rss_mb:,.0f} MB" if run.max_rss_mb else "(not measured)"
            label = {"distillation": "teachers + distilled",
                     "dedup": "dedup_signatures + deduplicated"}.get(name, name)
            lines.append(
                f"| {label} | {spec.subsets[p]:,} | {run.seconds:.1f} s | "
                f"{_fmt_rate(spec.subsets[p] / run.seconds)} | {rss} |"
            )
    q_ratio, c_ratio = q_large.max_rss_mb / q_small.max_rss_mb, c_large.max_rss_mb / c_small.max_rss_mb
    lines += [
        "",
        f"Goal: the large partition's peak within 1.5× the small one's, and under 2 GB: "
        f"quality_filtered {q_ratio:.2f}× ({q_large.max_rss_mb:,.0f} MB) "
        f"{_goal(q_ratio <= 1.5 and q_large.max_rss_mb < 2048)}; cleaned {c_ratio:.2f}× "
        f"({c_large.max_rss_mb:,.0f} MB) {_goal(c_ratio <= 1.5 and c_large.max_rss_mb < 2048)}.",
        "",
        "## Images: cleaning large photos, ours vs the naive path",
        "",
        "Photo-like JPEGs (smooth colour fields, shapes with edges, sensor-like noise; quality 90). "
        "Naive: what `datasets` does with a PIL image (open, convert to RGB, LANCZOS resize to a "
        "2048 px longest edge, re-encode as PNG). Ours: `clean_image` (reduced-scale JPEG decoding "
        "where the scale allows it, LANCZOS, JPEG q95 for JPEG sources; unchanged images are "
        "decoded to prove them readable but not re-encoded) and `clean_batch`, the asset's batch "
        "function, with its thread pool (one thread per core). PSNR compares ours with the naive "
        "output at the same size.",
        "",
        "| photos | n | naive, 1 thread | naive, 2 threads | ours, 1 thread | ours, `clean_batch` (pool) | ours/naive per thread | `clean_batch`/naive | min PSNR | same size |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in photos:
        lines.append(
            f"| {s.name} | {s.images} | {s.per_second(s.naive_seconds):.2f}/s | "
            f"{s.per_second(s.naive_pool_seconds):.2f}/s | {s.per_second(s.ours_seconds):.2f}/s | "
            f"{s.per_second(s.ours_batch_seconds):.2f}/s | {s.naive_seconds / s.ours_seconds:.1f}× | "
            f"**{s.naive_seconds / s.ours_batch_seconds:.1f}×** | "
            f"{'identical' if s.min_psnr == float('inf') else f'{s.min_psnr:.1f} dB'} | "
            f"{'yes' if s.sizes_equal else 'NO'} |"
        )
    big = photos[0]
    speedup = big.naive_seconds / big.ours_batch_seconds
    lines += [
        "",
        f"Goal ≥ 4× on large photos (`clean_batch` vs the naive path, as `datasets.map` runs it "
        f"on one thread): {_goal(speedup >= 4)} ({speedup:.1f}×; per thread "
        f"{big.naive_seconds / big.ours_seconds:.1f}×, and "
        f"{big.naive_pool_seconds / big.ours_batch_seconds:.1f}× against the naive path on the "
        f"same thread pool). Quality: PSNR ≥ 30 dB "
        f"{_goal(big.min_psnr >= 30 and big.sizes_equal)} ({big.min_psnr:.1f} dB, sizes equal: "
        f"{big.sizes_equal}).",
        "",
        NOTES,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
