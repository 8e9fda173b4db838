"""Hub-layout datasets whose columns are not the MMFineReason card's, as users bring them.

- `problem_solution_images`: 20 rows of `problem`/`solution`/`images` (a list of `Image`
  features); rows 17-19 have two images each.
- `image_paths`: 12 rows of `question`/`answer`/`image` where `image` is a file path relative
  to the dataset folder; row 10's file does not exist and row 11 has no image.
"""

from __future__ import annotations

import io
from pathlib import Path

import datasets
from PIL import Image

SEVERAL_IMAGES = {"17", "18", "19"}


def png(color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def _readme(folder: Path, subsets: list[str]) -> None:
    configs = "".join(
        f'- config_name: "{s}"\n  data_files:\n  - split: train\n    path: "{s}/*.parquet"\n'
        for s in subsets
    )
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")


def problem_solution_images(folder: Path, subset: str = "geometry") -> Path:
    features = datasets.Features(
        {
            "id": datasets.Value("int64"),
            "problem": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "images": datasets.Sequence(datasets.Image()),
        }
    )
    rows = {"id": [], "problem": [], "solution": [], "images": []}
    for k in range(20):
        rows["id"].append(k)
        rows["problem"].append(f"<image>In the figure, AB = {k + 3}. What is the length of CD?")
        rows["solution"].append(
            f"Since the triangles are similar, CD = AB / 2 = {(k + 3) / 2}. "
            f"Therefore the answer is $\\frac{{{k + 3}}}{{2}}$."
        )
        count = 2 if str(k) in SEVERAL_IMAGES else 1
        rows["images"].append(
            [{"bytes": png((10 * k, 100, 200 - i * 50)), "path": None} for i in range(count)]
        )
    (folder / subset).mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        str(folder / subset / "train-00000-of-00001.parquet")
    )
    _readme(folder, [subset])
    return folder


def image_paths(folder: Path, subset: str = "charts") -> Path:
    (folder / "pictures").mkdir(parents=True, exist_ok=True)
    rows = {"question": [], "answer": [], "image": []}
    for k in range(12):
        name = f"pictures/chart_{k}.png"
        if k < 10:
            (folder / name).write_bytes(png((k * 20, 50, 50), (32 + k, 20)))
        rows["question"].append(f"<image>What is the value of bar {k} in the chart?")
        rows["answer"].append(str(k * 5))
        rows["image"].append(name if k < 11 else None)
    (folder / subset).mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows).to_parquet(str(folder / subset / "train-00000-of-00001.parquet"))
    _readme(folder, [subset])
    return folder
