"""The lake resource: the Delta root every asset writes under (`MMFR_LAKE`)."""

from __future__ import annotations

import dagster as dg

from mmfr_assets.lake.delta import DeltaLocation

REJECTIONS_TABLE = "rejections"


class LakeResource(dg.ConfigurableResource):
    """Root URI of the lake: a local folder or object storage (s3://bucket/prefix).

    Each asset's table lives at `<uri>/<asset name>`; dropped rows at `<uri>/rejections`.
    `storage_options` are deltalake's (for S3: AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP…);
    credentials are better left to the standard AWS_* environment variables.
    """

    uri: str
    storage_options: dict[str, str] = {}

    def location(self, table: str) -> DeltaLocation:
        return DeltaLocation(f"{self.uri.rstrip('/')}/{table}", dict(self.storage_options))
