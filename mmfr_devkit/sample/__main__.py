"""CLI: ``python -m mmfr_devkit.sample OUT_DIR [--rows N] [--subsets A,B] ...``.

Writes the sample (the bundled demo one by default) and prints every file
with its row count and size, so a run is easy to eyeball in CI logs.
"""

from __future__ import annotations

import argparse
import sys
import time

from .generate import describe, write_sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmfr_devkit.sample", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="directory to (re)create; replaced atomically")
    ap.add_argument("--rows", type=int, default=None, help="rows per subset (default: the 40-row demo plan)")
    ap.add_argument("--subsets", default=None, help="comma-separated subset names (default: the demo subsets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trace-words", type=int, default=None, help="target words per thinking response")
    ap.add_argument("--fault-rate", type=float, default=None, help="share of faulty filler rows beyond the plan")
    ap.add_argument("--image-size", type=int, default=None, help="longest edge of normal figures, px")
    ap.add_argument("--shard-rows", type=int, default=None, help="rows per parquet shard (default 5000)")
    ap.add_argument("--no-overwrite", action="store_true", help="fail if OUT_DIR exists")
    a = ap.parse_args(argv)
    subsets = [s.strip() for s in a.subsets.split(",") if s.strip()] if a.subsets else None
    t0 = time.perf_counter()
    out = write_sample(a.out_dir, subsets=subsets, rows_per_subset=a.rows, seed=a.seed, trace_words=a.trace_words,
                       fault_rate=a.fault_rate, image_size=a.image_size, shard_rows=a.shard_rows,
                       overwrite=not a.no_overwrite)
    elapsed = time.perf_counter() - t0
    files = describe(out)
    for path, rows, size in files:
        print(f"{path}\t{rows} rows\t{size / 1e6:.2f} MB")
    total = sum(size for _, _, size in files) + (out / "README.md").stat().st_size
    print(f"wrote {sum(r for _, r, _ in files)} rows in {len(files)} files to {out} "
          f"({total / 1e6:.2f} MB) in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
