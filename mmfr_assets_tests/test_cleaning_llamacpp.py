"""The cleaner and answer roles against a real OpenAI-compatible server: llama.cpp serving
SmolLM2-135M-Instruct (the `llamacpp_server` session fixture, `mmfr_assets_tests/llamacpp.py`).

Through the assets as users run them, on real published rows, with a recording proxy between
the pipeline and the server: every reply the server sent is kept, read here on its own terms
(the prompt's contract: `No Problem`, one JSON verdict, `<answer>...</answer>`), and the tables
must say what those replies mean. A row whose final reply gives a verdict carries that verdict;
a row whose final reply gives none is recorded failed with the server's text in its error. A
135M model's replies are mostly not verdicts, and the test holds whichever the model sent.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets_tests.llamacpp import MODEL_ALIAS

SUBSET = "FineVision-ai2d_merged"  # row id 1 has an empty answer and a full solution
ROWS = 3

#: The four error types the review prompt names, as it spells them.
ERROR_TYPES = {"translation", "irrelevant content", "low-quality instruction", "non-answer question"}


class RecordingProxy:
    """An HTTP proxy in front of `upstream` (`http://host:port`) that keeps every exchange:
    (path, request body as JSON, status, response text)."""

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[tuple[str, dict, int, str]] = []
        lock = threading.Lock()
        record = self.exchanges

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self, body: bytes | None) -> None:
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=600) as reply:
                        status, text = reply.status, reply.read()
                except urllib.error.HTTPError as error:
                    status, text = error.code, error.read()
                if body is not None:
                    with lock:
                        record.append((self.path, json.loads(body), status, text.decode()))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def do_GET(self):
                self._forward(None)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def replies_for(self, ending: str) -> list[tuple[int, str]]:
        """(status, reply content or error text) of the chat requests whose user text ends with
        `ending`, in the order the server answered them."""
        out = []
        for path, body, status, text in self.exchanges:
            if not path.endswith("/chat/completions"):
                continue
            user = " ".join(_text(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user")
            if user.rstrip().endswith(ending.rstrip()):
                out.append((status, json.loads(text)["choices"][0]["message"].get("content") or ""
                            if status == 200 else text))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _text(content) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _words(text: str) -> str:
    # the error quotes the reply with repr(): a reply holding both quote kinds has its ' escaped
    return " ".join(text.replace("\\\\", "\\").replace("\\'", "'").split())


def carries(error: str, reply: str) -> bool:
    """`error` quotes the start of `reply` (the code shows a snippet of the reply's text)."""
    start = _words(" ".join(w for w in reply.split() if "`" not in w))[:60]
    return bool(start) and start in _words(error)


def expected_review(reply: str, question: str) -> tuple[str, str | None] | None:
    """(review_status, corrected_question) that the prompt's contract gives `reply`, or None when
    the reply is outside what the prompt allows in a way this reading does not decide (another
    spelling of an error type, thinking blocks)."""
    if "<think" in reply.lower() or "</think" in reply.lower():
        return None
    decoder, verdicts = json.JSONDecoder(strict=False), []
    for start in [m.start() for m in re.finditer(r"\{", reply)]:
        try:
            value, _ = decoder.raw_decode(reply, start)
        except ValueError:
            continue
        if isinstance(value, dict) and ("error_type" in value or "error_types" in value):
            verdicts.append(value)
    if verdicts:
        verdict = verdicts[-1]
        types = verdict.get("error_type", verdict.get("error_types"))
        types = types if isinstance(types, list) else [types]
        names = {re.sub(r"[\s_]+", " ", str(t)).strip().lower() for t in types} - {"", "none", "no problem"}
        if not names <= ERROR_TYPES:
            return None
        if not names:
            return "no_problem", None
        if "non-answer question" in names:
            return "non_answer", None
        corrected = verdict.get("corrected_text")
        if not isinstance(corrected, str) or not corrected.strip():
            return "failed", None
        corrected = corrected.strip()
        if question.lstrip().startswith("<image>") and "<image>" not in corrected:
            corrected = "<image>" + corrected
        return ("no_problem", None) if corrected.strip() == question.strip() else ("rewritten", corrected)
    lines = [line for line in reply.splitlines() if line.strip()]
    if lines and re.fullmatch(r"[\W_]*no\s+problems?[\W_]*", lines[-1].strip(), re.I):
        return "no_problem", None
    return "failed", None


@pytest.fixture
def proxy(llamacpp_server):
    recording = RecordingProxy(llamacpp_server.removesuffix("/v1"))
    yield recording
    recording.close()


def test_cleaner_and_answer_roles_end_to_end_on_real_rows(proxy, real_sample, tmp_path, monkeypatch):
    for role in ("CLEANER_LLM", "ANSWER_LLM"):
        monkeypatch.setenv(f"MMFR_{role}_BASE_URL", proxy.url)
        monkeypatch.setenv(f"MMFR_{role}_MODEL", MODEL_ALIAS)
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    lake = tmp_path / "lake"
    defs = build_definitions(str(real_sample), str(lake), {})
    # Short replies from a CPU model: cut at max_tokens and accepted as they are.
    endpoint = {"max_tokens": 64, "timeout_s": 300.0, "max_retries": 1, "retry_on_length": False,
                "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    run_config = {
        "ops": {
            "collected": {"config": {"max_samples": ROWS}},
            # `all`: the published questions are clean, so `flagged` would send almost nothing.
            "question_reviews": {"config": {"review": "all", "max_failure_rate": 1.0}},
            "extracted_answers": {"config": {"max_failure_rate": 1.0}},
        },
        "resources": {r: {"config": endpoint} for r in ("cleaner_llm", "answer_llm")},
    }
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=SUBSET, instance=dg.DagsterInstance.ephemeral(), run_config=run_config,
        asset_selection=[dg.AssetKey(a) for a in ("collected", "question_reviews", "extracted_answers", "cleaned")],
    )
    assert result.success

    collected = {r["id"]: r for r in pl.read_delta(str(lake / "collected")).iter_rows(named=True)}
    reviews = pl.read_delta(str(lake / "question_reviews"))
    assert reviews.height == ROWS and set(reviews["id"]) == set(collected)
    decided = 0
    for row in reviews.iter_rows(named=True):
        question = collected[row["id"]]["question"]
        replies = proxy.replies_for(f"Question:\n{question}")
        answered = [content for status, content in replies if status == 200]
        assert replies and row["attempts"] == len(answered) >= 1, (row, replies)
        assert row["prompt_version"].startswith("question_review@")
        status, final = replies[-1]
        if status != 200:  # the request failed: recorded with the server's text
            assert row["review_status"] == "failed" and _words(final)[:60] in _words(row["review_error"])
            continue
        expected = expected_review(final, question)
        print(f"review {row['id']}: {final!r} -> {expected} / {row['review_status']}")
        if expected is None:
            continue
        decided += 1
        assert (row["review_status"], row["corrected_question"]) == expected, (row, final)
        if expected[0] == "failed":
            assert carries(row["review_error"], final) or "corrected_text" in row["review_error"], (row, final)
            assert len(answered) == 2  # an unparseable reply is asked once more, with a new seed
        else:
            assert row["review_error"] is None
    assert decided >= 1  # at least one final reply was read here on the prompt's terms

    answers = {r["id"]: r for r in pl.read_delta(str(lake / "extracted_answers")).iter_rows(named=True)}
    assert set(answers) == set(collected)
    for id_, source in collected.items():
        needs = not (source["answer"] or "").strip() and bool((source["original_answer"] or "").strip())
        replies = proxy.replies_for(f"Solution:\n{source['original_answer'].strip()}") if needs else []
        row = answers[id_]
        if not needs:
            assert not replies and row["answer_origin"] == ("dataset" if (source["answer"] or "").strip() else "absent")
            continue
        assert replies, id_
        status, final = replies[-1]
        tags = re.findall(r"<answer>(.*?)</answer>", final, re.S | re.I) if status == 200 else []
        print(f"answer {id_}: {final!r} -> {tags}")
        if tags and tags[-1].strip():
            assert (row["answer_origin"], row["extracted_answer"], row["answer_error"]) == (
                "extracted", tags[-1].strip(), None)
        elif tags:
            assert (row["answer_origin"], row["extracted_answer"]) == ("failed", None)
            assert row["answer_error"] == "the solution reaches no final answer"
        else:
            assert (row["answer_origin"], row["extracted_answer"]) == ("failed", None)
            assert carries(row["answer_error"], final), (row, final)
    assert "1" in answers and answers["0"]["answer_origin"] == "dataset"

    cleaned = pl.read_delta(str(lake / "cleaned"))
    dropped = pl.read_delta(str(lake / "rejections")).filter(pl.col("stage") == "cleaned")
    assert set(cleaned["id"]) | set(dropped["id"]) == set(collected)
    assert cleaned.height + dropped.height == ROWS
    non_answers = {r["id"] for r in reviews.iter_rows(named=True) if r["review_status"] == "non_answer"}
    assert set(dropped.filter(pl.col("reason") == "text_non_answer_question")["id"]) == non_answers
