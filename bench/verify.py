"""Answer verification speed: our verifier (rules, then math-verify in killable workers) against
`math-verify` called on every row, side by side on the same real-derived rows.

    python -m bench.verify [--rows 20000] [--baseline-rows 2000] [--workers 2]

The rows are the real sample's (`/work/shared/real_sample`, or MMFR_REAL_SAMPLE) repeated to
`--rows`, each copy with its numbers shifted (every digit run n becomes n + copy index in both
the trace's answer and the reference, and in the options), so copies are distinct pairs that
keep each original's structure and verdict class. Ours runs the asset's batch function
(`verdicts_of_batch`, which `answer_verdicts` calls in `prepare`) over 1,024-row batches; the
baseline runs `math_verify.parse` + `verify` on every row in one process (its rate is measured
on the first `--baseline-rows` rows: at ~130 rows/s the whole 20K would take minutes). Timing
covers extraction and verification, not reading the parquet files.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time
from dataclasses import dataclass

import polars as pl

from bench.machine import load_text, now_utc
from mmfr_assets.rules.verify import AnswerVerifier, Item, Verdict
from mmfr_assets.rules.verify.batch import verdicts_of_batch

REAL_SAMPLE = os.environ.get("MMFR_REAL_SAMPLE", "/work/shared/real_sample")
COLUMNS = ["question", "answer", "original_answer", "qwen3vl_235b_thinking_response", "is_consistent"]
BATCH = 1024


def real_rows() -> pl.DataFrame:
    files = sorted(glob.glob(f"{REAL_SAMPLE}/*/train-*.parquet"))
    if not files:
        raise SystemExit(f"no real sample under {REAL_SAMPLE}")
    return pl.concat([pl.read_parquet(f, columns=COLUMNS) for f in files]).rename(
        {"qwen3vl_235b_thinking_response": "response"}
    )


def _shift(text: str | None, k: int) -> str | None:
    if text is None or k == 0:
        return text
    return re.sub(r"\d+", lambda m: str(int(m.group(0)) + k), text)


def derived(rows: int) -> pl.DataFrame:
    """`rows` rows: copy k of the real sample has every integer in its text raised by k."""
    base = real_rows()
    frames, k = [], 0
    while sum(f.height for f in frames) < rows:
        frames.append(base.with_columns(
            *(pl.col(c).map_elements(lambda t, k=k: _shift(t, k), return_dtype=pl.String)
              for c in ("question", "answer", "original_answer", "response"))
        ))
        k += 1
    return pl.concat(frames).head(rows).with_row_index("id").with_columns(pl.col("id").cast(pl.String))


def ours(frame: pl.DataFrame, workers: int, math: bool = True) -> tuple[float, float, int]:
    """(seconds, decided share, math-verify items) over `frame` in the asset's batches
    (`math` False: the rules alone)."""
    with AnswerVerifier(workers=workers, timeout_s=5, use_math_verify=math) as verifier:
        verifier.verify_many([])  # nothing to start: workers start on the first math item
        started = time.perf_counter()
        decided = math = 0
        for offset in range(0, frame.height, BATCH):
            out = verdicts_of_batch(frame.slice(offset, BATCH), verifier)
            decided += out["equivalent"].is_not_null().sum()
            math += (out["method"] == "math_verify").sum()
        return time.perf_counter() - started, decided / frame.height, math


def baseline(frame: pl.DataFrame) -> float:
    """Seconds for math-verify on every row, as the published-alternative way: parse the
    reference and the whole trace's answer region, then verify (one process)."""
    from math_verify import parse, verify

    from mmfr_assets.rules.verify import final_answer, reference_answer

    started = time.perf_counter()
    for r in frame.iter_rows(named=True):
        reference, _ = reference_answer(r)
        candidate = final_answer(r["response"]) or ""
        try:
            verify(parse(f"${reference}$"), parse(f"${candidate}$"))
        except Exception:
            pass
    return time.perf_counter() - started


