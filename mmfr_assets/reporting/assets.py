"""The `report` asset: one materialization over every partition with the funnel (subset x stage
x reason), the plots (embedded in the UI's metadata as Markdown images, and written as PNG
files), a static report page and the row viewer, all under `MMFR_REPORT_DIR`.

Dagster 1.13 renders `MetadataValue.md` with Markdown images, and a `data:image/png;base64`
source needs no server, so each plot opens from the materialization in the UI. The same files
are written to disk, replaced whole on each run (`files.atomic_folder`).
"""


import base64
from collections.abc import Iterable, Sequence
from html import escape

import dagster as dg
from pydantic import Field

from mmfr_assets.dedup.savings import savings, savings_markdown
from mmfr_assets.reporting.audit import SAMPLE_PER_REASON, audit, audit_html, audit_markdown, sampled_ids
from mmfr_assets.files import atomic_folder
from mmfr_assets.lineage import NAME, STAGE_NAMES, funnel_stages
from mmfr_assets.lake.delta import pinned_snapshots
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lake.shards import check_lake
from mmfr_assets.settings import REPORT_URL_ENV, report_location
from mmfr_assets.planning.spend import markdown_html, spend_sections
from mmfr_assets.reporting.publish import metadata_value, public_report_url, report_links
from mmfr_assets.reporting.stats import OPTIONAL_TABLES, collect_stats, stage_names
from mmfr_assets.viewer.build import write_viewer
from mmfr_assets.viewer.render import counts_table, link, page

TITLES = {
    "pass_rate_distribution": "Pass-rate distribution per subset",
    "length_kept_vs_dropped": "Trace and caption length, kept vs dropped",
    "drops_by_reason": "Drops by reason per subset",
    "verifier_methods": "Verifier method shares",
    "rl_pass_rates": "RL candidates by policy pass rate, kept vs dropped",
}


class ReportConfig(dg.Config):
    """Where the report goes and how much of each stage the row viewer shows."""

    out_dir: str = Field(
        default="",
        description="Local folder the report is written to. Empty: MMFR_REPORT_DIR, else `report` "
        "beside a local lake, else data/report. On an object-store lake the folder is also "
        "written to <lake>/_report/.")
    public_url: str = Field(
        default="",
        description=f"HTTP address at which the object store serves <lake>/_report/ (a public "
        f"bucket, bucket website, CDN or proxy), for clickable links in the metadata. Empty: "
        f"{REPORT_URL_ENV}, else the metadata names the command that serves it (mmfr serve-report).")
    kept_asset: str = Field(
        default=NAME.difficulty_filtered,
        description="The selection table whose kept rows the 'kept vs dropped' length plot compares "
        "with its dropped rows (difficulty_filtered, or difficulty_filtered_586k).")
    rows_per_view: int = Field(
        default=100,
        description="Rows the row viewer writes per subset, stage and view (all rows, kept rows, one "
        "view per drop reason); the rest are counted, not shown.")
    page_size: int = Field(default=25, description="Row cards per viewer page.")
    batch_size: int = Field(
        default=1024, description="Rows read per batch while streaming a partition (bounds memory).")
    audit_rows_per_reason: int = Field(
        default=SAMPLE_PER_REASON,
        description="Removed rows sampled per subset, stage and reason for the audit (a fixed seed: "
        "the same rows each time), each with its detail and its row-viewer card.")


def funnel_pivot(funnel, stages: Sequence[str]) -> tuple[list[str], list[list]]:
    """Rows kept per subset (rows) and stage (columns, in lineage order): the cross-subset
    funnel a reader scans first."""
    kept = {(subset, stage): rows for subset, stage, filt, reason, rows in funnel.iter_rows()
            if reason == "(kept)"}
    subsets = list(dict.fromkeys(subset for subset, _ in kept))
    header = ["subset", *stages]
    return header, [[subset, *[kept.get((subset, stage), 0) for stage in stages]] for subset in subsets]


def _drop_rows(funnel) -> list[tuple]:
    return [row for row in funnel.iter_rows() if row[2] and row[4]]


def funnel_markdown(funnel, stages: Sequence[str] = ()) -> str:
    """The pivot (subset x stage, rows kept) first, then the drops by reason below."""
    stages = list(stages) or list(dict.fromkeys(funnel["stage"].to_list()))
    header, rows = funnel_pivot(funnel, stages)
    lines = ["**Rows kept, per subset and stage**", "",
             "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(stages)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    lines += ["", "**Rows dropped, per reason**", "",
              "| subset | stage | filter | reason | rows |", "| --- | --- | --- | --- | ---: |"]
    lines += [f"| {subset} | {stage} | {filt} | {reason} | {n} |"
              for subset, stage, filt, reason, n in _drop_rows(funnel)]
    return "\n".join(lines)


def _report_page(pngs: dict, funnel, absent: Sequence[str], sources: dict[str, str],
                 stages: Sequence[str] = (), audit_section: str = "", spend: str = "") -> str:
    figures = "".join(
        f"<h2>{escape(TITLES[name])}</h2><img src=\"plots/{name}.png\" alt=\"{escape(TITLES[name])}\">"
        for name in pngs
    )
    notes = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in sources.items())
    if absent:
        notes += f"<li>tables not materialized (not in this report): {escape(', '.join(absent))}</li>"
    header, pivot = funnel_pivot(funnel, list(stages) or list(dict.fromkeys(funnel["stage"].to_list())))
    pivot = [[escape(str(v)) if not isinstance(v, int) else v for v in row] for row in pivot]
    drops = [[escape(str(v)) if not isinstance(v, int) else v for v in row] for row in _drop_rows(funnel)]
    body = (f"<p>{link('viewer/index.html', 'Open the row viewer')}</p>"
            "<h2>Rows kept, per subset and stage</h2>" + counts_table(header, pivot)
            + f"<ul>{notes}</ul>{spend}{figures}"
            "<h2>Rows dropped, per reason</h2>" + counts_table(["subset", "stage", "filter", "reason", "rows"], drops)
            + audit_section)
    return page("mmfr report", body)


