"""The lake on S3-compatible object storage: a local S3 server (moto's server mode on loopback)
stands in for the bucket, credentials come only from the standard AWS_* environment variables,
endpoint/region/plain-HTTP from MMFR_LAKE_STORAGE_OPTIONS, exactly as a deployment sets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid

import pyarrow as pa
import pytest

from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter, count_rows, read_partition
from mmfr_assets.lake.object_store import s3_filesystem
from mmfr_assets.lineage import LINE
from mmfr_assets_tests.dagster_process import (
    BIN, assert_accounted, dagster_env, lake_snapshot, s3_server,
)
from mmfr_assets_tests.test_parallel_runs import assert_race_landed, race_first_commits

MMFR = str(BIN / "mmfr")
SUBSETS = ["FineVision-geo170k(qa)", "LLaVA-CoT"]  # a name with parentheses, a tag-exempt subset
# Test-only keys for the local server: they go to processes through the environment only.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mmfr-test", "AWS_SECRET_ACCESS_KEY": "mmfr-test-secret"}
NO_CLOUD = {
    "AWS_REGION": "us-east-1",
    # Never let an AWS SDK look for instance metadata (169.254.169.254) from a test.
    "AWS_EC2_METADATA_DISABLED": "true",
}
SCHEMA = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])


# -- resolving the pyarrow filesystem (no server) ---------------------------------------------


def _kwargs(filesystem) -> dict:
    return filesystem.__reduce__()[1][0]


def test_s3_filesystem_takes_options_first_then_the_environment():
    environ = {"AWS_ENDPOINT_URL": "https://env.example:9000", "AWS_REGION": "eu-west-3",
               "AWS_ACCESS_KEY_ID": "from-env"}
    fs, root = s3_filesystem("s3://bucket/lake/", {"aws_region": "eu-central-1"}, environ)
    kwargs = _kwargs(fs)
    assert root == "bucket/lake"
    assert kwargs["region"] == "eu-central-1"  # option (any case) wins over the environment
    assert (kwargs["scheme"], kwargs["endpoint_override"]) == ("https", "env.example:9000")
    # Keys from the environment are left to the AWS SDK's own chain, not copied into config.
    assert kwargs["access_key"] is None and kwargs["secret_key"] is None
    fs, _ = s3_filesystem(
        "s3://bucket/lake",
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true",
         "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true"},
        {},
    )
    kwargs = _kwargs(fs)
    assert (kwargs["scheme"], kwargs["endpoint_override"]) == ("http", "127.0.0.1:9000")
    assert kwargs["region"] == "us-east-1" and kwargs["force_virtual_addressing"] is True


def test_s3_filesystem_refuses_what_deltalake_would_refuse():
    with pytest.raises(ValueError, match="AWS_ALLOW_HTTP"):
        s3_filesystem("s3://b/l", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, {})
    with pytest.raises(ValueError, match="both"):
        s3_filesystem("s3://b/l", {"AWS_ACCESS_KEY_ID": "only-the-id"}, {})


# -- against a local S3 server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on a free loopback port, for this module (and this xdist worker)."""
    if not (BIN / "moto_server").exists():
        message = "moto's server mode is not installed (pip install 'moto[server]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with s3_server(tmp_path_factory.mktemp("moto") / "moto.log", NO_CLOUD) as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket; this test process reads with the same environment-only credentials."""
    import boto3

    for key, value in {**CREDENTIALS, **NO_CLOUD}.items():
        monkeypatch.setenv(key, value)
    name = f"mmfr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _options(endpoint: str) -> dict[str, str]:
    # What MMFR_LAKE_STORAGE_OPTIONS holds in a deployment: where and how, never who.
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}


def _objects(endpoint: str, bucket: str) -> list[str]:
    import boto3

    pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2")
    return [o["Key"] for page in pages.paginate(Bucket=bucket) for o in page.get("Contents", [])]


