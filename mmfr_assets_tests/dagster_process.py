"""Real Dagster processes for end-to-end tests: a webserver (and later a daemon) on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_env(home: Path, source: Path, lake: Path, **extra: str) -> dict[str, str]:
    """Environment for a Dagster process on a fresh instance of this repo's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
    env.update(
        DAGSTER_HOME=str(home), MMFR_SOURCE=str(source), MMFR_LAKE=str(lake),
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra,
    )
    return env


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


@contextmanager
def webserver(env: dict[str, str], log_path: Path, timeout: float = 180):
    """Start `dagster-webserver -w workspace.yaml` on a free loopback port; yields its URL
    once the code location has loaded, and stops it (and its code server) afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
             "-p", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"webserver exited: {log_path.read_text()[-3000:]}")
                try:
                    entries = graphql(url, LOCATION_STATUS, timeout=5)["workspaceOrError"][
                        "locationEntries"
                    ]
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        errors = [e["locationOrLoadError"] for e in entries
                                  if e["locationOrLoadError"]["__typename"] == "PythonError"]
                        assert not errors, f"code location failed to load: {errors}"
                        break
                except (OSError, KeyError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"webserver not ready: {log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            stop(process)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
