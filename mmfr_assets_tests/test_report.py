"""The `report` asset over real rows: the funnel table equals the lake's counts, the plots are
PNG images embedded in the metadata, the row viewer shows every row's fields escaped and
filters dropped rows by reason."""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from html import escape
from unittest import mock

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from mmfr_assets.files import subset_folder
from mmfr_assets.lake.delta import DeltaLocation
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.lake.lookup import SubsequenceLookup
from mmfr_assets.lineage import BRANCH_NAMES
from mmfr_assets.reporting.stats import LENGTH_BINS, collect_stats
from mmfr_assets_tests.lake_fixture import SUBSETS, materialize_subsets


REPORT_OPENS: Counter = Counter()  # table -> times the report's run opened it (the fixture)


@pytest.fixture(scope="module")
def reported(real_sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    lake = str(root / "lake")
    instance = dg.DagsterInstance.ephemeral()
    defs = materialize_subsets(real_sample, lake, SUBSETS[:2], instance)
    job = defs.resolve_implicit_global_asset_job_def()
    out = root / "out"
    opened = DeltaLocation.latest

    def counted(location):  # every table open of the report's run, counted (REPORT_OPENS)
        table = opened(location)
        if table is not None:
            REPORT_OPENS[location.uri.rsplit("/", 1)[-1]] += 1
        return table

    with mock.patch.object(DeltaLocation, "latest", counted):
        result = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("report")],
            run_config={"ops": {"report": {"config": {"out_dir": str(out), "rows_per_view": 6,
                                                       "page_size": 4}}}},
        )
    assert result.success
    [event] = result.get_asset_materialization_events()
    return LakeResource(uri=lake), out, event.event_specific_data.materialization.metadata


def test_funnel_is_the_lakes_counts(reported):
    lake, out, metadata = reported
    funnel = pl.read_csv(out / "funnel.csv", schema_overrides={"filter": pl.String})
    rejections = pl.read_delta(f"{lake.uri}/rejections")
    for (subset, stage, reason), n in rejections.group_by("subset", "stage", "reason").len().rows_by_key(
            ["subset", "stage", "reason"]).items():
        row = funnel.filter((pl.col("subset") == subset) & (pl.col("stage") == stage)
                            & (pl.col("reason") == reason))
        assert row["rows"].to_list() == [n[0][0]]
    kept = funnel.filter(pl.col("reason") == "(kept)")
    for subset, stage, rows in kept.select("subset", "stage", "rows").iter_rows():
        assert rows == pl.read_delta(f"{lake.uri}/{stage}").filter(pl.col("subset") == subset).height
    # Every subset's rows are accounted for at every filtering stage.
    for subset in SUBSETS[:2]:
        per = funnel.filter(pl.col("subset") == subset)
        collected = per.filter((pl.col("stage") == "collected") & (pl.col("reason") == "(kept)"))["rows"][0]
        selected = per.filter((pl.col("stage") == "difficulty_filtered") & (pl.col("reason") == "(kept)"))["rows"][0]
        # (the 586K recipe and the RL set are branches beside the line: their drops are their own)
        dropped = per.filter(pl.col("filter").is_not_null() & (pl.col("filter") != "")
                             & ~pl.col("stage").is_in(BRANCH_NAMES))["rows"].sum()
        assert collected == selected + dropped
    # The pivot first (rows kept, subset x stage, in lineage order), the drops by reason below.
    markdown = metadata["funnel"].value
    assert markdown.index("Rows kept, per subset and stage") < markdown.index("Rows dropped, per reason")
    assert "| subset | collected | cleaned | deduplicated | distilled |" in markdown
    bmmr = next(line for line in markdown.splitlines() if line.startswith("| BMMR | 10 |"))
    kept_rows = kept.filter(pl.col("subset") == "BMMR")["rows"].to_list()
    assert bmmr == "| BMMR | " + " | ".join(str(n) for n in kept_rows) + " |"
    assert "| BMMR | quality_filtered | correctness | correctness_inconsistent |" in markdown


def test_the_report_reads_each_tables_log_once(reported):
    """The report reads every subset of every table (funnel, plots, viewer, audit): within its
    run each table is opened once and that snapshot read throughout (`pinned_snapshots`). It
    opened them 458 times in all before (`collected` 57 times, for two subsets): on S3 each open
    reads the log again."""
    assert {"collected", "rejections", "distilled", "quality_filtered"} <= set(REPORT_OPENS)
    assert max(REPORT_OPENS.values()) == 1, REPORT_OPENS.most_common(3)


