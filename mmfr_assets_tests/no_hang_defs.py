"""A code location for the no-hang stress test: steps that read a large `collected` partition
through the project's readers (`run_stage` over `upstream_batches`, with `OrderedRows` and
`PartitionImages` open beside it, as the model steps do) and either read it to the end or fail
after a few batches, while the reads are mid-stream.

Loaded by `dagster asset materialize -m mmfr_assets_tests.no_hang_defs`; the lake is
`MMFR_LAKE`, the partitions are `MMFR_TEST_SUBSETS` (comma-separated), the number of failing and
succeeding steps `MMFR_TEST_FAILING` / `MMFR_TEST_SUCCEEDING`. Each step writes its pid into
`MMFR_TEST_PID_DIR`, so that the test can tell which step processes are still alive.
`waits` (job `waits_job`) is a run that stays busy, `breaks` (job `breaks_job`) one that fails
at its step, for the run-monitoring and run-retry test.
"""

import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa

from mmfr_assets.lake.ordered import OrderedRows, PartitionImages
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.stage import Verdicts, run_stage, upstream_batches

SCHEMA = pa.schema([("subset", pa.string()), ("id", pa.string()), ("question", pa.string())])


class InjectedFault(RuntimeError):
    """The fault the stress test injects in the middle of a partition read."""


def _step(name: str, fail_after: int | None, partitions) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=partitions)
    def step(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        pid_dir = os.environ.get("MMFR_TEST_PID_DIR")
        if pid_dir:
            Path(pid_dir, f"{name}.{os.getpid()}").touch()
        subset = context.partition_key
        batches = 0
        with (
            OrderedRows(lake.location("collected"), subset, ["answer"], batch_size=64) as answers,
            PartitionImages(lake, subset) as images,
        ):

            def decide(batch):
                nonlocal batches
                ids = batch["id"].to_list()
                answers.take(ids)
                images.take(ids, [None] * len(ids))
                batches += 1
                if fail_after is not None and batches > fail_after:
                    raise InjectedFault(f"{name}: injected fault after {fail_after} batches")
                return Verdicts.no_drops(batch.select("subset", "id", "question"))

            run = run_stage(
                lake, stage=name, subset=subset,
                batches=upstream_batches(
                    lake, "collected", subset, batch_size=256,
                    columns=["subset", "id", "question", "image_bytes"],
                ),
                decide=decide, schema=SCHEMA,
            )
        return dg.MaterializeResult(metadata={"rows": run.rows_out})

    return step


@dg.asset
def waits(context: dg.AssetExecutionContext) -> None:
    """A run worker that stays busy (for the run-monitoring test): it records its pid as
    `waits.<run id>.<pid>` and sleeps until it is killed or stopped."""
    Path(os.environ["MMFR_TEST_PID_DIR"], f"waits.{context.run_id}.{os.getpid()}").touch()
    time.sleep(3600)


@dg.asset
def breaks() -> None:
    """A run that fails for a real reason (its step raises): run retries must leave it alone."""
    raise InjectedFault("breaks: a real failure, not a lost worker")


def build() -> dg.Definitions:
    subsets = os.environ.get("MMFR_TEST_SUBSETS", "A").split(",")
    partitions = dg.StaticPartitionsDefinition(subsets)
    failing = int(os.environ.get("MMFR_TEST_FAILING", "8"))
    succeeding = int(os.environ.get("MMFR_TEST_SUCCEEDING", "4"))
    assets = [_step(f"fails_{k:02d}", 2 + k % 3, partitions) for k in range(failing)]
    assets += [_step(f"reads_{k:02d}", None, partitions) for k in range(succeeding)]
    return dg.Definitions(
        assets=[*assets, waits, breaks],
        jobs=[dg.define_asset_job("waits_job", selection=["waits"]),
              dg.define_asset_job("breaks_job", selection=["breaks"])],
        resources={"lake": LakeResource(uri=os.environ["MMFR_LAKE"])}
    )


defs = build()
