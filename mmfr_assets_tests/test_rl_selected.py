"""`rl_selected` end to end on real published rows (issue 31's acceptance test): the graph
from `collected` to the RL set on two subsets, `policy_llm` a scripted fake server answering
each row by a scenario chosen for it, no judge. Every drop reason appears, and the rows kept
are exactly those the rules keep:

- `keep`: half the samples with the image right, every blind sample wrong (0 < 0.5 < 1);
- `too_easy` / `too_hard`: every sample right / wrong;
- `blind`: half right with the image, every blind sample right (rl_blind_solvable);
- `undecided`: half right, half an answer no rule can decide (bounds 0.5 to 1, no judge);
- prose references are not rolled out (rl_not_checkable); a second run excluding the rows of
  `quality_filtered` drops exactly those (rl_in_sft_set).
"""

from __future__ import annotations

import itertools

import dagster as dg
import polars as pl
import pytest

from mmfr_assets.definitions import build_definitions
from mmfr_assets.errors import InputError
from mmfr_assets.exports.export import export
from mmfr_assets.lake.resource import LakeResource
from mmfr_assets.rl.reward import compute_score
from mmfr_assets.rl.checkable import reference_form
from mmfr_assets.rules.verify import forms, reference_answer, rules
from mmfr_assets_tests.conftest_llm import fake_llm, fake_llm_server  # noqa: F401
from mmfr_assets_tests.paper_oracle import _texts, published_rows

SUBSETS = ("LLaVA-CoT", "Euclid30K")
SCENARIOS = ("keep", "too_easy", "too_hard", "blind", "undecided")
EXPECTED = {"keep": None, "too_easy": "rl_too_easy", "too_hard": "rl_too_hard", "blind": "rl_blind_solvable",
            "undecided": "rl_undecided"}
UNDECIDABLE = "\\mathcal{Q}_{7}"  # no rule reads it (and math-verify is off): undecided
ASSETS = ("collected", "question_reviews", "extracted_answers", "cleaned", "dedup_signatures", "deduplicated",
          "teacher_captions", "teacher_responses", "distilled", "answer_verdicts", "quality_filtered",
          "rl_rollouts", "rl_verdicts", "rl_selected")
RUN_CONFIG = {"ops": {"rl_rollouts": {"config": {"use_math_verify": False}}},
              "resources": {"policy_llm": {"config": {"max_retries": 1, "backoff_base_s": 0.01}}}}


def _wrong(reference: str, question: str) -> str:
    """An answer the rules call different: another option letter, or a number nobody wrote."""
    letter = rules.as_letter(reference, forms.options(question)) or min(rules.letter_set(reference) or {""})
    if letter:
        return "A" if letter != "A" else "B"
    return "98765.4321"


class Policy:
    """The scripted `policy_llm`: finds the row by its question, answers by its scenario."""

    def __init__(self, rows: pl.DataFrame) -> None:
        self.rows = []
        counter = itertools.count()
        for row in rows.iter_rows(named=True):
            reference = reference_answer(row, ["answer", "original_answer"])[0]
            form = reference_form(reference, row["question"])
            # number and choice rows take the scenarios in turn; other forms' wrong answers might
            # not be decidable, so they are answered right (too easy)
            scenario = SCENARIOS[next(counter) % len(SCENARIOS)] if form in ("number", "choice") else "too_easy"
            key = " ".join(row["question"].replace("<image>", "").split())[:80]
            self.rows.append({**row, "reference": reference, "form": form, "scenario": scenario, "key": key})
        self.errors: list[str] = []

    def row_of(self, text: str) -> dict | None:
        flat = " ".join(text.replace("<image>", "").split())
        found = [r for r in self.rows if r["key"] and r["key"] in flat]
        return max(found, key=lambda r: len(r["key"])) if found else None

    def __call__(self, body: dict) -> list[str] | None:
        text, image = _texts(body)
        row = self.row_of(text)
        n = int(body.get("n") or 1)
        if row is None:
            self.errors.append(f"no row for {text[:80]!r}")
            return None
        right, wrong = row["reference"], _wrong(row["reference"], row["question"])
        scenario, half = row["scenario"], [right, wrong] * n
        if image is None:  # blind
            answers = [right] * n if scenario in ("blind", "too_easy") else [wrong] * n
        elif scenario == "too_easy":
            answers = [right] * n
        elif scenario == "too_hard":
            answers = [wrong] * n
        elif scenario == "undecided":
            answers = [right, UNDECIDABLE] * n
        else:
            answers = half
        return [f"<think>scripted</think><answer>{a}</answer>" for a in answers[:n]]


