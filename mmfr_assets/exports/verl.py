"""verl's RL layout: one parquet file that `verl.utils.dataset.rl_dataset.RLHFDataset` reads
for multimodal data, as its own example (`examples/data_preprocess/geo3k.py`) writes it.

Read from verl's source (volcengine/verl at b178a3c, 2026-01-29, version 0.8.0.dev):
- `prompt` (the dataset's `prompt_key`): a chat list; `_build_messages` splits each string
  content on `<image>`/`<video>` and puts the row's images in at the placeholders, asserting
  that the placeholders and the images are as many. The user turn is the RL rollout prompt
  (`prompts/rl_rollout.user.txt`, the very text the pass rates were measured with) with exactly
  one `<image>` per image (`turns.user_turn`).
- `images` (`image_key`): a list, each a PIL image or a dict with `bytes` (opened with PIL);
  we write `{"bytes": ..., "path": null}`, the struct `datasets` uses for images.
- `data_source`: the reward manager's key to pick a scoring function (`reward_fn_key`);
  `mmfr/<subset>`. verl's `default_compute_score` knows only its own datasets' names: train
  with `custom_reward_function.path` (e.g. `mmfr_assets/rl/reward.py`).
- `reward_model`: `{"style": "rule", "ground_truth": reference}`; the naive reward manager
  passes `reward_model["ground_truth"]` to the scoring function.
- `ability` (informational) and `extra_info` (passed to the scoring function; its `index` is
  the sample index verl logs): split, index, subset, id, the pass rates, the reference form and
  the question.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmfr_assets.exports.dataset_names import ExportName
from mmfr_assets.exports.turns import TrainingFormat, question_without_images, user_turn
from mmfr_assets.prompts import load_prompt

RL_PROMPT = "rl_rollout"
FILE = "train.parquet"
ABILITY = "visual_reasoning"
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(_MESSAGE)),
    ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([
        ("split", pa.string()), ("index", pa.int64()), ("subset", pa.string()), ("id", pa.string()),
        ("pass_rate", pa.float64()), ("pass_rate_low", pa.float64()), ("pass_rate_high", pa.float64()),
        ("blind_pass_rate", pa.float64()), ("reference_form", pa.string()), ("question", pa.string()),
    ])),
])
REWRITTEN = "questions with several <image> placeholders (the extra ones written [image])"


def verl_record(row: dict, image: bytes | None, index: int, user_text: str, system: str) -> tuple[dict, bool]:
    """One row in verl's layout, and whether placeholders had to be rewritten."""
    text, rewritten = user_turn(user_text, image is not None)
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return {
        "data_source": f"mmfr/{row['subset']}",
        "prompt": prompt,
        "images": [{"bytes": image, "path": None}] if image is not None else [],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": row.get("reference")},
        "extra_info": {"split": "train", "index": index, "subset": row["subset"], "id": row["id"],
                       "pass_rate": row.get("pass_rate"), "pass_rate_low": row.get("pass_rate_low"),
                       "pass_rate_high": row.get("pass_rate_high"),
                       "blind_pass_rate": row.get("blind_pass_rate"),
                       "reference_form": row.get("reference_form"),
                       "question": question_without_images(row.get("question"))},
    }, rewritten


class VerlWriter:
    """Writes `<root>/train.parquet`: every subset's rows, one row group per batch."""

    name = "verl"

    def __init__(self, root: Path, name: ExportName | str, fmt: TrainingFormat = TrainingFormat(), **_) -> None:
        self.root = root
        self.prompt = load_prompt(RL_PROMPT)
        self.notes: Counter = Counter()
        self._writer: pq.ParquetWriter | None = None
        self._index = 0

    def write_subset(self, subset: str, rows) -> int:
        written = 0
        for batch, images in rows:
            if "reference" not in batch.schema.names:
                raise ValueError("the verl layout needs the RL set's columns (reference, pass rates): "
                                 "export --asset rl_selected")
            records = []
            for row, image in zip(batch.to_pylist(), images):
                record, rewritten = verl_record(row, image, self._index,
                                                self.prompt.render(question=row.get("question") or ""),
                                                self.prompt.system)
                self.notes[REWRITTEN] += rewritten
                records.append(record)
                self._index += 1
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.root / FILE, SCHEMA)
            self._writer.write_table(pa.Table.from_pylist(records, schema=SCHEMA))
            written += len(records)
        return written

    def finish(self) -> None:
        if self._writer is None:  # no rows: still a readable (empty) file
            self._writer = pq.ParquetWriter(self.root / FILE, SCHEMA)
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
