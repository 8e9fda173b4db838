"""`mmfr serve-report`: the report and its row viewer over HTTP, read from where the lake keeps
them: `<lake>/_report/` on an object store (through the lake's own credentials and options),
else the local report folder.

Why a command rather than a link: a browser does not follow `file://` links from a web page,
and an object store's prefix is only reachable over HTTP if someone made it public or put a
server in front of it (`MMFR_REPORT_URL`). This reads the objects with the credentials the
user already has and serves them on loopback: no copy to download first, no public bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.fs as pafs

from mmfr_assets.lake.delta import filesystem_for
from mmfr_assets.settings import report_location
from mmfr_assets.reporting.publish import (
    SERVE_PORT, content_type, on_object_store, report_store_uri, served_path,
)


def report_source(lake_uri: str, storage_options: Mapping[str, str],
                  configured_dir: str = "") -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, root, what it is) of the report to serve for this lake."""
    if on_object_store(lake_uri) and not configured_dir:
        uri = report_store_uri(lake_uri)
        filesystem, root = filesystem_for(uri, storage_options)
        return filesystem, root, uri
    folder = report_location(configured_dir, lake_uri)
    return pafs.LocalFileSystem(), str(folder), str(folder)


def report_server(filesystem: pafs.FileSystem, root: str, host: str = "127.0.0.1",
                  port: int = SERVE_PORT) -> ThreadingHTTPServer:
    """An HTTP server (not started: call `serve_forever`) answering GET/HEAD with the files
    under `root`; `port` 0 picks a free one (`server.server_address`)."""
    root = root.rstrip("/")

    class Handler(BaseHTTPRequestHandler):
        def _send(self, with_body: bool) -> None:
            relative = served_path(self.path)
            if relative is None:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            info = filesystem.get_file_info(f"{root}/{relative}")
            if info.type == pafs.FileType.Directory:  # `viewer` -> `viewer/` (relative links)
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", self.path.split("?", 1)[0] + "/")
                self.end_headers()
                return
            if info.type != pafs.FileType.File:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            with filesystem.open_input_stream(info.path) as stream:
                body = stream.read()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(relative))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            self._send(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(False)

        def log_message(self, format, *args) -> None:  # quiet: one line per page is noise
            pass

    return ThreadingHTTPServer((host, port), Handler)


def serve(lake_uri: str, storage_options: Mapping[str, str], host: str, port: int,
          configured_dir: str = "") -> None:
    filesystem, root, source = report_source(lake_uri, storage_options, configured_dir)
    if filesystem.get_file_info(f"{root.rstrip('/')}/index.html").type != pafs.FileType.File:
        from mmfr_assets.errors import InputError

        raise InputError(f"serve-report: no report in {source} (materialize the `report` asset first)")
    server = report_server(filesystem, root, host, port)
    address = f"http://{host}:{server.server_address[1]}"
    print(f"serving {source} at {address}/  row viewer: {address}/viewer/index.html  (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

