"""Near-duplicates (issue 21): signatures per second per core on the real sample's rows, the
cross-subset step's time and peak memory on generated signature tables of 100K and 1M rows
with planted duplicates, and precision/recall on planted copies of the real rows.

    python -m bench --only dedup [--quick]

The cross-subset step is measured as `deduplicated` runs it for one subset (50,000 rows): read
the subset's signatures, stream the whole table once keeping the rows that share a key, verify
the candidate pairs. Each measurement runs in a fresh process (`python -m bench.dedup
--measure LAKE SUBSET`) so that its peak RSS (`ru_maxrss`) is its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import machine

SUBSET_ROWS = 50_000
# Real multiple-choice rows (options one a line) repeated eight times with options shuffled
SHUFFLED_ORIGINS = ("BMMR/72393", "FineVision-geo170k(qa)/1", "FineVision-ai2d_merged/4",
                    "GameQA-140K/75814")
NUM_PERM = 128


def _signed(values: np.ndarray) -> np.ndarray:
    return values.astype(np.uint64).view(np.int64)


def _flip(values: np.ndarray, bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`values` with `bits[i]` random bits flipped in row i (0, 2 or 4: as phash copies differ)."""
    out = values.astype(np.int64).view(np.uint64).copy()
    for i in np.nonzero(bits)[0]:
        for b in rng.choice(64, size=int(bits[i]), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(b)
    return out.view(np.int64)


def generate(lake: Path, rows: int, seed: int = 0) -> dict:
    """A `dedup_signatures` table of `rows` rows in subsets of SUBSET_ROWS, written with the
    lake's own writer. Planted: 5% of each subset's rows copy a row of an earlier subset (up to
    15% of MinHash values changed, phash 0/2/4 bits apart with the measured 74/25/1% shares,
    dhash and ahash equal 70% of the time), 10% sit in groups of 5 sharing one figure with
    different questions (ai2d-like), 10% share a template question (70% of MinHash values)
    over different figures. Returns the planted copies of the last subset."""
    from mmfr_assets.dedup.signatures import SIGNATURE_SCHEMA
    from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter

    rng = np.random.default_rng(seed)
    location = DeltaLocation(str(lake / "dedup_signatures"))
    subsets = [f"s{k:03d}" for k in range(rows // SUBSET_ROWS)]
    kept: dict[str, tuple] = {}  # subset -> (minhash, phash, dhash, ahash, text, numbers, sizes)
    planted = []
    template = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint32)
    for k, subset in enumerate(subsets):
        n = SUBSET_ROWS
        minhash = rng.integers(0, 2**32, (n, NUM_PERM), dtype=np.uint32)
        phash, dhash, ahash = (_signed(rng.integers(0, 2**63, n, dtype=np.int64)) for _ in range(3))
        text = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)
        numbers = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)
        sizes = rng.integers(60, 400, n).astype(np.int32)
        figure = rng.random(n) < 0.10  # groups of 5 consecutive rows share a figure
        lead = np.nonzero(figure)[0]
        for i in lead:
            j = slice(i, min(n, i + 5))
            phash[j], dhash[j], ahash[j] = phash[i], dhash[i], ahash[i]
        tpl = rng.random(n) < 0.10
        mask = rng.random((int(tpl.sum()), NUM_PERM)) < 0.7
        minhash[tpl] = np.where(mask, template, minhash[tpl])
        ids = np.array([f"{subset}-{i:06d}" for i in range(n)], dtype=object)
        if k > 0:
            copies = np.nonzero(rng.random(n) < 0.05)[0]
            for i in copies:
                source = subsets[rng.integers(0, k)]
                s = kept[source]
                j = int(rng.integers(0, SUBSET_ROWS))
                changed = rng.random(NUM_PERM) < rng.uniform(0, 0.15)
                minhash[i] = np.where(changed, minhash[i], s[0][j])
                bits = np.array([rng.choice([0, 2, 4], p=[0.74, 0.25, 0.01])])
                phash[i] = _flip(np.array([s[1][j]]), bits, rng)[0]
                dhash[i] = s[2][j] if rng.random() < 0.7 else rng.integers(-2**62, 2**62)
                ahash[i] = s[3][j] if rng.random() < 0.7 else rng.integers(-2**62, 2**62)
                text[i] = s[4][j] if rng.random() < 0.5 else text[i]
                numbers[i], sizes[i] = s[5][j], s[6][j]
                if k == len(subsets) - 1:
                    planted.append(ids[i])
        kept[subset] = (minhash, phash, dhash, ahash, text, numbers, sizes)
        table = pa.table({
            "subset": [subset] * n, "id": ids.tolist(), "text_key": text,
            "minhash": [bytes(m) for m in minhash.astype("<u4")],
            "num_perm": np.full(n, NUM_PERM, dtype=np.int32), "shingle_count": sizes,
            "numbers_key": numbers,
            # no answers or asking lines: the rules on them do not apply (as for old signatures)
            "answer_key": pa.nulls(n, pa.int64()), "ask_minhash": pa.nulls(n, pa.binary()),
            "ask_shingle_count": pa.nulls(n, pa.int32()),
            "image_sha256": [hashlib.sha256(int(p).to_bytes(8, "little", signed=True)).hexdigest() for p in phash],
            "phash": phash, "dhash": dhash, "ahash": ahash,
            # every generated row would need both teachers (what the savings count)
            "needs_caption": np.ones(n, dtype=bool), "needs_trace": np.ones(n, dtype=bool),
        }, schema=SIGNATURE_SCHEMA)
        with PartitionWriter(location, SIGNATURE_SCHEMA, {"subset": subset}) as writer:
            for start in range(0, n, 8192):
                writer.write(table.slice(start, 8192))
            writer.commit()
    return {"subset": subsets[-1], "planted": planted}


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