@pytest.mark.e2e
def test_whole_graph_on_s3_lands_the_same_tables_as_on_local_disk(
    tmp_path, real_sample, s3_endpoint, bucket, monkeypatch
):
    uri = f"s3://{bucket}/lake"
    options = _options(s3_endpoint)
    on_s3 = dagster_env(
        tmp_path / "home-s3", real_sample, uri,
        MMFR_LAKE_STORAGE_OPTIONS=json.dumps(options), **CREDENTIALS, **NO_CLOUD,
    )
    on_disk = dagster_env(tmp_path / "home-local", real_sample, tmp_path / "lake")
    args = [MMFR, "run", "--subsets", ",".join(SUBSETS)]
    runs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for env in (on_s3, on_disk)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-3000:]
    assert "== LLaVA-CoT" in outputs[0][0]  # the funnel, read back from S3

    s3 = lake_snapshot(uri, SUBSETS, options)
    assert s3 == lake_snapshot(tmp_path / "lake", SUBSETS)
    assert_accounted(s3, SUBSETS)  # every row kept by each stage or dropped with a reason
    for subset in SUBSETS:
        assert len(s3["ids"][("collected", subset)]) == 10
    assert s3["drops"]

    keys = _objects(s3_endpoint, bucket)
    assert all(k.startswith("lake/") for k in keys)
    # Partition folders hold the subset name percent-encoded, as on disk.
    assert any(k.startswith("lake/collected/subset=FineVision-geo170k%28qa%29/part-") for k in keys)
    for table in (*LINE, "rejections"):
        assert f"lake/{table}/_delta_log/00000000000000000000.json" in keys
    # The instance (runs, event logs, resource config) never saw the secret key.
    secrets = CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode()
    leaked = [p for p in (tmp_path / "home-s3").rglob("*") if p.is_file() and secrets in p.read_bytes()]
    assert not leaked, f"the secret key was written to {leaked}"

    monkeypatch.delenv("MMFR_REPORT_URL", raising=False)
    _assert_report_published(tmp_path, real_sample, s3_endpoint, bucket, uri, options)


def _materialize_report(source, uri, options, out, **config) -> dict:
    import dagster as dg

    from mmfr_assets.definitions import build_definitions

    job = build_definitions(str(source), uri, options).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=[dg.AssetKey("report")],
        run_config={"ops": {"report": {"config": {"out_dir": str(out), "rows_per_view": 4, **config}}}},
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    return event.event_specific_data.materialization.metadata


