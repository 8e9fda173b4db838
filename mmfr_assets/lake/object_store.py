"""Object storage for the lake: the pyarrow filesystem matching deltalake's storage options.

deltalake reaches S3 through its own object store configured by `storage_options`; our parquet
files are written through pyarrow, so the same options are translated here once.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow.fs as pafs


def _option(options: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def s3_filesystem(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """An S3FileSystem for `s3://bucket/prefix` honouring endpoint, region, keys and plain HTTP."""
    endpoint = _option(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "endpoint_url")
    scheme = None
    if endpoint and "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
    allow_http = (_option(options, "AWS_ALLOW_HTTP", "allow_http") or "").lower() == "true"
    filesystem = pafs.S3FileSystem(
        access_key=_option(options, "AWS_ACCESS_KEY_ID", "access_key_id"),
        secret_key=_option(options, "AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        session_token=_option(options, "AWS_SESSION_TOKEN", "session_token"),
        region=_option(options, "AWS_REGION", "AWS_DEFAULT_REGION", "region") or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme or ("http" if allow_http else "https"),
    )
    return filesystem, uri.removeprefix("s3://")
