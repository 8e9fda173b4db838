"""The Dagster UI in a real browser (headless Debian Chromium driven by Playwright): the asset
graph, a partitioned asset with the source's subsets as partitions, and a materialization
launched with the UI's own Materialize button and partition picker, run by the daemon's queue.

Screenshots of every step are saved under the test's tmp_path (printed at the end), or under
$MMFR_TEST_OUTPUT/browser when that is set (CI artifacts, a look by hand).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmfr_assets.lake.delta import DeltaLocation, count_rows
from mmfr_assets_tests.dagster_process import (
    daemon,
    dagster_env,
    graphql,
    webserver,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("MMFR_CHROMIUM", "/usr/bin/chromium"))
# Headless, and nothing that phones home: no sync, updates, background requests, QUIC.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SUBSET = "FineVision-geo170k(qa)"  # the partition we launch, a name the picker must handle
TIMEOUT_MS = 60_000

MATERIALIZATIONS = """
query M($partitions: [String!]) {
  assetOrError(assetKey: {path: ["collected"]}) {
    ... on Asset { assetMaterializations(partitions: $partitions) {
      partition runId metadataEntries { label ... on IntMetadataEntry { intValue } } } }
  }
  runsOrError { ... on Runs { results { runId status tags { key value } } } }
}
"""


def _browser_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("MMFR_REQUIRE_BROWSER") == "1"


@pytest.fixture
def sync_playwright():
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install --no-install-recommends chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        problems.append("the python package playwright is missing (pip install playwright; "
                        "never `playwright install`: the test drives Debian's Chromium)")
    if problems:
        if _browser_required():
            pytest.fail("browser test required here (CI): " + "; ".join(problems))
        pytest.skip("; ".join(problems))
    return sync_playwright


@pytest.fixture
def screenshots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    if os.environ.get("MMFR_TEST_OUTPUT"):
        target = Path(os.environ["MMFR_TEST_OUTPUT"]) / "browser"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        folder = target
    print(f"\nscreenshots: {folder}")


@contextmanager
def browser_page(sync_playwright, screenshots: Path, *, height: int):
    """A page of headless Chromium, 1400 px wide; on a failure, a screenshot of what it showed."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        try:
            yield page
        except Exception:
            page.screenshot(path=str(screenshots / "failure.png"))  # what the user saw
            raise
        finally:
            browser.close()


def test_materialize_a_partition_from_the_ui(tmp_path, real_sample, sync_playwright, screenshots):
    lake = tmp_path / "lake"
    env = dagster_env(tmp_path / "home", real_sample, lake)
    daemon_log = tmp_path / "daemon.log"
    # Webserver first: it creates the fresh instance's storage before the daemon opens it (two
    # processes initializing one SQLite instance at once can both stamp its schema version).
    with webserver(env, tmp_path / "webserver.log") as url, daemon(env, daemon_log):
        with browser_page(sync_playwright, screenshots, height=900) as page:
            _drive_ui(page, url, screenshots)
        data = graphql(url, MATERIALIZATIONS, {"partitions": [SUBSET]})

    # What the browser showed is what happened: one run, from the UI, for that partition...
    runs = data["runsOrError"]["results"]
    assert [r["status"] for r in runs] == ["SUCCESS"]
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["dagster/partition"] == SUBSET and tags.get("dagster/from_ui") == "true"
    # ...which materialized `collected` for it, and the lake holds its rows.
    (materialization,) = data["assetOrError"]["assetMaterializations"]
    meta = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
    assert meta["dagster/row_count"] == 10
    assert count_rows(DeltaLocation(str(lake / "collected")), {"subset": SUBSET}) == 10


#: True once no finite animation or CSS transition is running (spinners, which never end, do
#: not count): what a screenshot waits for instead of a fixed sleep.
_SETTLED = """() => document.getAnimations().every(
    a => a.playState !== "running" || a.effect === null || a.effect.getComputedTiming().endTime === Infinity)"""


