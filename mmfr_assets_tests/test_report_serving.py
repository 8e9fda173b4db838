"""Where a reader opens the report: the links the metadata gives and `mmfr serve-report`'s
server, on a local folder (the object-store case runs in test_object_store.py, on moto)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pyarrow.fs as pafs
import pytest

from mmfr_assets.cli import main
from mmfr_assets.reporting.publish import report_links, served_path, viewer_link
from mmfr_assets.reporting.serve import report_server


def test_requests_map_to_files_under_the_root_only():
    assert served_path("/") == "index.html"
    assert served_path("/viewer/") == "viewer/index.html"
    assert served_path("/viewer") == "viewer"  # a folder: the server redirects to viewer/
    assert served_path("/viewer/A%28b%29/cleaned/all-2.html?x=1#top") == "viewer/A(b)/cleaned/all-2.html"
    assert served_path("/../../etc/passwd") == "etc/passwd"  # clamped at the root
    assert served_path("/a/../../b.html") == "b.html"


def test_stage_links_point_where_the_report_lives(tmp_path):
    lake = str(tmp_path / "lake")
    assert viewer_link("A(b)", "cleaned", lake, {}) == (
        "path", str(tmp_path / "report" / "viewer" / "A(b)" / "cleaned" / "index.html"))
    # a model step links the page of the stage that shows its columns
    assert viewer_link("A", "teacher_responses", "s3://bucket/lake", {}) == (
        "path", "s3://bucket/lake/_report/viewer/A/distilled/index.html")
    assert viewer_link("A", "cleaned", "s3://bucket/lake", {"MMFR_REPORT_URL": "https://r.example/x/"}) == (
        "url", "https://r.example/x/viewer/A/cleaned/index.html")


def test_report_links_for_a_local_lake_name_the_command(tmp_path):
    links = report_links(tmp_path / "report", str(tmp_path / "lake"), {})
    assert links["row_viewer"] == ("path", str(tmp_path / "report" / "viewer" / "index.html"))
    assert links["row_viewer_open"][1].startswith("mmfr serve-report")
    public = report_links(tmp_path / "report", str(tmp_path / "lake"), {}, "https://r.example/rep")
    assert public["row_viewer_url"] == ("url", "https://r.example/rep/viewer/index.html")


def _get(url):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, b""


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "report"
    (root / "viewer" / "A(b)" / "cleaned").mkdir(parents=True)
    (root / "index.html").write_text("<title>mmfr report</title>")
    (root / "viewer" / "index.html").write_text("<title>mmfr row viewer</title>")
    (root / "viewer" / "A(b)" / "cleaned" / "index.html").write_text("<title>A(b) · cleaned</title>")
    (root / "plots").mkdir()
    (root / "plots" / "p.png").write_bytes(b"\x89PNG....")
    (tmp_path / "secret.txt").write_text("outside the report")
    server = report_server(pafs.LocalFileSystem(), str(root), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.process
def test_server_serves_the_report_folder_and_nothing_else(served):
    status, headers, body = _get(f"{served}/")
    assert (status, body) == (200, b"<title>mmfr report</title>")
    status, headers, body = _get(f"{served}/viewer/A%28b%29/cleaned/index.html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert _get(f"{served}/plots/p.png")[1]["Content-Type"] == "image/png"
    status, headers, _ = _get(f"{served}/viewer")
    assert (status, headers["Location"]) == (301, "/viewer/")
    assert _get(f"{served}/nope.html")[0] == 404
    assert _get(f"{served}/../secret.txt")[0] == 404


def test_serve_report_without_a_report_says_so(tmp_path, capsys):
    assert main(["serve-report", "--report-dir", str(tmp_path / "none"), "--port", "0"]) == 2
    assert "no report in" in capsys.readouterr().err