HEADING = "## Answer verification: ours vs math-verify on every row (`bench/verify.py`)"


def run(rows: int = 20_000, baseline_rows: int = 2_000, workers: int = 2, log=print) -> list[str]:
    """The section of the results file: heading, when and under what load, the table."""
    load_before = load_text()
    frame = derived(rows)
    log(f"verify bench: {frame.height:,} real-derived rows")
    seconds, decided, math = ours(frame, workers)
    rate = frame.height / seconds
    log(f"ours: {rate:,.0f} rows/s ({decided:.1%} decided, {math:,} rows by math-verify)")
    rules_seconds, rules_decided, _ = ours(frame, workers, math=False)
    rules_rate = frame.height / rules_seconds
    log(f"rules alone: {rules_rate:,.0f} rows/s ({rules_decided:.1%} decided)")
    sample = frame.head(baseline_rows)
    base_rate = sample.height / baseline(sample)
    log(f"math-verify on every row: {base_rate:,.0f} rows/s (over {sample.height:,} rows)")
    return [
        HEADING,
        "",
        f"`python -m bench.verify --rows {rows} --baseline-rows {baseline_rows} --workers {workers}` "
        f"(also `python -m bench --only verify`). Rows: the real sample repeated with every integer "
        f"shifted per copy (distinct pairs). Ours runs the asset's batch function "
        f"(`verdicts_of_batch`) in 1,024-row batches, the math-verify workers' start included; the "
        f"baseline calls `math_verify.parse` + `verify` on every row in one process. Measured {now_utc()}. "
        f"Load average (1/5/15 min) before: {load_before}; after: {load_text()} (2 shared cores).",
        "",
        "| | rows | rows/s | vs math-verify on every row |",
        "| --- | ---: | ---: | ---: |",
        f"| math-verify on every row (1 process) | {sample.height:,} | {base_rate:,.0f} | 1.0× |",
        f"| ours: rules, then math-verify in {workers} workers | {frame.height:,} | "
        f"{rate:,.0f} | **{rate / base_rate:.1f}×** |",
        f"| ours, rules alone (what `prepare` costs without math-verify) | {frame.height:,} | "
        f"{rules_rate:,.0f} | {rules_rate / base_rate:.1f}× |",
        "",
        f"Decided without a model: {decided:.1%} of rows ({rules_decided:.1%} by the rules "
        f"alone); {math:,} rows decided by math-verify. "
        f"Goal ≥ 2,000 rows/s: {'**met**' if rate >= 2000 else '**missed**'}.",
    ]


# --- the answer-pair set (issue 17 cause 3) ------------------------------------------------

ANSWER_PAIRS = os.path.join(os.path.dirname(__file__), "..", "mmfr_assets_tests", "data", "answer_pairs.jsonl")
PAIRS_HEADING = "## Answer-pair set (issue 17 cause 3)"
#: Classes added for issue 30 (the broad pair set's wrong or undecided classes).
ISSUE_30_CLASSES = ("tuple_order", "multi_box", "approximation", "time_12h", "trig_identity", "multi_part", "prose")