@pytest.fixture()
def rl_lake(real_sample, tmp_path, monkeypatch, fake_llm):  # noqa: F811
    monkeypatch.setenv("MMFR_POLICY_LLM_BASE_URL", fake_llm.url)
    monkeypatch.setenv("MMFR_POLICY_LLM_MODEL", "policy")
    monkeypatch.setenv("MMFR_LLM_CACHE", str(tmp_path / "cache.sqlite"))
    rows = published_rows(real_sample).filter(pl.col("subset").is_in(SUBSETS))
    policy = Policy(rows)
    fake_llm.server.responder = policy
    lake = tmp_path / "lake"
    defs = build_definitions(str(real_sample), str(lake), {})
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    try:
        for subset in SUBSETS:
            result = job.execute_in_process(partition_key=subset, instance=instance, run_config=RUN_CONFIG,
                                            asset_selection=[dg.AssetKey(a) for a in ASSETS])
            assert result.success, subset
        yield lake, policy, job, instance
    finally:
        fake_llm.server.responder = None


def _decided(lake) -> tuple[set[str], dict[str, str]]:
    kept = set(pl.read_delta(str(lake / "rl_selected"))["id"].cast(pl.String))
    dropped = pl.read_delta(str(lake / "rejections")).filter(pl.col("stage") == "rl_selected")
    return kept, dict(zip(dropped["id"], dropped["reason"]))


@pytest.mark.process
def test_rl_selected_keeps_exactly_what_the_rules_keep(rl_lake, tmp_path):
    lake, policy, job, instance = rl_lake
    assert not policy.errors, policy.errors[:3]
    candidates = set(pl.read_delta(str(lake / "deduplicated"))["id"].cast(pl.String))
    by_id = {str(r["id"]): r for r in policy.rows if str(r["id"]) in candidates}
    expected = {i: ("rl_not_checkable" if r["form"] in ("prose", "none") else EXPECTED[r["scenario"]])
                for i, r in by_id.items()}
    kept, dropped = _decided(lake)
    assert kept == {i for i, reason in expected.items() if reason is None}
    assert dropped == {i: reason for i, reason in expected.items() if reason is not None}
    assert set(dropped.values()) == {"rl_not_checkable", "rl_too_easy", "rl_too_hard", "rl_blind_solvable",
                                     "rl_undecided"}
    table = pl.read_delta(str(lake / "rl_selected"))
    assert table["pass_rate"].to_list() == [0.5] * table.height and table["samples"].to_list() == [8] * table.height
    assert table["blind_pass_rate"].to_list() == [0.0] * table.height
    undecided = pl.read_delta(str(lake / "rejections")).filter(pl.col("reason") == "rl_undecided")["detail"][0]
    assert "between 0.5 and 1" in undecided
    check_verl_export(lake, tmp_path / "verl", table, instance)
    check_report(lake, table)

    # a second run, excluding the rows of an SFT table: exactly those go, with their own reason
    sft = set(pl.read_delta(str(lake / "quality_filtered"))["id"].cast(pl.String))
    config = {**RUN_CONFIG, "ops": {"rl_selected": {"config": {"exclude_sft_asset": "quality_filtered"}}}}
    for subset in SUBSETS:
        assert job.execute_in_process(partition_key=subset, instance=instance, run_config=config,
                                      asset_selection=[dg.AssetKey("rl_selected")]).success
    kept, dropped = _decided(lake)
    in_sft = {i for i in sft if expected.get(i) != "rl_not_checkable"}
    # an SFT table never materialized for the subset is an error, not "nothing to exclude"
    missing = {**RUN_CONFIG, "ops": {"rl_selected": {"config": {"exclude_sft_asset": "difficulty_filtered"}}}}
    failed = job.execute_in_process(partition_key=SUBSETS[0], instance=instance, run_config=missing,
                                    asset_selection=[dg.AssetKey("rl_selected")], raise_on_error=False)
    assert not failed.success
    assert any("difficulty_filtered, which has not been materialized" in str(e.event_specific_data)
               for e in failed.all_events if e.is_failure)
    assert in_sft and {i for i, r in dropped.items() if r == "rl_in_sft_set"} == in_sft
    assert kept == {i for i, reason in expected.items() if reason is None} - sft