def settle(page) -> None:
    """Wait until the page's transitions have ended and two frames have been painted."""
    page.wait_for_function(_SETTLED)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def _drive_ui(page, url: str, screenshots: Path) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    elsewhere: list[str] = []

    def loopback_only(route):
        # The UI must work offline; anything not served by our webserver is refused.
        if route.request.url.startswith(url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)

    def shot(name: str) -> None:
        settle(page)
        page.screenshot(path=str(screenshots / f"{name}.png"))

    # 1. The asset graph: the stage groups of the code location, then every asset upstream of
    #    the last one (the lineage view expands the groups).
    page.goto(f"{url}/asset-groups", wait_until="networkidle")
    for group in ("collection", "cleaning", "distillation", "selection"):
        page.get_by_role("button", name=group).last.wait_for()
    # dagster.yaml turns the first-visit community sign-up modal off (nux: enabled: false)
    assert page.get_by_role("button", name="Skip").count() == 0
    assert page.get_by_role("dialog").count() == 0
    shot("1-asset-graph")
    page.goto(f"{url}/assets/difficulty_filtered?view=lineage&lineageScope=upstream"
              "&lineageDepth=20", wait_until="networkidle")
    for asset in ("collected", "cleaned", "distilled", "quality_filtered"):
        page.get_by_text(asset, exact=True).first.wait_for()
    shot("2-asset-lineage")

    # 2. A partitioned asset, opened from the catalog: the subsets are its partitions.
    page.get_by_role("link", name="Catalog").first.click()
    page.locator("a[href='/assets/collected']").first.click()
    page.wait_for_url("**/assets/collected**")
    page.get_by_role("tab", name="Partitions").click()
    page.get_by_text(SUBSET, exact=True).first.wait_for()
    page.get_by_text("Zebra-CoT-Physics", exact=True).first.wait_for()
    shot("3-asset-partitions")
    assert page.get_by_role("button", name="Skip").count() == 0  # nor later: nux is off

    # 3. Materialize… > partition picker (Custom) > the one subset > Launch 1 run.
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize collected")
    dialog.wait_for()
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill("geo170k")
    page.get_by_role("menuitem").filter(has_text=SUBSET).click()
    page.keyboard.press("Escape")  # close the picker, keep the dialog
    dialog.get_by_text("1 partition", exact=True).wait_for()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    shot("4-partition-picked")
    launch.click()
    dialog.wait_for(state="hidden")

    # 4. The UI confirms the launch; its View link opens the run, which succeeds.
    toast = page.get_by_text("Launched run")
    toast.wait_for()
    shot("5-launched")
    page.get_by_role("button", name="View").or_(page.get_by_role("link", name="View")).first.click()
    page.wait_for_url("**/runs/**")
    page.get_by_text("Success", exact=True).first.wait_for(timeout=300_000)
    page.get_by_text("RUN_SUCCESS").first.wait_for()
    shot("6-run-succeeded")

    # 5. Back on the asset: the partition is materialized, with the run's metadata.
    page.goto(f"{url}/assets/collected?view=partitions", wait_until="networkidle")
    page.get_by_text("Materialized (1)").wait_for()
    page.get_by_text(SUBSET, exact=True).first.click()
    page.get_by_text("dagster/row_count").first.wait_for()
    shot("7-partition-materialized")

    # 6. The asset's checks: partitioned like the asset, each execution shows its subset.
    page.goto(f"{url}/assets/collected?view=checks", wait_until="networkidle")
    page.get_by_text("rows_accounted_for").first.click()
    page.get_by_text(f"subset {SUBSET}:").first.wait_for()  # the result names its subset
    page.get_by_text("Partition", exact=True).first.wait_for()  # and records it: a partitioned check
    page.get_by_role("tab", name="Partitions").first.wait_for()
    shot("8-checks")
    # Telemetry is off and the UI is self-contained: it asked nothing of any other host.
    assert not elsewhere, f"the UI requested other hosts: {elsewhere}"



