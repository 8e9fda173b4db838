"""The rehearsal's endpoints (issue 34): every model role (`ROLES`: the recipe's six and the RL
policy) served by the fake OpenAI-compatible server (`mmfr_devkit/fake_server.py`, its own
process), each role with the faults a cluster shows (429s, 5xx, malformed and empty replies at
per-role rates), heavy-tailed (lognormal) latency and, for the traces, the published length
distribution (median 910 words, p90 3,428); every draw a function of the seed and the request,
so a rerun sees the same faults.

The source is the rehearsal's (`rehearsal.write_source`) with half the rows' annotations
removed and, for those with a worked solution, the answer too, and `question_reviews` reviewing
every question: every role has work (the cleaner, the answer extractor, both teachers, the
judge on the traces' answers and on the student's samples, the student, the RL policy). The
whole graph runs as a user runs it (`mmfr run --subsets all`, the endpoints' `MMFR_<ROLE>_*`
variables, a response cache), and per role we record what the server saw (requests, faults,
completion tokens) and what the steps recorded (rows sent, asked again, failed, requests and
tokens per row sent).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

#: Per role: mean latency (s, scaled down by --quick), lognormal sigma, fault shares, and for the
#: reasoning roles the reply length in words. The teachers' long generations fail more often.
ROLE_SETTINGS: dict[str, dict] = {
    "cleaner_llm": {"latency_s": 0.05, "latency_sigma": 0.8,
                    "faults": {"429": 0.03, "5xx": 0.01, "malformed": 0.005, "empty": 0.005}},
    "answer_llm": {"latency_s": 0.05, "latency_sigma": 0.8,
                   "faults": {"429": 0.03, "5xx": 0.01, "malformed": 0.005, "empty": 0.005}},
    "caption_teacher": {"latency_s": 0.3, "latency_sigma": 1.0,
                        "faults": {"429": 0.02, "5xx": 0.02, "malformed": 0.005, "empty": 0.01}},
    "cot_teacher": {"latency_s": 0.6, "latency_sigma": 1.2, "words_median": 910, "words_p90": 3428,
                    "faults": {"429": 0.02, "5xx": 0.03, "malformed": 0.01, "empty": 0.01}},
    "judge_llm": {"latency_s": 0.05, "latency_sigma": 0.8,
                  "faults": {"429": 0.03, "5xx": 0.01, "malformed": 0.005, "empty": 0.005}},
    "student_llm": {"latency_s": 0.3, "latency_sigma": 1.0, "words_median": 400, "words_p90": 1500,
                    "faults": {"429": 0.02, "5xx": 0.02, "malformed": 0.005, "empty": 0.01}},
    "policy_llm": {"latency_s": 0.3, "latency_sigma": 1.0, "words_median": 400, "words_p90": 1500,
                   "faults": {"429": 0.02, "5xx": 0.02, "malformed": 0.005, "empty": 0.01}},
}
MAX_CONCURRENCY = 8
RUN_CONFIG = "ops:\n  question_reviews:\n    config: {review: all}\n"


def server_config(seed: int, quick: bool) -> dict:
    scale = 0.25 if quick else 1.0
    roles = {role: {**s, "latency_s": s["latency_s"] * scale} for role, s in ROLE_SETTINGS.items()}
    return {"seed": seed, "roles": roles}


def endpoint_env(url: str, cache: Path) -> dict[str, str]:
    env = {"MMFR_LLM_CACHE": str(cache)}
    for role in ROLE_SETTINGS:
        prefix = f"MMFR_{role.upper()}_"
        env.update({prefix + "BASE_URL": url, prefix + "MODEL": role,
                    prefix + "MAX_CONCURRENCY": str(MAX_CONCURRENCY)})
    return env


def without_answers(source: Path) -> int:
    """Rows without a trace (the rehearsal's unannotated ones) that have a worked solution lose
    their answer too, for the answer extractor; returns how many."""
    changed = 0
    for file in sorted(source.glob("*/*.parquet")):
        frame = pl.read_parquet(file)
        mask = frame["qwen3vl_235b_thinking_response"].is_null() & (
            frame["original_answer"].fill_null("").str.strip_chars().str.len_chars() > 0)
        changed += int(mask.sum())
        frame.with_columns(pl.when(mask).then(None).otherwise(pl.col("answer")).alias("answer")).write_parquet(file)
    return changed


@dataclass
class EndpointMeasure:
    rows: int
    seconds: float
    exit_code: int
    server: dict[str, dict] = field(default_factory=dict)  # role -> /admin/stats by_role
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> summed step metadata
    runs_line: str = ""


def step_metadata(home: Path, source: Path, lake: Path) -> dict[str, dict[str, float]]:
    """Per role, the model steps' materialization metadata summed over their partitions:
    rows sent, asked again, failed, requests and completion tokens (`llm_*`)."""
    import dagster as dg

    from mmfr_assets.definitions import build_definitions

    graph = build_definitions(str(source), str(lake), {}).resolve_asset_graph()
    roles = {key: next(iter(graph.get(key).pools)) for key in graph.get_all_asset_keys()
             if graph.get(key).pools}
    wanted = ("rows_sent", "rows_asked_again", "rows_failed", "llm_requests_sent", "llm_completion_tokens")
    totals: dict[str, dict[str, float]] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key, role in roles.items():
            records = instance.fetch_materializations(key, limit=10_000).records
            for record in records:
                meta = record.asset_materialization.metadata
                row = totals.setdefault(role, dict.fromkeys(wanted, 0.0))
                for name in wanted:
                    value = meta.get(name)
                    row[name] += float(value.value) if value is not None else 0.0
    return totals


def run(root: Path, real_sample: Path, *, quick: bool, rows: int | None = None, seed: int = 0,
        subsets: int | None = None, log=print) -> EndpointMeasure:
    """The whole graph on a rehearsal source of `rows` rows (the first `subsets` of its plan,
    default all 22) against the fake endpoints of every role."""
    import shutil

    from bench.lake import Lake
    from bench.rehearsal import PLAN, SourceSpec, write_source
    from mmfr_devkit.fake_server import start_fake_server

    rows = rows or (1_000 if quick else 10_000)
    shutil.rmtree(root, ignore_errors=True)
    source = root / "source"
    planted = write_source(real_sample, source, SourceSpec(total_rows=rows, unannotated_share=0.5, seed=seed),
                           plan=PLAN[:subsets] if subsets else PLAN, log=log)
    no_answer = without_answers(source)
    lake = Lake(root, source)
    config = root / "run.yaml"
    config.write_text(RUN_CONFIG)
    server = start_fake_server(server_config(seed, quick), in_process=False)
    try:
        env = {**lake.env(), **endpoint_env(server.url, root / "cache.sqlite")}
        command = [str(Path(sys.executable).with_name("mmfr")), "run", "--subsets", "all", "--config", str(config)]
        started = time.perf_counter()
        with open(root / "mmfr-run.log", "w") as out:
            code = subprocess.call(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        by_role = server.stats()["by_role"]
    finally:
        server.stop()
    output = (root / "mmfr-run.log").read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"mmfr run with endpoints failed (exit {code}):\n{output[-4000:]}")
    line = next((l for l in output.splitlines() if l.startswith("mmfr: launched")), "")
    measure = EndpointMeasure(planted["rows"], seconds, code, by_role, step_metadata(lake.home, lake.source, lake.lake), line)
    log(f"rehearsal endpoints: {planted['rows']:,} rows ({planted['unannotated']} without annotations, "
        f"{no_answer} of them without the answer), whole graph in {seconds:.0f} s; "
        f"server by role: {json.dumps({r: s['requests'] for r, s in by_role.items()})}")
    return measure


def render(measure: EndpointMeasure) -> list[str]:
    lines = [
        f"Endpoints: every role on the fake server (per-role faults, lognormal latency, trace "
        f"lengths median 910 / p90 3,428 words; `bench/rehearsal_endpoints.py`), the whole graph "
        f"(`mmfr run --subsets all`, every question reviewed) on {measure.rows:,} rows, half of them "
        f"without annotations: {measure.seconds:,.0f} s. {measure.runs_line}",
        "",
        "| role | requests (server) | faults (server) | rows sent | asked again | failed | requests per row sent | completion tokens per row sent |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role in ROLE_SETTINGS:
        served = measure.server.get(role, {"requests": 0, "faults": {}})
        step = measure.steps.get(role, {})
        sent = step.get("rows_sent", 0)
        faults = ", ".join(f"{f} {n}" for f, n in sorted(served["faults"].items())) or "none"
        per = (lambda v: f"{v / sent:,.2f}") if sent else (lambda v: "-")
        lines.append(f"| {role} | {served['requests']:,} | {faults} | {sent:,.0f} | "
                     f"{step.get('rows_asked_again', 0):,.0f} | {step.get('rows_failed', 0):,.0f} | "
                     f"{per(step.get('llm_requests_sent', 0))} | {per(step.get('llm_completion_tokens', 0))} |")
    return lines + [""]
