"""Endpoints that answer as the paper's models did, for the real published rows.

`PaperOracle(rows)` is a `responder` for the fake server (`FakeOpenAIServer.responder`): it
reads the role from the request's model name (`paper-<role>`), finds the published row the
request is about (by its text, and by its image where the role sees one) and answers with
what the paper's pipeline produced for that row:

- `cleaner_llm`: "No Problem" where the published question is the source's, else the
  published question as the correction;
- `answer_llm`: the published answer;
- `cot_teacher` / `caption_teacher`: the published trace / caption;
- `judge_llm` on a trace's answer: the published consistency label; on student samples:
  EQUIVALENT exactly for the samples that carry the reference;
- `student_llm`: four samples, of which round(published pass rate x 4) carry the reference
  answer and the others a wrong one (another option letter, the number plus one, or words).

The new dataset the test reads is the same rows in another layout (`uid, problem, answer,
solution, images`) with every annotation removed (`write_unannotated`).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import datasets
import polars as pl
from PIL import Image

ROLES = ("cleaner_llm", "answer_llm", "cot_teacher", "caption_teacher", "judge_llm", "student_llm")
SAMPLES = 4


def published_rows(real: Path) -> pl.DataFrame:
    frames = []
    for folder in sorted(p for p in real.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.parquet")):
            frame = pl.read_parquet(file)
            frames.append(frame.with_columns(
                pl.lit(folder.name).alias("subset"),
                pl.col("image").struct.field("bytes").alias("image_bytes"),
            ).drop("image"))
    rows = pl.concat(frames, how="diagonal_relaxed")
    # The question a user's source holds: the raw source question where the paper published it
    # (most subsets publish none: `original_question` is empty), else the published question.
    raw = pl.col("original_question").fill_null("")
    return rows.with_columns(
        pl.when(raw.str.strip_chars() != "").then(raw).otherwise(pl.col("question")).alias("problem"))


def write_unannotated(rows: pl.DataFrame, out: Path) -> Path:
    """The rows as a user would bring them: `uid, problem, answer, solution, images`, the
    source's question (`problem`), no cleaned question, trace, caption, label or pass rate."""
    features = datasets.Features({
        "uid": datasets.Value("string"), "problem": datasets.Value("string"),
        "answer": datasets.Value("string"), "solution": datasets.Value("string"),
        "images": datasets.Sequence(datasets.Image()),
    })
    subsets = rows["subset"].unique(maintain_order=True).to_list()
    for subset in subsets:
        part = rows.filter(pl.col("subset") == subset)
        data = {
            "uid": part["id"].cast(pl.String).to_list(),
            "problem": part["problem"].to_list(),
            "answer": part["answer"].to_list(),
            "solution": part["original_answer"].to_list(),
            "images": [[{"bytes": b, "path": None}] if b else [] for b in part["image_bytes"].to_list()],
        }
        (out / subset).mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(data, features=features).to_parquet(str(out / subset / "train-00000-of-00001.parquet"))
    configs = "".join(f'- config_name: "{s}"\n  data_files:\n  - split: train\n    path: "{s}/*.parquet"\n'
                      for s in subsets)
    (out / "README.md").write_text(f"---\nconfigs:\n{configs}---\n\nAnnotations removed.\n")
    return out


def _thumbnail(data: bytes) -> tuple[int, ...] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return tuple(image.convert("L").resize((8, 8)).getdata())
    except Exception:
        return None


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _plain(text: str) -> str:
    """Text as compared: no `<image>` tags, zero-width characters or runs of whitespace (the
    pipeline's text cleaning removes or collapses all three)."""
    return " ".join(text.translate(_INVISIBLE).replace("<image>", " ").split())


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return sum(abs(x - y) for x, y in zip(a, b))


def _texts(body: dict[str, Any]) -> tuple[str, bytes | None]:
    text, image = [], None
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            text.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                text.append(part["text"])
            elif part.get("type") == "image_url":
                image = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    return "\n".join(text), image


def wrong_answer(reference: str) -> str:
    """An answer that is not the reference: another option letter, the number plus one, or
    words the rules cannot compare (left to the judge)."""
    ref = reference.strip().strip("$").strip()
    if re.fullmatch(r"[A-H]", ref):
        return "A" if ref != "A" else "B"
    number = re.search(r"-?\d+(?:\.\d+)?", ref)
    if number and re.fullmatch(r"[-\d.\s]+", ref):
        value = float(number.group())
        return f"{value + 1:g}"
    return "none of the given options"