REPORT_METADATA = """
{ assetOrError(assetKey: {path: ["report"]}) { ... on Asset { assetMaterializations(limit: 1) {
    metadataEntries { label ... on PathMetadataEntry { path } ... on MarkdownMetadataEntry { mdStr } }
} } } }
"""
PLOTS = ("pass_rate_distribution", "length_kept_vs_dropped", "drops_by_reason", "verifier_methods")


def test_report_plots_in_the_ui_and_the_row_viewer(tmp_path, real_sample, sync_playwright, screenshots, fake_llm,
                                                   monkeypatch):
    """The report materialized over real rows, served as `mmfr serve-report` serves it at the
    address the metadata links (`MMFR_REPORT_URL`): each plot opened from its metadata entry in
    the UI renders as an image; every report and row-viewer link the UI shows loads the page it
    names, one opened by a click; the row viewer opens, filters by reason and shows a dropped
    row's trace (escaped text) and image. Also in the same session: a model step's progress
    lines (rows, rate, ETA) in its run view, a step skipped for want of an endpoint warning in
    the lineage and its check's partitions, and the `plan` asset's table."""
    import dagster as dg
    import pyarrow.fs as pafs

    from mmfr_assets.reporting.serve import report_server
    from mmfr_assets_tests.lake_fixture import SUBSETS, materialize_subsets

    lake, home = tmp_path / "lake", tmp_path / "home"
    env = dagster_env(home, real_sample, lake)
    # `mmfr serve-report`'s server, in a thread, on the report folder beside the lake (written later)
    server = report_server(pafs.LocalFileSystem(), str(tmp_path / "report"), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MMFR_REPORT_URL", served)  # what `make ui` sets: the stages link their pages there
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            defs = materialize_subsets(real_sample, str(lake), SUBSETS[:2], instance)
            job = defs.resolve_implicit_global_asset_job_def()
            # the plan of the two subsets materialized (the asset's default is every subset)
            result = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey("report"), dg.AssetKey("plan")],
                run_config={"ops": {"plan": {"config": {"subsets": ",".join(SUBSETS[:2])}}}})
            assert result.success
            progress_run = _a_model_step_with_progress(instance, real_sample, lake, tmp_path, fake_llm, monkeypatch)
        with webserver(env, tmp_path / "webserver.log") as url:
            entries = graphql(url, REPORT_METADATA)["assetOrError"]["assetMaterializations"][0][
                "metadataEntries"]
            viewer = Path(next(e["path"] for e in entries if e["label"] == "row_viewer"))
            assert viewer == tmp_path / "report" / "viewer" / "index.html"  # beside the lake
            links = _every_link_loads(url, served)
            with browser_page(sync_playwright, screenshots, height=1000) as page:
                _open_plots(page, url, screenshots)
                _a_row_viewer_link_opens_its_page(page, url, links, screenshots)
                _open_viewer(page, served, screenshots)
                _open_an_audit_sample(page, served, screenshots)
                _every_stage_shows_its_images(page, served, lake, screenshots)
                _progress_in_the_run_view(page, url, progress_run, screenshots)
                _a_skipped_step_warns(page, url, screenshots)
                _the_plan_in_the_ui(page, url, screenshots)
    finally:
        server.shutdown()
        server.server_close()


