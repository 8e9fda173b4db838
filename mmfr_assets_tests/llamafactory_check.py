"""An `mmfr export --format llamafactory` folder read by LLaMA-Factory's own code, where it is
installed (it pulls torch, so CI runs the lighter contract tests of test_exports.py instead):

    make check-llamafactory OUT=exports/mmfr_123k-llamafactory [DATASET=mmfr_123k] [TEMPLATE=qwen3_vl]
    python -m mmfr_assets_tests.llamafactory_check OUT [--dataset D] [--template T]

What it runs, all LLaMA-Factory's: `get_dataset_list` parses dataset_info.json; the files are
the loader's (`file_name` a folder: every file in it, one extension, `FILEEXT2TYPE`), loaded
with `datasets` as its loader does; every row goes through the dataset's converter
(`get_dataset_converter`, sharegpt) with `media_dir` the export folder; the template's
multimodal plugin checks that it takes images at all (`_validate_input`, as at train time: a
text-only template such as `qwen3` refuses image rows there, "This model does not support image
input"; the model's processor stands in as present, since its files are not here) and the
`<image>` count against the images (`_validate_messages`, the check that fails a training
step), every image path resolves to a file, and the template's
own `remove_thought` removes the whole think block (the traces carry its thinking markers).
Exit 0 and one summary line, or 1 and the first problems.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace


#: The model's processor as `_validate_input` looks for it (its image, video and audio parts
#: present): what is then refused is the template's, not the missing model files'.
PROCESSOR_PRESENT = SimpleNamespace(image_processor=object(), video_processor=object(),
                                    feature_extractor=object())


def check(out: str, dataset: str, template_name: str, *, limit_problems: int = 5) -> tuple[int, list[str]]:
    """(rows checked, problems) of `dataset` in the export folder `out`."""
    import datasets
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import TEMPLATES
    from llamafactory.extras.constants import FILEEXT2TYPE

    (attr,) = get_dataset_list([dataset], out)
    problems: list[str] = []
    if attr.load_from != "file":
        return 0, [f"{dataset}: LLaMA-Factory would load it from {attr.load_from}, not the folder"]
    local = os.path.join(out, attr.dataset_name)
    files = ([os.path.join(local, name) for name in os.listdir(local)] if os.path.isdir(local)
             else [local])
    kinds = {FILEEXT2TYPE.get(os.path.splitext(f)[-1][1:]) for f in files}
    if len(kinds) != 1 or None in kinds:
        return 0, [f"{dataset}: files of mixed or unknown types in {local}: {sorted(map(str, kinds))}"]
    rows = datasets.load_dataset(kinds.pop(), data_files=files, split=attr.split)
    converter = get_dataset_converter(attr.formatting, attr, SimpleNamespace(media_dir=out))
    template = TEMPLATES[template_name]
    opening, closing = template.thought_words
    checked = 0
    for example in rows:
        aligned = converter(example)
        checked += 1
        where = f"row {example.get('subset')}/{example.get('id')}"
        if not aligned["_prompt"] or not aligned["_response"]:
            problems.append(f"{where}: the converter skipped it as abnormal")
            continue
        images = aligned["_images"] or []
        try:
            template.mm_plugin._validate_input(PROCESSOR_PRESENT, images, [], [])
            template.mm_plugin._validate_messages(aligned["_prompt"] + aligned["_response"], images, [], [])
        except ValueError as error:
            problems.append(f"{where}: {error}")
        problems += [f"{where}: image {path} is not a file" for path in images if not os.path.isfile(path)]
        response = aligned["_response"][0]["content"]
        if opening.strip() in response and hasattr(template, "remove_thought"):
            left = template.remove_thought(response)
            if opening.strip() in left or closing.strip() in left:
                problems.append(f"{where}: template {template_name} does not recognise the think block "
                                f"(thought_words {template.thought_words!r}): export with the matching "
                                "--think-format")
        if len(problems) >= limit_problems:
            break
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmfr_assets_tests.llamafactory_check",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the export folder (LLaMA-Factory's dataset_dir)")
    ap.add_argument("--dataset", help="dataset name in dataset_info.json (default: the first)")
    ap.add_argument("--template", default="qwen3_vl")
    args = ap.parse_args(argv)
    try:
        import llamafactory  # noqa: F401
    except ImportError:
        print("llamafactory_check: LLaMA-Factory is not installed here (pip install llamafactory)",
              file=sys.stderr)
        return 2
    import json
    from pathlib import Path

    dataset = args.dataset or next(iter(json.loads((Path(args.out) / "dataset_info.json").read_text())))
    checked, problems = check(args.out, dataset, args.template)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"{dataset}: {checked} rows read, converted and checked by LLaMA-Factory "
          f"(template {args.template})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