def measure(lake: str, subset: str) -> dict:
    """One subset's cross-subset step, as `deduplicated` runs it (called in a fresh process)."""
    from mmfr_assets.dedup.assets import (SignatureSnapshot, _own_signatures, lake_signatures,
                                          needed_signatures, signature_counts)
    from mmfr_assets.dedup.matching import MatchRules, find_duplicates
    from mmfr_assets.lake.resource import LakeResource

    resource_lake = LakeResource(uri=lake)
    before = _current_rss_mb()
    t = time.perf_counter()
    snapshot = SignatureSnapshot.of(resource_lake)  # one log read, as deduplicated does
    own, _ = _own_signatures(snapshot, subset)
    rules = MatchRules()
    in_lake = signature_counts(snapshot)
    _, where = needed_signatures(own, subset, in_lake, rules)  # only the rows that can decide
    duplicates, gathered = find_duplicates(own, lake_signatures(snapshot, NUM_PERM, where), rules)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "rows_scanned": gathered.rows_scanned, "table_rows": sum(in_lake.values()),
            "candidates": gathered.candidate_rows, "dropped": duplicates["id"].to_list(),
            "rss_before_mb": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure_in_process(lake: Path, subset: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.dedup", "--measure", str(lake), subset],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return json.loads(out.stdout.splitlines()[-1])


def signature_rates(real_sample: Path, rows: int) -> dict:
    """Rows per second on one thread: whole signatures, text only, images only."""
    from mmfr_assets.dedup.images import image_hashes
    from mmfr_assets.dedup.signatures import signature_batch
    from mmfr_assets.dedup.text import minhashes
    from mmfr_assets_tests.planted_duplicates import real_rows

    real = real_rows(real_sample)
    picked = [real[i % len(real)] for i in range(rows)]
    questions, images = [r.question for r in picked], [r.image for r in picked]
    shas = [hashlib.sha256(i).hexdigest() for i in images]
    t = time.perf_counter()
    for start in range(0, rows, 256):
        signature_batch([r.id for r in picked[start:start + 256]], questions[start:start + 256],
                        images[start:start + 256], shas[start:start + 256], num_perm=NUM_PERM)
    whole = rows / (time.perf_counter() - t)
    t = time.perf_counter()
    minhashes(questions, NUM_PERM)
    text = rows / (time.perf_counter() - t)
    t = time.perf_counter()
    for image in images:
        image_hashes(image)
    pixels = rows / (time.perf_counter() - t)
    sizes = sorted(len(i) for i in images)
    return {"whole": whole, "text": text, "images": pixels, "median_image_kb": sizes[len(sizes) // 2] / 1024}


def planted_quality(real_sample: Path, *, same_answer: bool = True,
                    min_ask_jaccard: float | None = 0.5) -> dict:
    """Precision and recall on the planted copies of the real rows (as in test_dedup.py), and
    the templated negatives of issue 30 and the shuffled-option copies: merges of rows whose
    answers differ, and shuffled copies dropped for their real row."""
    import polars as pl

    from mmfr_assets.dedup.answers import answer_form
    from mmfr_assets.dedup.matching import MatchRules, find_duplicates
    from mmfr_assets_tests.planted_duplicates import (
        VARIANTS,
        entity_negatives,
        planted,
        real_rows,
        shape_negatives,
        shuffled_copies,
    )
    from mmfr_assets_tests.test_dedup import REAL_CLUSTER, signatures

    real = real_rows(real_sample)
    copies, negatives = planted(real)
    templated = entity_negatives(real) + shape_negatives(real)
    shuffled = [c for r in real if r.origin in SHUFFLED_ORIGINS for c in shuffled_copies(r)]
    rows = real + copies + negatives + templated + shuffled
    frame = signatures(rows)
    rules = MatchRules(subset_order=tuple(sorted({r.subset for r in real})), same_answer=same_answer,
                       min_ask_jaccard=min_ask_jaccard)
    origin = {(r.subset, r.id): REAL_CLUSTER.get(r.origin, r.origin) for r in rows}
    form = {(r.subset, r.id): answer_form(r.question, r.answer) for r in rows}
    found, differing = {}, {"negatives_entity": 0, "negatives_shape": 0}
    for subset in frame["subset"].unique(maintain_order=True):
        dropped, _ = find_duplicates(frame.filter(pl.col("subset") == subset), [frame], rules)
        for i, ks, ki in dropped.select("id", "kept_subset", "kept_id").iter_rows():
            if subset.startswith("negatives_"):
                differing[subset] += form[(subset, i)] != form[(ks, ki)]
                continue
            found[(subset, i)] = origin[(ks, ki)] or f"{ks}/{ki}"
    copy_keys = [(r.subset, r.id) for r in copies]
    true = sum(1 for k, v in found.items() if v == origin[k])
    return {
        "templated": len(templated), "templated_differing_merges": differing,
        "shuffled": len(shuffled), "shuffled_merged": sum(
            found.get((r.subset, r.id)) == r.origin for r in shuffled),
        "copies": len(copy_keys), "negatives": len(negatives),
        "recall": {v: sum((f"copies_{v}", i) in found for s, i in copy_keys if s == f"copies_{v}")
                   / sum(s == f"copies_{v}" for s, _ in copy_keys) for v in VARIANTS},
        "recall_all": sum(k in found for k in copy_keys) / len(copy_keys),
        "precision": true / max(1, len(found)),
        "false_merges": len(found) - true,
        "negatives_dropped": sum(s == "negatives" for s, _ in found),
        "real_dropped": sorted(f"{s}/{i}" for s, i in found
                               if not s.startswith(("copies_", "negatives", "shuffled"))),
    }


def run(out: Path, *, quick: bool, real_sample: Path, log=print) -> list[str]:
    started = machine.now_utc()
    load = machine.load_text()
    rates = signature_rates(real_sample, 300 if quick else 2_000)
    log(f"signatures: {rates['whole']:.0f} rows/s per core")
    quality = planted_quality(real_sample)
    log(f"planted: recall {quality['recall_all']:.3f}, precision {quality['precision']:.3f}")
    sizes = (100_000, 200_000) if quick else (100_000, 1_000_000)
    cross = {}
    for rows in sizes:
        lake = out / f"dedup-{rows}"
        shutil.rmtree(lake, ignore_errors=True)
        t = time.perf_counter()
        plan = generate(lake, rows)
        log(f"generated {rows:,} signature rows in {time.perf_counter() - t:.0f} s")
        result = _measure_in_process(lake, plan["subset"])
        dropped = set(result.pop("dropped"))
        result["recall"] = len(dropped & set(plan["planted"])) / max(1, len(plan["planted"]))
        result["planted"], result["dropped"] = len(plan["planted"]), len(dropped)
        result["false"] = len(dropped - set(plan["planted"]))
        result["table_mb"] = sum(f.stat().st_size for f in lake.rglob("*.parquet")) / 1024**2
        cross[rows] = result
        log(f"cross-subset step at {rows:,}: {result['seconds']:.1f} s, peak {result['peak_rss_mb']:.0f} MB")
        shutil.rmtree(lake, ignore_errors=True)
    lines = render(started, load, rates, quality, cross)
    return lines + [""] + templated_section(out, real_sample, quick=quick, log=log)


RULE_VARIANTS = {  # label -> planted_quality keywords
    "answers + asking lines (defaults)": {},
    "answers only (`min_ask_jaccard: null`)": {"min_ask_jaccard": None},
    "asking lines only (`same_answer: false`)": {"same_answer": False},
    "neither (the question and image rules of issue 21)": {"same_answer": False, "min_ask_jaccard": None},
}


def templated_section(out: Path, real_sample: Path, *, quick: bool, code: str | None = None,
                      log=print) -> list[str]:
    """Issue 30's figures (templated negatives, shuffled copies, recall, under each rule) and
    issue 34's (templated subsets, `deduplicated` materialized in a fresh process), rendered."""
    qualities = {label: planted_quality(real_sample, **kw) for label, kw in RULE_VARIANTS.items()}
    sizes = (2_000, 10_000) if quick else (20_000, 100_000)
    return render_templated(machine.now_utc(), machine.load_text(), qualities,
                            templated_memory(out, real_sample, sizes, code=code, log=log))


def render_templated(started, load, qualities: dict[str, dict], memory: dict[int, dict]) -> list[str]:
    def cell(r: dict) -> str:
        if "failed" in r:
            return f"failed (exit {r['failed']})"
        return f"{r['peak_rss_mb']:,.0f} MB, {r['seconds']:.1f} s"

    q = next(iter(qualities.values()))
    small, large = min(memory), max(memory)
    lines = [
        "### Templated families: answers (issue 30) and `deduplicated`'s memory (issue 34)",
        "",
        f"Measured {started}, load average {load} (`python -m bench --only dedup`, or this part "
        "alone: `python -m bench.dedup --templated [--quick]`).",
        "",
        f"**Templated negatives** built from the real sample: {q['templated'] - 40} entity rows "
        "(each real row's question as a long shared lecture, then \"In this food web, the "
        "<organism> is a <role>. Why?\" for two organisms and roles over the same figure, "
        "answers \"It makes its own food.\" / \"It eats another living thing.\") and 40 shape "
        "rows (each real puzzle question over two generated 3x3 grids whose last cell is another "
        "polygon, 2-6 phash bits apart, answers \"pentagon\" / \"triangle\" / ...). "
        f"**Shuffled options**: {q['shuffled']} copies (four real multiple-choice rows, eight "
        "copies each, options shuffled, the answer letter moved with its option). Rows dropped "
        "for a row whose answer differs, shuffled copies dropped for their real row, and the "
        "planted copies' recall, under each rule:",
        "",
        "| rules | entity rows merged, answers differ | shape rows merged, answers differ | "
        "shuffled copies merged | recall on planted copies | false merges (copies, negatives) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {label} | {r['templated_differing_merges']['negatives_entity']} | "
          f"{r['templated_differing_merges']['negatives_shape']} | {r['shuffled_merged']} of "
          f"{r['shuffled']} | {r['recall_all']:.3f} | {r['false_merges'] + r['negatives_dropped']} |"
          for label, r in qualities.items()],
        "",
        f"Real rows dropped (defaults): {', '.join(q['real_dropped'])}.",
        "",
        "**Memory.** One subset grown from the real sample as the issue-34 rehearsal grows it "
        "(row i is real row i mod 110, its question numbered \"Problem i: ...\", its own image "
        "bytes over the real figure: families of rows/110 sharing a figure and all their text "
        "but the number); `deduplicated` materialized alone through Dagster in a fresh process "
        "(`bench.dedup.templated_memory`), peak RSS of that process and the step's time:",
        "",
        "| rows | peak RSS, time | rows dropped |",
        "| ---: | ---: | ---: |",
        *[f"| {n:,} | {cell(r)} | {r.get('rows_dropped', '-')} |" for n, r in sorted(memory.items())],
        "",
    ]
    if "failed" not in memory[small] and "failed" not in memory[large] and large > small:
        lines.append(f"{large / small:.0f}x the rows: peak RSS "
                     f"{memory[large]['peak_rss_mb'] / memory[small]['peak_rss_mb']:.2f}x "
                     "(goal: within 1.5x, and far under 2.5 GB).")
    return lines


def render(started, load, rates, quality, cross) -> list[str]:
    small, large = sorted(cross)
    lines = [
        "## Near-duplicates and decontamination (issue 21)",
        "",
        f"Measured {started}, load average {load} (`python -m bench --only dedup`).",
        "",
        "**Signatures per second per core** (`signature_batch` on one thread, the real sample's "
        f"rows repeated; median image {rates['median_image_kb']:.0f} KB): **{rates['whole']:,.0f} "
        f"rows/s** whole; the MinHash of the question alone {rates['text']:,.0f} rows/s, the "
        f"three perceptual hashes alone {rates['images']:,.0f} rows/s. For 2.3M rows: "
        f"{2_300_000 / rates['whole'] / 3600:.1f} core-hours, once per row (signatures are stored).",
        "",
        "**Planted copies of the real rows** (`mmfr_assets_tests/planted_duplicates.py`; each of "
        f"the {quality['copies'] // 3} real rows with an image copied into three other subsets: "
        "re-encoded as JPEG at quality 40-90, resized by 0.5/0.7/1.3 and re-encoded, its "
        f"question reworded by two words; {quality['negatives']} negatives pairing a figure "
        "with another row's question), default thresholds:",
        "",
        "| variant | recall |",
        "| --- | ---: |",
        *[f"| {v} | {r:.3f} |" for v, r in quality["recall"].items()],
        f"| all | **{quality['recall_all']:.3f}** |",
        "",
        f"Precision {quality['precision']:.3f} ({quality['false_merges']} false merges; "
        f"{quality['negatives_dropped']} negatives dropped). Goal recall ≥ 0.95 and no false "
        f"merge: {'met' if quality['recall_all'] >= 0.95 and not quality['false_merges'] else 'NOT met'}. "
        f"The real rows themselves hold one cluster, dropped as it should be: "
        f"{', '.join(quality['real_dropped'])} (WeMath2-Pro's variants of one prism problem, "
        "kept as WeMath2-Pro/4).",
        "",
        "**The cross-subset step** for one subset of 50,000 rows against generated signature "
        "tables (`bench/dedup.py`: 5% of each subset copies an earlier subset's row, 10% share "
        "a figure in groups of five, 10% share a template question), in a fresh process:",
        "",
        "| table rows | table on disk | time | signature rows read | candidate rows | peak RSS (process) | RSS before the step (imports) | planted copies found | false drops |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]  # candidate rows include the subset's own rows (each shares its keys with itself)
    for rows in (small, large):
        c = cross[rows]
        lines.append(
            f"| {rows:,} | {c['table_mb']:,.0f} MB | {c['seconds']:.1f} s | "
            f"{c['rows_scanned']:,} | {c['candidates']:,} | "
            f"{c['peak_rss_mb']:,.0f} MB | {c['rss_before_mb']:,.0f} MB | "
            f"{c['recall']:.3f} of {c['planted']:,} | {c['false']} |")
    growth = (cross[large]["peak_rss_mb"] - cross[large]["rss_before_mb"]) / max(
        1.0, cross[small]["peak_rss_mb"] - cross[small]["rss_before_mb"])
    lines += [
        "",
        f"{large // small}× the signatures: the step's own memory (peak minus before) grows "
        f"{growth:.2f}× (goal: no faster than the signatures), its time "
        f"{cross[large]['seconds'] / cross[small]['seconds']:.1f}× (one streaming pass). At the "
        f"paper's 2.3M rows a subset costs about "
        f"{cross[large]['seconds'] * 2_300_000 / large:.0f} s of this step.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--measure"]:
        print(json.dumps(measure(args[1], args[2])))
        return 0
    if args[:1] == ["--templated"]:  # this part alone: --templated [--quick] [--code DIR]
        code = args[args.index("--code") + 1] if "--code" in args else None
        real = Path(os.environ.get("MMFR_REAL_SAMPLE", Path(__file__).resolve().parents[2] / "shared"
                                   / "real_sample"))
        print("\n".join(templated_section(Path(__file__).resolve().parent / "out", real,
                                          quick="--quick" in args, code=code,
                                          log=lambda m: print(m, file=sys.stderr))))
        return 0
    if args[:1] == ["--materialize"]:
        print(json.dumps(materialize_deduplicated(args[1], args[2])))
        return 0
    print("usage: python -m bench --only dedup [--quick]")
    return 2


# --- Templated families: `deduplicated` at scale on rows sharing a figure and their text -----

TEMPLATED_SUBSET = "ScaleSet"


def templated_source(root: Path, real_sample: Path) -> Path:
    """A source naming the one subset `ScaleSet` (its rows are written straight into the lake
    by `templated_lake`; the source only declares the partition)."""
    folder = root / TEMPLATED_SUBSET
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(real_sample / "BMMR" / "train-00000-of-00001.parquet", folder / "train-00000-of-00001.parquet")
    (root / "README.md").write_text(
        f'---\nconfigs:\n- config_name: "{TEMPLATED_SUBSET}"\n  data_files:\n  - split: train\n'
        f'    path: "{TEMPLATED_SUBSET}/train-*.parquet"\n---\n')
    return root


def templated_lake(lake: Path, real_sample: Path, rows: int) -> None:
    """`cleaned` and `dedup_signatures` of one subset of `rows` rows grown from the real sample
    as the issue-34 rehearsal grows them: row i is real row i mod 110 with its question
    numbered ("Problem i: ..."), its reference answer and the real row's figure (its own image
    bytes: its own SHA-256, the figure's perceptual hashes), so every real row heads a family of
    rows/110 that share a figure and all their text but the number. The signatures are
    `signature_batch`'s (each distinct figure hashed once)."""
    import polars as pl

    from mmfr_assets.cleaning.assets import CLEANED_SCHEMA
    from mmfr_assets.dedup.answers import reference_answers
    from mmfr_assets.dedup.signatures import SIGNATURE_SCHEMA, signature_batch
    from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter

    real = pl.concat([pl.read_parquet(p).with_columns(pl.col("id").cast(pl.String))
                      for p in sorted(real_sample.glob("*/*.parquet"))]).filter(
        pl.col("image").struct.field("bytes").is_not_null() & pl.col("question").is_not_null())
    figures = real["image"].struct.field("bytes").to_list()
    hashes = {}

    def hash_once(image):
        from mmfr_assets.dedup.images import image_hashes
        if id(image) not in hashes:
            hashes[id(image)] = image_hashes(image)
        return hashes[id(image)]

    cleaned = DeltaLocation(str(lake / "cleaned"))
    signed = DeltaLocation(str(lake / "dedup_signatures"))
    partition = {"subset": TEMPLATED_SUBSET}
    with PartitionWriter(cleaned, CLEANED_SCHEMA, partition) as rows_out, \
            PartitionWriter(signed, SIGNATURE_SCHEMA, partition) as signatures_out:
        for start in range(0, rows, 4096):
            picked = [(i, i % real.height) for i in range(start, min(rows, start + 4096))]
            source = real[[k for _, k in picked]]
            ids = [f"{TEMPLATED_SUBSET}-{i:07d}" for i, _ in picked]
            questions = [f"Problem {i + 1}: {q}" for (i, _), q in zip(picked, source["question"])]
            shas = [hashlib.sha256(f"{i}".encode()).hexdigest() for i in ids]
            answers = reference_answers(source.select("answer").iter_rows(named=True))
            frame = pl.DataFrame({"subset": [TEMPLATED_SUBSET] * len(ids), "id": ids,
                                  "question": questions, "answer": source["answer"],
                                  "image_sha256": shas})
            table = frame.to_arrow()
            rows_out.write(pa.table({f.name: table[f.name] if f.name in table.column_names
                                     else pa.nulls(table.num_rows, f.type) for f in CLEANED_SCHEMA
                                     if f.name != "subset"}))
            sig = signature_batch(ids, questions, [figures[k] for _, k in picked], shas,
                                  num_perm=NUM_PERM, map_images=lambda f, xs: map(hash_once, xs),
                                  answers=answers)
            signatures_out.write(sig.with_columns(subset=pl.lit(TEMPLATED_SUBSET)).to_arrow())
        rows_out.commit()
        signatures_out.commit()


def materialize_deduplicated(source: str, lake: str) -> dict:
    """Materialize `deduplicated[ScaleSet]` as a user does (the asset, through Dagster, in this
    process); called in a fresh process so that its peak RSS is the step's own."""
    import dagster as dg

    from mmfr_assets.definitions import build_definitions

    import mmfr_assets

    before = _current_rss_mb()
    defs = build_definitions(source, lake, {})
    job = defs.resolve_implicit_global_asset_job_def()
    t = time.perf_counter()
    result = job.execute_in_process(partition_key=TEMPLATED_SUBSET, instance=dg.DagsterInstance.ephemeral(),
                                    asset_selection=[dg.AssetKey("deduplicated")])
    seconds = time.perf_counter() - t
    [event] = [e for e in result.get_asset_materialization_events()]
    meta = event.event_specific_data.materialization.metadata
    return {"success": result.success, "seconds": seconds, "rss_before_mb": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rows_in": meta["rows_in"].value, "rows_dropped": meta["rows_dropped"].value,
            "candidate_rows": int(meta["dedup/candidate_rows"].value),
            "signature_rows_scanned": int(meta["dedup/signature_rows_scanned"].value),
            "code": str(Path(mmfr_assets.__file__).parent)}


def templated_memory(out: Path, real_sample: Path, sizes: tuple[int, ...], *, code: str | None = None,
                     log=print) -> dict[int, dict]:
    """Peak RSS of materializing `deduplicated` on templated subsets of each size, each in a
    fresh process (`code`: a folder holding another checkout's `mmfr_assets`, to measure the
    code before a change side by side on the same lakes)."""
    results = {}
    for rows in sizes:
        root = out / f"templated-{rows}"
        shutil.rmtree(root, ignore_errors=True)
        source = templated_source(root / "source", real_sample)
        t = time.perf_counter()
        templated_lake(root / "lake", real_sample, rows)
        log(f"templated subset of {rows:,} rows written in {time.perf_counter() - t:.0f} s")
        # `python -m` puts the working directory first on the path: `code`'s package wins
        path = os.pathsep.join([code, *sys.path] if code else sys.path)
        done = subprocess.run([sys.executable, "-m", "bench.dedup", "--materialize", str(source),
                               str(root / "lake")], capture_output=True, text=True, cwd=code,
                              env={**os.environ, "PYTHONPATH": path, "MMFR_SHARDS": "1"})
        if done.returncode != 0:
            # killed (-9: out of memory) or failed: recorded, not hidden
            results[rows] = {"failed": done.returncode, "stderr": done.stderr.strip().splitlines()[-1:]}
        else:
            results[rows] = json.loads(done.stdout.splitlines()[-1])
        log(f"deduplicated on {rows:,} templated rows: {results[rows]}")
        shutil.rmtree(root, ignore_errors=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