def _a_model_step_with_progress(instance, source: Path, lake: Path, tmp_path: Path, fake_llm, monkeypatch) -> str:
    """`teacher_captions` over BMMR against the fake server with latency (regenerate: every row is
    asked), progress lines every 0.25 s; the run's id."""
    import dagster as dg

    from mmfr_assets import progress
    from mmfr_assets.definitions import build_definitions

    # 10 rows, 2 in flight: ~4 s, so lines come between the runner's parses (every 0.5 s at most)
    fake_llm.configure(latency_s=0.8)
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_BASE_URL", fake_llm.url)
    monkeypatch.setenv("MMFR_CAPTION_TEACHER_MAX_CONCURRENCY", "2")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setattr(progress, "INTERVAL_S", 0.25)
    monkeypatch.setattr(progress, "SAMPLE_S", 0.05)
    defs = build_definitions(str(source), str(lake), {})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key="BMMR", asset_selection=[dg.AssetKey("teacher_captions")],
        run_config={"ops": {"teacher_captions": {"config": {"regenerate": True}}}})
    assert result.success
    return result.run_id


LINKS = """
{ assetNodes { assetKey { path } assetMaterializations { partition metadataEntries { label __typename
    ... on UrlMetadataEntry { url } ... on PathMetadataEntry { path } ... on TextMetadataEntry { text }
    ... on MarkdownMetadataEntry { mdStr } } } } }
"""
#: A Markdown link's destination, which may hold one level of parentheses (`...geo170k(qa)/...`).
_MD_LINK = re.compile(r"\]\((https?://[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\)")


def _every_link_loads(url: str, served: str) -> dict[str, str]:
    """Every report and row-viewer link of every materialization the UI shows (URL entries and
    the links in Markdown entries) is under the served report and loads the page it names (HTTP
    200, its title; a `#row` target present); a stage's `row_viewer` names its own subset and the
    stage that shows its rows; a path entry names a file that exists. Returns {what: link}."""
    import urllib.request
    from html import escape, unescape
    from urllib.parse import unquote, urlsplit

    from mmfr_assets.files import subset_folder
    from mmfr_assets.lineage import STEP_SHOWN_IN

    links: dict[str, str] = {}
    for node in graphql(url, LINKS)["assetNodes"]:
        asset = node["assetKey"]["path"][-1]
        for materialization in node["assetMaterializations"]:
            partition = materialization["partition"]
            for entry in materialization["metadataEntries"]:
                what = f"{asset} {partition or ''} {entry['label']}"
                kind = entry["__typename"]
                if kind == "UrlMetadataEntry":
                    links[what] = entry["url"]
                    if partition is not None and entry["label"] == "row_viewer":
                        page = f"{served}/viewer/{subset_folder(partition)}/{STEP_SHOWN_IN.get(asset, asset)}/index.html"
                        assert entry["url"] == page, what
                elif kind == "MarkdownMetadataEntry":
                    links |= {f"{what} {k}": link for k, link in enumerate(_MD_LINK.findall(entry["mdStr"]))}
                elif kind == "PathMetadataEntry" and entry["label"] in ("row_viewer", "report_page"):
                    assert Path(entry["path"]).exists(), what  # a path to copy names a file
                elif entry["label"] == "row_viewer":  # text: says why there is no page
                    assert entry["text"].startswith("none: "), what
    assert sum(1 for what in links if what.endswith(" row_viewer")) >= 30  # every stage of two subsets
    assert any(" audit " in what for what in links)
    fetched: dict[str, str] = {}
    for what, link in links.items():
        assert link.startswith(served + "/"), f"{what}: {link} is not under the served report"
        parts = urlsplit(link)
        page = link.split("#", 1)[0]
        if page not in fetched:
            with urllib.request.urlopen(page, timeout=30) as response:
                assert response.status == 200, what
                fetched[page] = response.read().decode()
        body = fetched[page]
        title = unescape(re.search(r"<title>(.*?)</title>", body).group(1))
        path = [unquote(p) for p in parts.path.strip("/").split("/")]
        if path == ["index.html"]:
            assert title == "mmfr report", what
        elif path == ["viewer", "index.html"]:
            assert title == "mmfr row viewer", what
        else:
            assert path[0] == "viewer" and title.startswith(f"{path[1]} · {path[2]}"), (what, title)
        if parts.fragment:
            assert f'id="{escape(unquote(parts.fragment))}"' in body, what
    return links