def build_report(subsets: Sequence[str], available: Iterable[str]) -> dg.AssetsDefinition:
    """The report over `subsets`, depending on the tables it reads that are in the graph: the
    funnel's stages (every stage on the line and its branches) and the optional tables."""
    available = set(available)
    deps = [a for a in dict.fromkeys([*funnel_stages(), *OPTIONAL_TABLES]) if a in available]

    @dg.asset(
        name="report",
        group_name="report",
        deps=deps,
        kinds={"matplotlib", "html"},
        description="Funnel (subset x stage x reason), plots and the row viewer over every subset.",
    )
    def report(context: dg.AssetExecutionContext, config: ReportConfig, lake: LakeResource) -> dg.MaterializeResult:
        with pinned_snapshots():  # each table's log read once, one version of each in the report
            return materialize_report(context, config, lake, subsets)

    return report


def materialize_report(context: dg.AssetExecutionContext, config: ReportConfig, lake: LakeResource,
                       subsets: Sequence[str]) -> dg.MaterializeResult:
    """The report's work: funnel, plots, the row viewer and the audit over `subsets`."""
    check_lake(lake.location(NAME.collected))  # a subset's shards are summed: all of them
    out = report_location(config.out_dir, lake.uri)
    stats = collect_stats(lake, subsets, kept_asset=config.kept_asset, batch_size=config.batch_size)
    absent = [t for t, here in stats.present.items() if not here]
    if absent:
        context.log.warning(f"report: tables not materialized, left out: {', '.join(absent)}")
    sources = {"pass rates": stats.pass_rate_source, "verifier methods": stats.method_source}
    # Imported here: matplotlib is ~0.4 s of every run worker's start, and only this asset draws.
    from mmfr_assets.reporting.plots import PLOTS

    pngs = {name: draw(stats) for name, draw in PLOTS.items()}
    spend = spend_sections(lake, stats.subsets)  # what each kept row cost; planned vs actual
    stages = [s for s in stage_names(lake) if s in STAGE_NAMES]
    removed, sample = audit(lake, stats.subsets, stages, per_reason=config.audit_rows_per_reason)
    with atomic_folder(out) as staging:
        (staging / "plots").mkdir()
        for name, png in pngs.items():
            (staging / "plots" / f"{name}.png").write_bytes(png)
        stats.funnel.write_csv(staging / "funnel.csv")
        pages = write_viewer(lake, stats.subsets, stages, staging / "viewer", sampled_ids(sample),
                             page_size=config.page_size, rows_per_view=config.rows_per_view)
        sample_pages = {(p.subset, p.stage, reason): f"viewer/{path}"
                        for p in pages for reason, path in p.samples.items()}
        (staging / "index.html").write_text(
            _report_page(pngs, stats.funnel, absent, sources, stage_names(lake),
                         audit_html(removed, sample, sample_pages, per_reason=config.audit_rows_per_reason),
                         "".join(f"<h2>{escape(t)}</h2>{markdown_html(md)}" for _, t, md in spend)),
            "utf-8")
    context.log.info(f"report: {len(pngs)} plots, {len(pages)} viewer stages in {out}")
    metadata = {
        "funnel": dg.MetadataValue.md(funnel_markdown(stats.funnel, stage_names(lake))),
        **{
            f"plot/{name}": dg.MetadataValue.md(
                f"**{TITLES[name]}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
            )
            for name, png in pngs.items()
        },
        # On an object-store lake the folder is also written to <lake>/_report/ (publish.py)
        **{key: metadata_value(link) for key, link in report_links(
            out, lake.uri, lake.storage_options, public_report_url(config.public_url)).items()},
        "tables_absent": ", ".join(absent) or "none",
        "pass_rate_source": stats.pass_rate_source,
        "verifier_method_source": stats.method_source,
        "subsets": dg.MetadataValue.text(str(len(stats.subsets))),
        "subsets_not_materialized": ", ".join(stats.not_materialized) or "none",
        "viewer_pages": dg.MetadataValue.text(str(len(pages))),
        # near-duplicates and benchmark leaks removed before the teachers, and the asks saved
        "dedup_savings": dg.MetadataValue.md(savings_markdown(savings(lake, stats.subsets))),
        # who removed what, and a fixed-seed sample of removed rows to check by eye
        "audit": dg.MetadataValue.md(audit_markdown(
            removed, sample, sample_pages, base_url=public_report_url(config.public_url),
            per_reason=config.audit_rows_per_reason)),
        **{key: dg.MetadataValue.md(md) for key, _, md in spend},
    }
    return dg.MaterializeResult(metadata=metadata)


def with_report(
    partitions: dg.PartitionsDefinition, assets: Sequence[dg.AssetsDefinition]
) -> list[dg.AssetsDefinition]:
    """`assets` and the report over their partitions, depending on the selection assets among
    them (so assets other steps add, such as the 586K recipe, are picked up where they exist)."""
    names = [key.path[-1] for a in assets for key in a.keys]
    return [*assets, build_report(partitions.get_partition_keys(), names)]