class PaperOracle:
    def __init__(self, rows: pl.DataFrame) -> None:
        self.rows = rows.to_dicts()
        for row in self.rows:
            row["thumbnail"] = _thumbnail(row["image_bytes"]) if row["image_bytes"] else None
        self.calls: dict[str, int] = {}
        self.errors: list[str] = []

    # -- finding the row -------------------------------------------------------------------
    def _by_text(self, text: str, column: str) -> list[dict[str, Any]]:
        """Rows whose `column` the request quotes (whitespace and `<image>` tags aside: the
        pipeline's text cleaning normalizes both)."""
        text = _plain(text)
        found = [r for r in self.rows if _plain(r[column] or "") and _plain(r[column]) in text]
        if not found:
            raise LookupError(f"no published {column} in the request: {text[:3000]!r}")
        return found

    def _one(self, candidates: list[dict[str, Any]], image: bytes | None, column: str | None = None) -> dict[str, Any]:
        """The row among the candidates: the one the request quotes the most of (a short text
        such as "4" is quoted by many requests), then the nearest image."""
        if not candidates:
            raise LookupError("no published row matches the request")
        if column is not None:
            longest = max(len(_plain(r[column])) for r in candidates)
            candidates = [r for r in candidates if len(_plain(r[column])) == longest]
        if len(candidates) == 1 or image is None:
            return candidates[0]
        thumb = _thumbnail(image)
        scored = [(r, _distance(thumb, r["thumbnail"])) for r in candidates if r["thumbnail"] and thumb]
        return min(scored, key=lambda x: x[1])[0] if scored else candidates[0]

    def _by_image(self, image: bytes) -> dict[str, Any]:
        return self._one([r for r in self.rows if r["thumbnail"]], image)

    # -- answering ---------------------------------------------------------------------------
    def __call__(self, body: dict[str, Any]) -> list[str] | None:
        role = str(body.get("model") or "").removeprefix("paper-")
        if role not in ROLES:
            return None
        self.calls[role] = self.calls.get(role, 0) + 1
        text, image = _texts(body)
        try:
            return getattr(self, role)(text, image, int(body.get("n") or 1))
        except Exception as error:  # noqa: BLE001 (any fault of the oracle's own)
            # a reply the pipeline cannot parse, naming what went wrong: the step records it
            self.errors.append(f"{role}: {error}")
            return [f"(oracle) {error}"]

    def cleaner_llm(self, text: str, image: bytes | None, n: int) -> list[str]:
        row = self._one(self._by_text(text, "problem"), None, "problem")
        if row["question"] == row["problem"]:
            return ["No Problem"]
        return [json.dumps({"error_type": ["translation"], "corrected_text": row["question"]}, ensure_ascii=False)]

    def answer_llm(self, text: str, image: bytes | None, n: int) -> list[str]:
        row = self._one(self._by_text(text, "original_answer"), None, "original_answer")
        return [f"<answer>{row['answer'] or ''}</answer>"]

    def cot_teacher(self, text: str, image: bytes | None, n: int) -> list[str]:
        return [self._one(self._by_text(text, "question"), image, "question")["qwen3vl_235b_thinking_response"]]

    def caption_teacher(self, text: str, image: bytes | None, n: int) -> list[str]:
        return [self._by_image(image)["qwen3vl_235b_instruct_caption"]]

    def student_llm(self, text: str, image: bytes | None, n: int) -> list[str]:
        row = self._one(self._by_text(text, "question"), image, "question")
        right = round(float(row["qwen3vl_4b_pass_rate"]) * SAMPLES)
        # a row published without a short answer (a description task) was checked against the
        # source's solution: the right answer repeats it
        reference = row["answer"] or row["original_answer"] or ""
        answers = [reference] * right + [wrong_answer(reference)] * (SAMPLES - right)
        return [f"<think>My reasoning, sample {k}.</think>\n<answer>{a}</answer>" for k, a in enumerate(answers)]

    def judge_llm(self, text: str, image: bytes | None, n: int) -> list[str]:
        reference = re.search(r"Reference answer:\n(.*?)\n\n(?:Student's final answers|Candidate's final answer)",
                              text, re.S).group(1).strip()
        if "Student's final answers:" in text:
            listed = text.split("Student's final answers:\n", 1)[1].strip().splitlines()
            lines = []
            for line in listed:
                number, answer = line.split(". ", 1)
                verdict = "EQUIVALENT" if _plain(answer) == _plain(reference) else "DIFFERENT"
                lines.append(f"JUDGMENT {number}: {verdict}")
            return ["\n".join(lines)]
        candidates = self._by_text(text, "question")
        same_reference = [r for r in candidates if (r["answer"] or "").strip() == reference]
        row = self._one(same_reference or candidates, None, "question")
        verdict = "EQUIVALENT" if row["is_consistent"] else "DIFFERENT"
        return [f"Analysis: as the published consistency label.\nJUDGMENT: {verdict}"]
