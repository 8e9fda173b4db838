"""`quality_filtered`'s filters, under the name callers of the selection stage import
(`mmfr_assets.selection.quality.FILTERS`). The rules themselves live in `mmfr_assets.rules`,
which the teachers use too."""

from mmfr_assets.rules.quality import FILTER_OF, FILTERS, QualityRules, select_quality  # noqa: F401
