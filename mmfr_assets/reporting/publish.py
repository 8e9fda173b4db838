"""The report folder on the lake's object store, and a link to it that a browser follows.

Why: on an S3 lake the `report` asset runs in a run pod whose local disk nobody can open, and
the UI cannot link a `file://` page anyway (browsers refuse file links from web pages). So the
report folder is also written to `<lake>/_report/`, beside the tables, where everyone who can
read the lake can read it; the link in the metadata is either the HTTP address the object
store serves that prefix at (`MMFR_REPORT_URL`: a public bucket, a bucket website, a CDN or
an authenticating proxy in front of it), or the one command that serves it from the store
(`mmfr serve-report`).

The pages only use relative links, so the same files work from a local folder, from the
object store's HTTP endpoint and from `mmfr serve-report`. Objects get their Content-Type
(an S3 object without one is served as `binary/octet-stream`, which a browser downloads instead
of showing). Publishing is not atomic on an object store: files are uploaded, then the
previous report's files that the new one does not have are deleted, so a reader during the
upload may see a page of the previous report next to one of the new.
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

import dagster as dg
import pyarrow.fs as pafs

from mmfr_assets.files import viewer_page
from mmfr_assets.lake.delta import filesystem_for
from mmfr_assets.settings import local_lake_folder, report_location, report_url

REPORT_PREFIX = "_report"
SERVE_COMMAND = "mmfr serve-report"
SERVE_PORT = 8000
# How a link's kind (the first item of what `report_links` and `viewer_link` give) is shown.
_METADATA_KINDS = {"path": dg.MetadataValue.path, "url": dg.MetadataValue.url, "text": dg.MetadataValue.text}


def on_object_store(lake_uri: str) -> bool:
    """True for `s3://...`, `gs://...` lakes; False for a local folder or `file://`."""
    return local_lake_folder(lake_uri) is None


def report_store_uri(lake_uri: str) -> str:
    """Where the report folder goes on the lake's object store: `<lake>/_report`."""
    return f"{lake_uri.rstrip('/')}/{REPORT_PREFIX}"


def public_report_url(configured: str = "", environ: Optional[Mapping[str, str]] = None) -> str:
    """The HTTP address serving `<lake>/_report/` (config, else `MMFR_REPORT_URL`), or ''
    (`mmfr_assets.settings.report_url`)."""
    return report_url(configured, environ)


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def publish_folder(local: Path, uri: str, storage_options: Mapping[str, str]) -> int:
    """Copy every file under `local` to `uri` (same relative paths, with Content-Type), then
    delete what `uri` held that `local` does not. Returns the number of files written."""
    filesystem, root = filesystem_for(uri, storage_options)
    written = set()
    for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        relative = path.relative_to(local).as_posix()
        target = f"{root}/{relative}"
        with open(path, "rb") as source, filesystem.open_output_stream(
            target, metadata={"Content-Type": content_type(path.name)}
        ) as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        written.add(target)
    stale = [
        info.path for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True,
                                                                          allow_not_found=True))
        if info.type == pafs.FileType.File and info.path not in written
    ]
    for path in stale:
        filesystem.delete_file(path)
    return len(written)


def serve_instructions(local: Path | None = None, port: int = SERVE_PORT) -> str:
    """The one command that serves the report, and the page to open: for an object-store lake
    it reads `<lake>/_report/` (with MMFR_LAKE and the lake's credentials set as for the runs);
    for a local report folder it names the folder."""
    command = SERVE_COMMAND + (f" --report-dir {local}" if local is not None else "")
    where = "the report folder" if local is not None else \
        "the report from <lake>/_report/ with your lake settings and credentials"
    return f"{command}  then open http://127.0.0.1:{port}/viewer/index.html (serves {where})"


def report_links(local: Path, lake_uri: str, storage_options: Mapping[str, str],
                 public_url: str = "") -> dict[str, tuple[str, str]]:
    """Publish the report folder `local` when the lake is on an object store, and say where a
    reader opens it: {metadata key: (kind, value)} with kind `path`, `url` or `text`.

    - `public_url` (the address serving `<lake>/_report/`): `report_url`/`row_viewer_url` are
      links into it, which the UI shows as clickable;
    - an object-store lake without one: the paths on the store and the one command that
      serves them (`row_viewer_open`);
    - a local lake: the local paths, the file URL (for a browser's address bar) and the command.
    """
    entries: dict[str, tuple[str, str]] = {}
    if on_object_store(lake_uri):
        store = report_store_uri(lake_uri)
        files = publish_folder(local, store, storage_options)
        entries |= {
            "report_page": ("path", f"{store}/index.html"),
            "row_viewer": ("path", f"{store}/viewer/index.html"),
            "report_store_files": ("text", str(files)),
        }
    else:
        entries |= {
            "report_page": ("path", str(local / "index.html")),
            "row_viewer": ("path", str(local / "viewer" / "index.html")),
        }
    if public_url:
        entries |= {
            "report_url": ("url", f"{public_url}/index.html"),
            "row_viewer_url": ("url", f"{public_url}/viewer/index.html"),
            "row_viewer_open": ("text", f"open {public_url}/viewer/index.html"),
        }
    elif on_object_store(lake_uri):
        entries["row_viewer_open"] = ("text", serve_instructions())
    else:
        # Browsers do not follow file:// links from a web page (the UI): serve the folder.
        entries |= {
            "row_viewer_url": ("url", (local / "viewer" / "index.html").as_uri()),
            "row_viewer_open": ("text", serve_instructions(local)),
        }
    return entries


def metadata_value(link: tuple[str, str]) -> dg.MetadataValue:
    """A `(kind, value)` link as the metadata value the UI shows (a URL is clickable)."""
    kind, value = link
    return _METADATA_KINDS[kind](value)


def viewer_link(subset: str, stage: str, lake_uri: str,
                environ: Optional[Mapping[str, str]] = None) -> tuple[str, str]:
    """(kind, value) of a stage's page in the viewer, for its materialization's metadata: a URL
    under `MMFR_REPORT_URL` when set, else the page on the object store (`<lake>/_report/...`)
    or in the local report folder. (The report's `public_url` config is the report run's own:
    stage runs read the environment.)"""
    relative = viewer_page(subset, stage, Path(".")).as_posix()
    public = public_report_url(environ=environ)
    if public:
        return "url", f"{public}/{relative}"
    if on_object_store(lake_uri):
        return "path", f"{report_store_uri(lake_uri)}/{relative}"
    return "path", str(viewer_page(subset, stage, report_location(lake_uri=lake_uri, environ=environ)))


def served_path(request_path: str) -> str | None:
    """The file a request for `request_path` reads, relative to the report root (`a/b.html`),
    or None if it would leave the root. A folder (`/`, `viewer/`) means its `index.html`."""
    path = unquote(request_path.split("?", 1)[0].split("#", 1)[0])
    if path.endswith("/") or path == "":
        path += "index.html"
    normalized = posixpath.normpath("/" + path).lstrip("/")
    if normalized in ("", ".") or normalized.startswith(".."):
        return None
    return normalized