def test_plots_are_embedded_pngs_and_files(reported):
    _, out, metadata = reported
    names = ["pass_rate_distribution", "length_kept_vs_dropped", "drops_by_reason", "verifier_methods"]
    for name in names:
        markdown = metadata[f"plot/{name}"].value
        data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown).group(1)
        png = base64.b64decode(data)
        assert png == (out / "plots" / f"{name}.png").read_bytes()
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 200
    # Every table the report can use exists on this graph, and the plots say which they used.
    assert metadata["tables_absent"].value == "none"
    assert metadata["pass_rate_source"].value == "student_rollouts.pass_rate"
    assert metadata["verifier_method_source"].value == "answer_verdicts.method"


def test_the_report_says_what_each_kept_row_cost(reported):
    _, out, metadata = reported
    cost = metadata["cost_per_kept_row"].value
    assert "nothing was spent on models" in cost  # the sample's annotations: no endpoint asked
    assert "What each kept row cost" in (out / "index.html").read_text()
    assert "planned_vs_actual" not in metadata  # no `mmfr run` saved a plan beside this lake


def test_length_histograms_count_every_distilled_row(reported):
    lake, _, _ = reported
    stats = collect_stats(lake, list(SUBSETS[:2]))
    distilled = pl.read_delta(f"{lake.uri}/distilled").filter(pl.col("subset").is_in(SUBSETS[:2]))
    kept = pl.read_delta(f"{lake.uri}/difficulty_filtered").filter(pl.col("subset").is_in(SUBSETS[:2]))
    for kind in ("trace", "caption"):
        assert stats.lengths[(kind, "kept")].sum() + stats.missing_lengths[(kind, "kept")] == kept.height
        total = sum(stats.lengths[(kind, g)].sum() + stats.missing_lengths[(kind, g)] for g in ("kept", "dropped"))
        assert total == distilled.height
    words = distilled["response"].drop_nulls().map_elements(lambda t: len(t.split()), return_dtype=pl.Int64)
    assert words.max() < LENGTH_BINS[-1]
    rollouts = pl.read_delta(f"{lake.uri}/student_rollouts").filter(pl.col("subset").is_in(SUBSETS[:2]))
    rates = rollouts["pass_rate"].round(3).value_counts()
    for rate, n in rates.iter_rows():
        assert sum(v for (s, r), v in stats.pass_rates.items() if r == rate) == n
    verdicts = pl.read_delta(f"{lake.uri}/answer_verdicts").filter(pl.col("subset").is_in(SUBSETS[:2]))
    for method, n in verdicts["method"].value_counts().iter_rows():
        assert sum(v for (s, m), v in stats.methods.items() if m == method) == n


def test_viewer_pages_escape_text_and_filter_by_reason(reported):
    lake, out, metadata = reported
    assert metadata["row_viewer"].value == str(out / "viewer" / "index.html")
    subset = SUBSETS[0]
    stage_dir = out / "viewer" / subset_folder(subset) / "quality_filtered"
    index = (stage_dir / "index.html").read_text()
    drops = pl.read_delta(f"{lake.uri}/rejections").filter(
        (pl.col("subset") == subset) & (pl.col("stage") == "quality_filtered"))
    assert drops.height > 0
    for reason, ids in drops.group_by("reason").agg("id").iter_rows():
        assert f"dropped: {reason}" in index
        pages = sorted(stage_dir.glob(f"reason-{reason}-*.html"))
        shown = set()
        for p in pages:
            shown |= set(re.findall(r'<article class="dropped" id="([^"]+)"', p.read_text()))
        assert shown == {escape(i, quote=True) for i in ids[:6]} or shown <= {escape(i, quote=True) for i in ids}
        assert len(shown) == min(len(ids), 6)
    # Traces hold <think> blocks: shown as text, never as markup.
    distilled = pl.read_delta(f"{lake.uri}/distilled").filter(pl.col("subset") == subset)
    first = (stage_dir / "all-1.html").read_text()
    assert "&lt;think&gt;" in first and "<think>" not in first
    assert escape(distilled["question"][0]) in first
    # Each row has its image, written once per subset, the same bytes as the lake's.
    images = re.findall(r'<img class="row" loading="lazy" alt="row image" src="\.\./images/([^"]+)"', first)
    assert images and all((out / "viewer" / subset_folder(subset) / "images" / i).exists() for i in images)