def verl_messages(example: dict) -> list:
    """What verl's `RLHFDataset._build_messages` (verl b178a3c) does with a row: split each
    string content on the placeholders, put the images in, and assert the counts agree."""
    import io
    import re

    from PIL import Image

    messages = example["prompt"]
    images = example.pop("images", None) or []
    offset = 0
    for message in messages:
        if not images:
            continue
        content = message["content"]
        if not isinstance(content, str):
            continue
        parts = []
        for segment in [s for s in re.split("(<image>|<video>)", content) if s != ""]:
            if segment == "<image>":
                assert offset < len(images)
                image = images[offset]
                assert isinstance(image, dict) and "bytes" in image
                image["image"] = Image.open(io.BytesIO(image["bytes"]))
                parts.append({"type": "image", **image})
                offset += 1
            else:
                parts.append({"type": "text", "text": segment})
        message["content"] = parts
    assert offset == len(images)
    return messages


def check_verl_export(lake, out, table: pl.DataFrame, instance) -> None:
    """`mmfr export --asset rl_selected --format verl`, read as verl reads it: `datasets`
    loads the parquet, `_build_messages` places each image, the reward manager passes
    `reward_model["ground_truth"]`, `data_source` and `extra_info` to the scoring function."""
    import datasets

    resource = LakeResource(uri=str(lake))
    result = export(resource, "rl_selected", list(SUBSETS), out, fmt="verl", instance=instance)
    assert sum(result.counts.values()) == table.height
    with pytest.raises(InputError, match="does not fit"):
        export(resource, "difficulty_filtered", list(SUBSETS), out, fmt="verl")
    rows = datasets.load_dataset("parquet", data_files=str(out / "train.parquet"))["train"]
    card = (out / "README.md").read_text()
    assert len(rows) == table.height and "data.train_files" in card
    # the card's recipe: the band rl_selected kept, and the policy's sampling settings
    assert "0 < pass rate < 1" in card and "| rl_rollouts | num_samples | 8 |" in card
    references = dict(zip(table["id"], table["reference"]))
    indices = set()
    for example in rows:
        info = example["extra_info"]
        assert example["data_source"] == f"mmfr/{info['subset']}" and example["ability"]
        assert example["reward_model"] == {"style": "rule", "ground_truth": references[info["id"]]}
        assert info["pass_rate"] == 0.5 and info["question"] and "<image>" not in info["question"]
        indices.add(info["index"])
        messages = verl_messages(dict(example))
        user = messages[-1]
        assert user["role"] == "user" and [p["type"] for p in user["content"]].count("image") == 1
        assert "<answer></answer>" in "".join(p.get("text", "") for p in user["content"])  # the RL prompt
        truth = example["reward_model"]["ground_truth"]
        right = compute_score(example["data_source"], f"<think>x</think><answer>{truth}</answer>", truth, info)
        wrong = compute_score(example["data_source"], "<think>x</think><answer>98765.4321</answer>", truth, info)
        assert (right["score"], wrong["score"]) == (1.0, 0.1)
    assert indices == set(range(table.height))
    # the hub layout of the same set: prompts without traces, the image as the Image feature
    hub = export(resource, "rl_selected", list(SUBSETS), out.parent / "hub", fmt="hub")
    loaded = datasets.load_dataset(str(hub.out), split="train")
    assert len(loaded) == table.height and {"question_plain", "reference", "pass_rate", "image"} <= set(loaded.features)


def check_report(lake, table: pl.DataFrame) -> None:
    """The report's RL plot counts every candidate the policy answered, kept or not, and the
    funnel and viewer carry rl_selected beside the SFT recipes."""
    import io

    from PIL import Image

    from mmfr_assets.reporting.plots import rl_pass_rates
    from mmfr_assets.reporting.stats import collect_stats, stage_names

    resource = LakeResource(uri=str(lake))
    stats = collect_stats(resource, list(SUBSETS))
    rolled = pl.read_delta(str(lake / "rl_rollouts")).filter(pl.col("checkable"))
    assert sum(stats.rl_pass_rates.values()) == rolled.height
    assert sum(n for (_, kept), n in stats.rl_pass_rates.items() if kept) == table.height
    assert stats.rl_pass_rates[(0.5, True)] == table.height and stats.rl_pass_rates[(1.0, False)] > 0
    with Image.open(io.BytesIO(rl_pass_rates(stats))) as image:
        assert image.format == "PNG" and image.width >= 600
    assert "rl_selected" in stage_names(resource)
    assert {"rl_selected"} <= set(stats.funnel["stage"])
