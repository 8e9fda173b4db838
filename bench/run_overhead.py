"""`mmfr run`'s run overhead with shards (issue 34): the real sample, `MMFR_SHARDS=4` against
unsharded, the runs one after another (`--max-concurrent-runs 1`, as `mmfr run` ran them before)
against side by side (`--max-concurrent-runs 4`, the repo instance's run queue limit). The four
cases run at once, so they see the same machine; each its own lake and instance.

    python -m bench --only run_overhead [--quick]     # --quick: 4 of the 11 subsets
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import machine
from bench.lake import Lake

CASES = ((1, 1), (4, 1), (1, 4), (4, 4))  # (shards, max concurrent runs)
QUICK_SUBSETS = "BMMR,Euclid30K,GameQA-140K,LLaVA-CoT"
RUNS_LINE = re.compile(r"^mmfr: launched (\d+) Dagster runs? .*? in (\d+) s; waited (\d+) s in all for a free run "
                       r"slot \(longest (\d+) s\), their steps (\d+) s", re.M)


def _case(root: Path, real_sample: Path, shards: int, runs: int, subsets: str, until: str) -> dict:
    lake = Lake(root / f"shards{shards}-runs{runs}", real_sample)
    command = [str(Path(sys.executable).with_name("mmfr")), "run", "--subsets", subsets, "--until", until,
               "--max-concurrent-runs", str(runs)]
    started = time.perf_counter()
    done = subprocess.run(command, env={**lake.env(), "MMFR_SHARDS": str(shards)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    match = RUNS_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"mmfr run (shards {shards}, runs {runs}) exit {done.returncode}:\n{done.stderr[-3000:]}")
    launched, in_runs, waited, longest, pools = map(int, match.groups())
    return {"shards": shards, "runs": runs, "wall": seconds, "launched": launched, "in_runs": in_runs,
            "waited": waited, "longest": longest, "pools": pools}


def run(root: Path, real_sample: Path, *, quick: bool, until: str = "quality_filtered", log=print) -> dict:
    subsets = QUICK_SUBSETS if quick else "all"
    started, load = machine.now_utc(), machine.load_text()
    with ThreadPoolExecutor(len(CASES)) as pool:
        cases = list(pool.map(lambda c: _case(root, real_sample, *c, subsets, until), CASES))
    for case in cases:
        log(f"run overhead: shards {case['shards']}, {case['runs']} at once: {case['wall']:.0f} s")
    return {"started": started, "load": load, "subsets": subsets, "until": until, "cases": cases}


def render(result: dict) -> list[str]:
    by = {(c["shards"], c["runs"]): c for c in result["cases"]}
    lines = [
        "## Run overhead: `mmfr run` with shards, runs side by side (issue 34)",
        "",
        f"Measured {result['started']} (load {result['load']} at the start), `python -m bench --only "
        f"run_overhead`: `mmfr run --subsets {result['subsets']} --until {result['until']}` on the real "
        f"sample, the four cases at once.",
        "",
        "| MMFR_SHARDS | runs at once | wall s | s in runs | runs | waited for a run slot, s (longest) | steps waited for pools, s | in runs / unsharded's |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (shards, runs), c in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = by[(1, runs)]["in_runs"] or 1
        lines.append(f"| {shards} | {runs} | {c['wall']:,.0f} | {c['in_runs']:,} | {c['launched']} | "
                     f"{c['waited']:,} ({c['longest']}) | {c['pools']} | {c['in_runs'] / base:.2f} |")
    return lines + [""]