def test_subsequence_lookup_matches_rows_in_order(reported):
    lake, _, _ = reported
    distilled = pl.read_delta(f"{lake.uri}/distilled").filter(pl.col("subset") == SUBSETS[0])
    kept = set(pl.read_delta(f"{lake.uri}/quality_filtered").filter(pl.col("subset") == SUBSETS[0])["id"])
    with SubsequenceLookup(lake.location("quality_filtered"), {"subset": SUBSETS[0]}, ["answer"],
                           batch_size=3) as lookup:
        found = lookup.get(distilled["id"].to_list())
    assert [r is not None for r in found] == [i in kept for i in distilled["id"]]
    with SubsequenceLookup(lake.location("no_such_table"), {"subset": "x"}) as lookup:
        assert lookup.get(["a"]) == [None]


def test_report_on_an_empty_lake_draws_what_it_can_and_says_what_is_missing(tmp_path):
    from mmfr_assets.reporting.plots import PLOTS

    stats = collect_stats(LakeResource(uri=str(tmp_path / "lake")), ["A", "B(c)"])
    assert stats.subsets == [] and stats.not_materialized == ["A", "B(c)"]
    assert "not materialized" in stats.pass_rate_source and stats.funnel.height == 0
    for draw in PLOTS.values():
        assert draw(stats).startswith(b"\x89PNG")


def test_not_materialized_subsets_are_listed_not_drawn(reported):
    _, _, metadata = reported
    assert metadata["subsets"].value == "2"
    assert "Zebra-CoT-Physics" in metadata["subsets_not_materialized"].value
    assert "Zebra-CoT-Physics" not in metadata["funnel"].value


def test_row_card_escapes_every_text_field():
    from mmfr_assets.viewer.render import row_card

    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    row = {"id": evil, "question": evil, "answer": evil, "trace": f"<think>{evil}</think>",
           "caption": evil, "pass_rate": 0.25, "is_consistent": True, "consistency_analysis": evil,
           "trace_origin": evil, "caption_origin": "dataset"}
    html = row_card(row, image_src='x" onerror="alert(3)', drop={"filter": evil, "reason": evil,
                    "detail": evil}, stage="quality_filtered", verdicts={evil: evil})
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.attrs, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += attrs

        def handle_data(self, data):
            self.text.append(data)

    parsed = Tags()
    parsed.feed(html)
    # The markup is only ours: no script element, no event handler; the text reads as written.
    assert "script" not in parsed.tags and parsed.tags.count("img") == 1
    assert {name for name, _ in parsed.attrs} <= {"class", "id", "loading", "alt", "src"}
    assert ("src", 'x" onerror="alert(3)') in parsed.attrs and ("id", evil) in parsed.attrs
    assert "".join(parsed.text).count(evil) >= 9


def test_viewer_pages_are_bounded_and_linked(reported):
    _, out, _ = reported
    stage_dir = out / "viewer" / subset_folder(SUBSETS[0]) / "collected"
    # 10 rows, rows_per_view=6, page_size=4: pages of 4 and 2 rows, the last without "next".
    first, second = (stage_dir / "all-1.html").read_text(), (stage_dir / "all-2.html").read_text()
    assert first.count("<article") == 4 and second.count("<article") == 2
    assert 'href="all-2.html"' in first and "next" not in second
    assert not (stage_dir / "all-3.html").exists()
    assert "<td>all rows</td>" not in (stage_dir / "index.html").read_text()  # a link, with counts
    assert re.search(r'all rows</a></td><td class="n">10</td><td class="n">6</td>',
                     (stage_dir / "index.html").read_text())


def _cards(html: str) -> dict[str, str]:
    """Row id -> its card's HTML, for every card of a viewer page."""
    from html import unescape

    return {unescape(m.group(1)): m.group(0) for m in
            re.finditer(r'<article class="(?:kept|dropped)" id="([^"]+)".*?</article>', html, re.S)}