def _a_row_viewer_link_opens_its_page(page, url: str, links: dict[str, str], screenshots: Path) -> None:
    """One click: a partition's `row_viewer` on the asset page opens the stage's page."""
    page.goto(f"{url}/assets/cleaned?view=partitions", wait_until="networkidle")
    page.get_by_text("BMMR", exact=True).first.click()
    link = page.get_by_role("row").filter(has_text="row_viewer").first.locator("a").first
    assert link.get_attribute("href") == links["cleaned BMMR row_viewer"]
    with page.context.expect_page() as opened:
        link.click()
    stage_page = opened.value
    stage_page.wait_for_load_state()
    assert stage_page.title() == "BMMR · cleaned"
    stage_page.get_by_role("link", name="all rows").first.wait_for()
    stage_page.screenshot(path=str(screenshots / "report-row-viewer-link.png"))
    stage_page.close()


def _progress_in_the_run_view(page, url: str, run_id: str, screenshots: Path) -> None:
    """The model step's run view: its progress lines (rows done of rows to do, rate, ETA)."""
    page.goto(f"{url}/runs/{run_id}", wait_until="networkidle")
    page.get_by_text("RUN_SUCCESS").first.wait_for()
    page.get_by_placeholder("Filter…").fill("ETA")
    line = re.compile(r"teacher_captions BMMR: \d+ / 10 rows \(\d+%\), [\d.,]+ rows/s, [\d.,]+ tok/s, "
                      r"\d+ in flight, .*ETA \d[\dhms]*$")  # a figure: 4s, 1m05s
    page.get_by_text(line).first.wait_for()
    settle(page)
    page.screenshot(path=str(screenshots / "run-progress-lines.png"))


def _open_check(page, check: str, shows: str, tries: int = 3) -> None:
    """Click a check in the asset's checks view until its evaluation (`shows`) is on screen: a
    click landing while the list is still rendering opened nothing once in CI (the view loads
    the checks, then their evaluations)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        page.get_by_text(check).first.click()
        try:
            page.get_by_text(shows).first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


def _a_skipped_step_warns(page, url: str, screenshots: Path) -> None:
    """`rl_rollouts` had rows for policy_llm and no endpoint: its node in the lineage shows its
    checks with a warning, and its `model_ran` check's partitions show both subsets failed."""
    page.goto(f"{url}/assets/rl_rollouts?view=lineage&lineageScope=neighbors&lineageDepth=1",
              wait_until="networkidle")
    page.get_by_text("2 / 3 Passed").first.wait_for()  # its neighbours pass all of theirs
    settle(page)
    page.screenshot(path=str(screenshots / "skipped-step-lineage.png"))
    page.goto(f"{url}/assets/rl_rollouts?view=checks", wait_until="networkidle")
    _open_check(page, "model_ran", "policy_llm; no endpoint configured")
    page.get_by_role("tab", name="Partitions").last.click()
    page.get_by_text("Failed (2)").first.wait_for()
    settle(page)
    page.screenshot(path=str(screenshots / "skipped-step-check-partitions.png"))


def _the_plan_in_the_ui(page, url: str, screenshots: Path) -> None:
    """The `plan` asset's table, opened from its metadata: a row per subset planned."""
    page.goto(f"{url}/assets/plan", wait_until="networkidle")
    row = page.get_by_role("row").filter(has_text="plan").filter(has_text="[Show Markdown]").first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    from mmfr_assets_tests.lake_fixture import SUBSETS

    for subset in SUBSETS[:2]:
        dialog.get_by_role("cell", name=subset, exact=True).wait_for()
    dialog.get_by_role("cell", name="policy_llm", exact=True).first.wait_for()
    settle(page)
    dialog.screenshot(path=str(screenshots / "plan.png"))
    page.keyboard.press("Escape")


