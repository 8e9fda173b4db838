"""The filters `deduplicated` drops rows by: benchmark leaks first, then near-duplicates.

A module of its own (it imports only `stage.Filter`) so that the lineage table names a stage's
filters without importing the stage's asset, which imports the lineage for its upstream.
"""

from __future__ import annotations

from mmfr_assets.stage import Filter

FILTERS = (Filter("benchmark", ("contaminated",)), Filter("dedup", ("duplicate_of",)))