def test_every_stage_shows_the_image_collected_shows(reported):
    """Images are stored once (collected's originals, cleaned's changed bytes): every stage's
    cards join them back, so a row whose image collected shows has it at every stage (the
    viewer used to lose it after the first row an upstream stage dropped)."""
    from mmfr_assets.files import image_extension
    from mmfr_assets.viewer.build import STAGE_INPUT

    lake, out, _ = reported
    collected = pl.read_delta(f"{lake.uri}/collected").select("subset", "id", "image_bytes")
    checked = Counter()
    for subset in SUBSETS[:2]:
        showable = set()
        for row_id, data in collected.filter(pl.col("subset") == subset).select("id", "image_bytes").iter_rows():
            try:
                image_extension(data)
                showable.add(row_id)
            except Exception:
                pass
        for stage in STAGE_INPUT:
            stage_dir = out / "viewer" / subset_folder(subset) / stage
            assert (stage_dir / "index.html").exists(), (subset, stage)
            for page_file in stage_dir.glob("*-*.html"):
                for row_id, card in _cards(page_file.read_text()).items():
                    if row_id in showable:
                        src = re.search(r'<img class="row"[^>]* src="\.\./images/([^"]+)"', card)
                        assert src, (subset, stage, page_file.name, row_id)
                        assert (stage_dir.parent / "images" / src.group(1)).exists()
                        checked[stage] += 1
                    else:
                        assert '<p class="noimage">' in card
    # Past the stages that drop rows, too (the rows after a drop were the ones losing images).
    assert all(checked[stage] > 0 for stage in STAGE_INPUT if stage != "difficulty_filtered")


def test_model_steps_link_the_page_that_shows_their_columns(reported):
    """A model step's materialization links `row_viewer` to a page that exists and shows the
    step's columns on its cards."""
    from mmfr_assets.files import viewer_page
    from mmfr_assets.lineage import STEP_SHOWN_IN

    lake, out, _ = reported
    subset = SUBSETS[0]
    for step, stage in STEP_SHOWN_IN.items():
        page_file = viewer_page(subset, step, out)
        assert page_file.exists(), step
        assert page_file.parent.name == stage
        cards = _cards((page_file.parent / "all-1.html").read_text())
        assert cards and all(f"<dt>{step}." in card for card in cards.values()), step


def test_pages_say_where_they_are_and_cards_lead_with_the_answer(reported):
    """Each page says "page n of N" and links every page by number; a card shows the trace's
    final answer against the reference before anything else, and the end of the trace open
    (the whole trace collapsed)."""
    from mmfr_assets.rules.verify.extract import final_answer

    lake, out, _ = reported
    stage_dir = out / "viewer" / subset_folder(SUBSETS[0]) / "quality_filtered"
    first, second = (stage_dir / "all-1.html").read_text(), (stage_dir / "all-2.html").read_text()
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert 'href="all-2.html">2</a>' in first and 'href="all-1.html">1</a>' in second
    assert "rows 1–4 of 6 shown (of 10 in this view)" in first
    distilled = pl.read_delta(f"{lake.uri}/distilled").filter(pl.col("subset") == SUBSETS[0])
    traces = dict(distilled.select("id", "response").iter_rows())
    for row_id, card in _cards(first).items():
        order = [card.index(s) for s in ("Final answer (trace)", "<h4>Question", "End of the trace",
                                         "<summary>Whole trace")]
        assert order == sorted(order), row_id
        assert escape(final_answer(traces[row_id])) in card.split("<dt>Reference answer")[0]


@pytest.mark.parametrize(("stage", "filter_", "reason", "detail", "who"), [
    ("cleaned", "image", "image_corrupt", "not an image: ...", "rule"),
    ("cleaned", "text", "text_non_answer_question", None, "cleaner model (question_review)"),
    ("deduplicated", "dedup", "duplicate_of", "(BMMR, 1)", "dedup rule (a near-duplicate of a row kept)"),
    ("deduplicated", "benchmark", "contaminated", "MathVista: ...", "decontamination rule (benchmark n-grams)"),
    ("quality_filtered", "correctness", "correctness_inconsistent",
     "inconsistent (decided by math_verify): final answer «7» vs reference «8»", "math_verify"),
    ("quality_filtered", "correctness", "correctness_inconsistent",
     "inconsistent (verdict from the dataset's is_consistent): ...", "dataset label (is_consistent)"),
    ("quality_filtered", "correctness", "correctness_unverified", "no verdict (none): ...", "no verdict"),
    ("difficulty_filtered", "difficulty", "difficulty_too_easy", "pass rate 0.75 fails pass rate <= 0",
     "student pass rate"),
    ("difficulty_filtered", "difficulty", "difficulty_too_easy",
     "pass rate between 0.5 and 0.75 fails pass rate <= 0", "pass-rate bounds"),
    ("difficulty_filtered", "difficulty", "difficulty_pass_rate_missing", "no student_llm endpoint", "no pass rate"),
])
def test_who_decided_a_removal(stage, filter_, reason, detail, who):
    from mmfr_assets.reporting.audit import decided_by

    assert decided_by(stage, filter_, reason, detail) == who


