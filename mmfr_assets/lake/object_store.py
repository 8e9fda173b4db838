"""Object storage for the lake: the pyarrow filesystem matching deltalake's storage options.

deltalake reaches S3 through its own object store (Rust `object_store`), configured by
`storage_options` and, for anything not given there, by the standard `AWS_*` environment
variables. Our parquet files are written through pyarrow, so the same settings are resolved here
the same way (option first, then environment) and both libraries talk to the same endpoint, in
the same region, with the same credentials.

Credentials belong in the environment (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a web
identity token, an instance profile...): when no key is given explicitly, pyarrow uses the AWS
SDK's default chain, which reads all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pyarrow.fs as pafs

# Each setting with the spellings deltalake/object_store accept for it (case-insensitive); the
# first is also the environment variable both libraries read.
ENDPOINT = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "ENDPOINT_URL", "ENDPOINT")
REGION = ("AWS_REGION", "AWS_DEFAULT_REGION", "REGION")
ALLOW_HTTP = ("AWS_ALLOW_HTTP", "ALLOW_HTTP")
VIRTUAL_HOSTED = ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "VIRTUAL_HOSTED_STYLE_REQUEST")
ACCESS_KEY = ("AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID")
SECRET_KEY = ("AWS_SECRET_ACCESS_KEY", "SECRET_ACCESS_KEY")
SESSION_TOKEN = ("AWS_SESSION_TOKEN", "AWS_TOKEN", "SESSION_TOKEN", "TOKEN")


def _option(
    options: Mapping[str, str], names: tuple[str, ...], environ: Mapping[str, str]
) -> str | None:
    """The first of `names` set in `options` (any case), else in the environment."""
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return str(value)
    for name in names:
        if name.startswith("AWS_") and environ.get(name):
            return environ[name]
    return None


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def s3_filesystem(
    uri: str, options: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """An S3FileSystem for `s3://bucket/prefix` honouring endpoint, region, plain HTTP and
    path- or virtual-hosted-style addressing as deltalake does; returns it with `bucket/prefix`.
    """
    environ = os.environ if environ is None else environ
    endpoint = _option(options, ENDPOINT, environ)
    allow_http = _true(_option(options, ALLOW_HTTP, environ))
    scheme = "http" if allow_http else "https"
    if endpoint and "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
        endpoint = endpoint.rstrip("/")
        if scheme == "http" and not allow_http:
            raise ValueError(
                f"the S3 endpoint {scheme}://{endpoint} is plain HTTP: set AWS_ALLOW_HTTP=true "
                "in MMFR_LAKE_STORAGE_OPTIONS (deltalake refuses it otherwise)"
            )
    access_key = _option(options, ACCESS_KEY, {})
    secret_key = _option(options, SECRET_KEY, {})
    if (access_key is None) != (secret_key is None):
        raise ValueError("give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    kwargs = {}
    if access_key is not None:  # otherwise the SDK's default chain (environment, profile, IRSA)
        kwargs.update(
            access_key=access_key,
            secret_key=secret_key,
            session_token=_option(options, SESSION_TOKEN, {}),
        )
    filesystem = pafs.S3FileSystem(
        region=_option(options, REGION, environ) or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme,
        force_virtual_addressing=_true(_option(options, VIRTUAL_HOSTED, environ)),
        **kwargs,
    )
    return filesystem, uri.removeprefix("s3://").rstrip("/")