def answer_pairs(path: str = ANSWER_PAIRS) -> list[dict]:
    """The labelled answer pairs: one JSON object a line with `candidate`, `reference`, `label`
    (`equivalent` / `different`), `class`, `source` and, where the question matters (options,
    ordered tuple or set), `question`."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass(frozen=True)
class PairFigures:
    """How a verifier did on labelled pairs. `weak_decided` says whether a weak "different"
    (math-verify's, which a judge may overrule) counts as decided-different or as undecided."""

    pairs: int
    decided: int
    right: int
    false_accepts: int
    false_rejects: int
    weak_decided: bool

    @property
    def decided_share(self) -> float:
        return self.decided / self.pairs if self.pairs else 0.0

    @property
    def right_share(self) -> float:
        return self.right / self.decided if self.decided else 0.0

    def text(self) -> str:
        return (f"{self.decided_share:.1%} decided ({self.decided}/{self.pairs}), right on "
                f"{self.right_share:.1%} of those, {self.false_accepts} false accepts, "
                f"{self.false_rejects} false rejects")


def pair_figures(pairs: list[dict], verdicts: list[Verdict], *, weak_decided: bool) -> PairFigures:
    """Decided share, right share among the decided, false accepts (a different pair said
    equivalent) and false rejects (an equivalent pair said different)."""
    decided = right = accepts = rejects = 0
    for pair, verdict in zip(pairs, verdicts, strict=True):
        if verdict.equivalent is None or (verdict.weak and not weak_decided):
            continue
        decided += 1
        want = pair["label"] == "equivalent"
        if verdict.equivalent == want:
            right += 1
        elif verdict.equivalent:
            accepts += 1
        else:
            rejects += 1
    return PairFigures(len(pairs), decided, right, accepts, rejects, weak_decided)


def pair_verdicts(pairs: list[dict], *, math: bool = True, workers: int = 2) -> list[Verdict]:
    """The verifier's verdicts on the pairs, as `answer_verdicts` and `student_rollouts` call
    it (`math` False: the rules alone)."""
    items = [Item(p["candidate"], p["reference"], p.get("question")) for p in pairs]
    with AnswerVerifier(workers=workers, timeout_s=10, use_math_verify=math) as verifier:
        return verifier.verify_many(items)


def pair_mistakes(pairs: list[dict], verdicts: list[Verdict]) -> list[str]:
    """One line per decided pair the verifier got wrong (weak ones marked)."""
    out = []
    for pair, v in zip(pairs, verdicts, strict=True):
        if v.equivalent is not None and v.equivalent != (pair["label"] == "equivalent"):
            weak = " (weak)" if v.weak else ""
            out.append(f"{pair['id']}: {pair['candidate']!r} vs {pair['reference']!r}: "
                       f"{v.method} said {v.equivalent}{weak}, label {pair['label']}")
    return out


def pairs_run(workers: int = 2, log=print) -> list[str]:
    """The answer-pair section: the figures with math-verify (weak 'different' counted both
    ways) and with the rules alone, on the whole set and on its held-out part."""
    pairs = answer_pairs()
    full = pair_verdicts(pairs, workers=workers)
    alone = pair_verdicts(pairs, math=False)
    for line in pair_mistakes(pairs, full):
        log(line)
    lines = [
        PAIRS_HEADING,
        "",
        f"`python -m bench.verify --pairs`: the labelled pairs of "
        f"`mmfr_assets_tests/data/answer_pairs.jsonl` (each with its class and source), no model. "
        f"Measured {now_utc()}.",
    ]
    for part, title in (
        (lambda p: True, "all"),
        (lambda p: p.get("split") == "held_out", "held out (written after the rules were changed)"),
        (lambda p: p.get("split") == "adversarial",
         "adversarial (written afterwards to make the new rules accept wrongly)"),
        (lambda p: p["class"] in ISSUE_30_CLASSES, "the issue-30 classes (" + ", ".join(ISSUE_30_CLASSES) + ")"),
    ):
        keep = [k for k, p in enumerate(pairs) if part(p)]
        sub = [pairs[k] for k in keep]
        strict = pair_figures(sub, [full[k] for k in keep], weak_decided=False)
        weak = pair_figures(sub, [full[k] for k in keep], weak_decided=True)
        rules_only = pair_figures(sub, [alone[k] for k in keep], weak_decided=False)
        lines += [
            "",
            f"{title}, {len(sub)} pairs:",
            f"- rules + math-verify, weak 'different' left to the judge (undecided): {strict.text()}",
            f"- rules + math-verify, weak 'different' counted as decided: {weak.text()}",
            f"- rules alone: {rules_only.text()}",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--baseline-rows", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--pairs", action="store_true", help="the answer-pair set's figures instead of the speed run")
    a = ap.parse_args(argv)
    if a.pairs:
        print("\n".join(pairs_run(a.workers)))
        return 0
    print("\n".join(run(a.rows, a.baseline_rows, a.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