def test_the_audit_counts_every_removal_and_samples_each_reason(reported):
    """The audit's counts are the rejections table's, every removal once; the sample holds at
    most `per_reason` rows of each (subset, stage, reason), drawn again the same on a re-run,
    and other rows with another seed; the report links each sampled row to its card."""
    from mmfr_assets.reporting.audit import audit

    lake, out, metadata = reported
    stages = ["cleaned", "deduplicated", "quality_filtered", "difficulty_filtered"]
    frame, sample = audit(lake, SUBSETS[:2], stages, per_reason=2)
    rejections = pl.read_delta(f"{lake.uri}/rejections").filter(
        pl.col("stage").is_in(stages) & pl.col("subset").is_in(SUBSETS[:2]))
    assert frame["rows"].sum() == rejections.height
    per_group = Counter((r.subset, r.stage, r.reason) for r in sample)
    expected = rejections.group_by("subset", "stage", "reason").len()
    assert per_group == {(s, st, r): min(n, 2) for s, st, r, n in expected.iter_rows()}
    ids = {(r.subset, r.stage, r.id) for r in sample}
    assert ids <= set(rejections.select("subset", "stage", "id").iter_rows())
    assert audit(lake, SUBSETS[:2], stages, per_reason=2)[1] == sample
    bigger = [r for r in audit(lake, SUBSETS[:2], stages, per_reason=1, seed=7)[1]]
    assert len(bigger) == len(per_group)
    # In the report: the section, and every sampled row's link opens a page holding its card.
    page = (out / "index.html").read_text()
    assert "Audit: who removed what" in page and "decided by" in metadata["audit"].value
    links = re.findall(r'href="(viewer/[^"#]+/sample-[^"#]+)#([^"]+)"', page)
    assert links and len(links) == len(re.findall(r"<tr><td>", page.split("A random sample")[1]))
    for path, anchor in links:
        from urllib.parse import unquote

        assert f'id="{escape(unquote(anchor), quote=True)}"' in (out / path).read_text(), (path, anchor)


@pytest.mark.parametrize(("stage", "rows_in", "subset", "link"), [
    ("quality_filtered", 10, "BMMR", True),
    ("answer_verdicts", 10, "BMMR", True),       # on quality_filtered's page
    ("dedup_signatures", 10, "BMMR", False),     # no page shows signatures
    ("deduplicated", 0, "BMMR", False),          # nothing reached it: no page is built
    ("deduplicated", 0, "BMMR|2", True),         # a shard: the subset's other shards may have rows
])
def test_row_viewer_metadata_never_points_at_a_page_never_built(stage, rows_in, subset, link):
    import pyarrow as pa

    from mmfr_assets.stage import stage_metadata
    from mmfr_assets.stage import StageRun

    run = StageRun(stage, subset, (), pa.schema([("id", pa.string())]), f"/tmp/lake/{stage}",
                   "/tmp/lake/rejections", rows_in=rows_in)
    value = stage_metadata(run)["row_viewer"]
    assert isinstance(value, dg.PathMetadataValue) == link, value
    if not link:
        assert value.value.startswith("none: ")


def test_thresholds_metadata_is_what_was_applied():
    """The older `max_ngram_occurrences` is listed only where a run set it, and the count it
    became is `ngram_min_count` (the metadata once showed `max_ngram_occurrences: null`)."""
    from mmfr_assets.rules.config import QualityThresholds

    assert "max_ngram_occurrences" not in QualityThresholds().applied()
    applied = QualityThresholds(max_ngram_occurrences=4).applied()
    assert (applied["max_ngram_occurrences"], applied["ngram_min_count"]) == (4, 5)