def _get(url: str):
    """(status, headers, body) of a GET that does not follow redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=30) as response:
            return response.status, response.headers, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, ""


def _assert_report_published(tmp_path, source, endpoint, bucket, uri, options):
    """On an S3 lake the report folder lands in <lake>/_report/, and the link the metadata
    gives opens the viewer: `mmfr serve-report`'s server without a public endpoint, the object
    store's own HTTP endpoint with one (MMFR_REPORT_URL / public_url)."""
    import re
    import threading

    import boto3

    from mmfr_assets.files import subset_folder
    from mmfr_assets.reporting.serve import report_server, report_source

    metadata = _materialize_report(source, uri, options, tmp_path / "report-local")
    assert metadata["report_page"].value == f"{uri}/_report/index.html"
    assert "mmfr serve-report" in metadata["row_viewer_open"].value
    assert "row_viewer_url" not in metadata  # no link that would not open
    keys = set(_objects(endpoint, bucket))
    pages = {"lake/_report/index.html", "lake/_report/viewer/index.html", "lake/_report/funnel.csv"}
    pages |= {f"lake/_report/viewer/{subset_folder(s)}/collected/index.html" for s in SUBSETS}
    assert pages <= keys
    assert int(metadata["report_store_files"].value) == len([k for k in keys if k.startswith("lake/_report/")])
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=bucket, Key="lake/_report/index.html")
    assert head["ContentType"].startswith("text/html")  # a browser shows it, does not download it

    server = report_server(*report_source(uri, options)[:2], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        served = f"http://127.0.0.1:{server.server_address[1]}"
        status, headers, body = _get(f"{served}/viewer/index.html")
        assert status == 200 and "<title>mmfr row viewer</title>" in body
        assert headers["Content-Type"].startswith("text/html")
        first = re.search(r'<a href="([^"]+/index\.html)"', body).group(1)
        status, _, stage_page = _get(f"{served}/viewer/{first}")
        assert status == 200 and re.search(r"<title>[^<]+ · [^<]+</title>", stage_page)  # subset · stage
        assert _get(f"{served}/viewer")[:1] == (301,)
        assert _get(f"{served}/viewer")[1]["Location"] == "/viewer/"
        assert _get(f"{served}/no-such-page.html")[0] == 404
        assert _get(f"{served}/../../etc/passwd")[0] == 404
    finally:
        server.shutdown()
        server.server_close()

    # With the store's HTTP endpoint configured, the metadata links straight into it; files of
    # the previous report the new one does not have are removed.
    boto3.client("s3", endpoint_url=endpoint).put_object(Bucket=bucket, Key="lake/_report/stale.html", Body=b"x")
    public = f"{endpoint}/{bucket}/lake/_report"
    metadata = _materialize_report(source, uri, options, tmp_path / "report-local", public_url=public)
    assert metadata["row_viewer_url"].value == f"{public}/viewer/index.html"
    status, _, body = _get(metadata["row_viewer_url"].value)
    assert status == 200 and "<title>mmfr row viewer</title>" in body
    assert "lake/_report/stale.html" not in set(_objects(endpoint, bucket))


WRITER = textwrap.dedent(
    """
    import json, sys, time, pyarrow as pa
    from mmfr_assets.lake.delta import DeltaLocation, PartitionWriter
    uri, options, subset, start = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    schema = pa.schema([("subset", pa.string()), ("id", pa.string()), ("x", pa.int64())])
    for k in range(3):
        with PartitionWriter(DeltaLocation(uri, options), schema, {"subset": subset}) as w:
            w.write(pa.table({"id": [f"{subset}-{k}-{i}" for i in range(200)], "x": list(range(200))}))
            if k == 0:  # all writers commit their first rewrite at the same moment
                time.sleep(max(0.0, start - time.time()))
            w.commit()
    """
)


def _concurrent_writers(uri, options, subsets, env) -> list[subprocess.CompletedProcess]:
    start = time.time() + 4  # past the writers' imports
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, json.dumps(options), s, str(start)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for s in subsets
    ]
    for p in procs:
        p.communicate(timeout=300)
    return procs


def _assert_all_landed(uri, options, subsets, extra_rows: int = 0) -> None:
    location = DeltaLocation(uri, options)
    for s in subsets:  # the last of each writer's three rewrites, whole, nothing else
        ids = [i for b in read_partition(location, {"subset": s}) for i in b["id"].to_pylist()]
        assert sorted(ids) == sorted(f"{s}-2-{i}" for i in range(200)), s
    assert count_rows(location) == 200 * len(subsets) + extra_rows


@pytest.mark.e2e
def test_concurrent_partition_commits_on_s3_all_land(s3_endpoint, bucket):
    """delta-rs commits `_delta_log/N.json` with a conditional put (If-None-Match): writers of
    different partitions race for each version, the losers retry, nobody overwrites a commit."""
    uri, options = f"s3://{bucket}/t", _options(s3_endpoint)
    with PartitionWriter(DeltaLocation(uri, options), SCHEMA, {"subset": "seed"}) as w:
        w.write(pa.table({"id": ["seed"], "x": [0]}))
        w.commit()
    subsets = [f"s({i})" for i in range(4)]
    procs = _concurrent_writers(uri, options, subsets, {**os.environ})
    assert all(p.returncode == 0 for p in procs), [p.stderr[-2000:] for p in procs]
    _assert_all_landed(uri, options, subsets, extra_rows=1)  # + the seed row
    table = DeltaLocation(uri, options).table()
    assert table.version() == 1 + 3 * len(subsets)  # v0 create, v1 seed, 3 rewrites per writer
    keys = _objects(s3_endpoint, bucket)
    commits = sorted(k for k in keys if k.startswith("t/_delta_log/") and k.endswith(".json"))
    assert len(commits) == table.version() + 1


@pytest.mark.e2e
def test_concurrent_first_commits_on_s3_create_the_table_once(s3_endpoint, bucket):
    location = DeltaLocation(f"s3://{bucket}/fresh", _options(s3_endpoint))
    subsets = [f"s({i})" for i in range(6)]
    errors, versions = race_first_commits(location, subsets)
    assert_race_landed(location, subsets, errors, versions)