def _open_plots(page, url: str, screenshots: Path) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/assets/report", wait_until="networkidle")
    page.get_by_text("plot/pass_rate_distribution").first.wait_for()
    assert page.get_by_role("button", name="Skip").count() == 0  # no sign-up modal (nux off)
    for name in PLOTS:
        row = page.get_by_role("row").filter(has_text=f"plot/{name}")
        row.get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog")
        image = dialog.locator(f"img[alt='{name}']")
        image.wait_for()
        # The embedded PNG decoded and laid out: a real picture, not a broken-image icon.
        assert image.evaluate("img => img.complete && img.naturalWidth") > 600
        settle(page)
        dialog.screenshot(path=str(screenshots / f"report-plot-{name}.png"))
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")


def _open_viewer(page, served: str, screenshots: Path) -> None:
    page.goto(f"{served}/viewer/index.html")
    page.get_by_role("link", name="open").first.wait_for()
    page.screenshot(path=str(screenshots / "viewer-1-index.png"))
    # BMMR's quality_filtered page: its views, one per drop reason.
    page.locator("tr", has_text="BMMR").filter(has_text="quality_filtered").get_by_role(
        "link", name="open").click()
    reason = page.get_by_role("link", name="dropped: correctness_inconsistent")
    reason.wait_for()
    page.screenshot(path=str(screenshots / "viewer-2-stage.png"))
    reason.click()
    article = page.locator("article.dropped").first
    article.wait_for()
    assert "correctness_inconsistent" in article.locator(".drop").inner_text()
    assert page.locator("article.kept").count() == 0  # the filter shows only that reason
    assert article.locator("img.row").evaluate("img => img.complete && img.naturalWidth") > 0
    article.locator("summary", has_text="Trace").click()
    trace = article.locator("details pre").first
    assert "<think>" in trace.inner_text()  # shown as text, not parsed as markup
    settle(page)
    page.screenshot(path=str(screenshots / "viewer-3-dropped-row.png"))


def _open_an_audit_sample(page, served: str, screenshots: Path) -> None:
    """The report page's audit: a sampled removed row's link opens its card, targeted, with
    the reason that removed it."""
    page.goto(f"{served}/index.html")
    page.get_by_role("heading", name="Audit: who removed what").wait_for()
    row = page.locator("tr", has_text="correctness_inconsistent").filter(has=page.locator("a")).first
    row_id = row.locator("a").inner_text()
    row.locator("a").click()
    card = page.locator("article:target")
    card.wait_for()
    assert card.get_attribute("id") == row_id
    assert "correctness_inconsistent" in card.locator(".drop").inner_text()
    settle(page)
    page.screenshot(path=str(screenshots / "report-audit-sample.png"))


def _every_stage_shows_its_images(page, served: str, lake: Path, screenshots: Path) -> None:
    """A page of every stage: every row whose image collected holds shows it, decoded by the
    browser (the viewer once lost them after the first row an upstream stage dropped), and the
    page says which page of how many it is."""
    from html import unescape

    import polars as pl

    from mmfr_assets.files import image_extension
    from mmfr_assets.viewer.build import STAGE_INPUT

    def showable(data) -> bool:
        try:
            image_extension(data)
            return True
        except Exception:
            return False

    collected = pl.read_delta(str(lake / "collected")).filter(pl.col("subset") == "BMMR")
    with_image = {i for i, data in collected.select("id", "image_bytes").iter_rows() if showable(data)}
    assert with_image
    for stage in STAGE_INPUT:
        page.goto(f"{served}/viewer/BMMR/{stage}/all-1.html")
        page.get_by_text("page 1 of").first.wait_for()
        for article in page.locator("article").all():
            row_id = unescape(article.get_attribute("id"))
            if row_id in with_image:
                image = article.locator("img.row")
                image.scroll_into_view_if_needed()
                # decode() waits for the (lazy) image to load; it rejects if it cannot be decoded
                assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, (stage, row_id)
        page.screenshot(path=str(screenshots / f"viewer-stage-{stage}.png"))
