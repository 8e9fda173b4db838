"""`mmfr_assets.settings` is the one reader of `MMFR_*` variables: each function against a
given mapping, the defaults in the checkout's `data/` from any current directory, no other
module of the package reading an `MMFR_*` variable itself, and the Variables table of
docs/configuration.md naming exactly the variables the settings module reads."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import dagster as dg
import pytest

from mmfr_assets import settings
from mmfr_assets.errors import InputError
from mmfr_assets.llm.resource import endpoint_class_for_role
from mmfr_assets.prompts import prompts_folder
from mmfr_assets.reporting.publish import on_object_store, public_report_url, viewer_link

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "mmfr_assets"


def test_defaults_live_in_the_checkouts_data_folder_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = REPO / "data"
    assert settings.lake_location({}) == str(data / "lake")
    assert settings.llm_cache_location({}) == str(data / "llm_cache.sqlite")
    assert settings.report_location(environ={}) == data / "report"
    assert settings.prompts_location({}) == REPO / "prompts"  # the checkout's top level
    assert settings.lake_storage_options({}) == {}
    assert settings.report_url(environ={}) == ""


def test_given_values_win_and_relative_paths_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"MMFR_LAKE": "s3://b/p", "MMFR_LAKE_STORAGE_OPTIONS": '{"AWS_REGION": "eu-west-1", "n": 1}',
           "MMFR_LLM_CACHE": "postgresql://u:p@h/db", "MMFR_PROMPTS": "mine", "MMFR_REPORT_DIR": "out",
           "MMFR_REPORT_URL": " https://r.example/x/ ", "MMFR_SOURCE": "org/dataset"}
    assert settings.lake_location(env) == "s3://b/p"
    assert settings.lake_storage_options(env) == {"AWS_REGION": "eu-west-1", "n": "1"}
    assert settings.llm_cache_location(env) == "postgresql://u:p@h/db"
    assert settings.prompts_location(env) == Path("mine")
    assert settings.report_location(environ=env) == tmp_path / "out"
    assert settings.report_location("cfg", environ=env) == tmp_path / "cfg"     # the asset's config first
    assert settings.report_url(environ=env) == "https://r.example/x"
    assert settings.report_url("https://cfg/", env) == "https://cfg"
    assert settings.source_location(env) == "org/dataset"
    # a report beside a local lake given relative to the current directory
    assert settings.report_location(lake_uri="lakes/one", environ={}) == tmp_path / "lakes" / "report"
    assert settings.report_location(lake_uri="s3://b/p", environ={}) == REPO / "data" / "report"
    # a file:// lake is local like a path: its report goes beside it, and is not published
    assert settings.report_location(lake_uri=f"file://{tmp_path}/lakes/two", environ={}) == tmp_path / "lakes" / "report"
    assert not on_object_store(f"file://{tmp_path}/lake") and not on_object_store("lake")
    assert on_object_store("s3://b/p") and on_object_store("gs://b/p")


def test_callers_read_through_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MMFR_PROMPTS", str(tmp_path))
    monkeypatch.setenv("MMFR_REPORT_URL", "https://r.example")
    assert prompts_folder() == tmp_path
    assert public_report_url() == "https://r.example"
    assert viewer_link("A", "cleaned", "s3://b/lake")[0] == "url"


def test_shard_count_defaults_to_one_and_refuses_what_is_no_count():
    assert settings.shard_count({}) == 1
    assert settings.shard_count({"MMFR_SHARDS": " 16 "}) == 16
    for bad in ("0", "-2", "four", "1.5"):
        with pytest.raises(InputError, match="MMFR_SHARDS must be a whole number"):
            settings.shard_count({"MMFR_SHARDS": bad})


def test_endpoint_environment_names_the_key_and_never_holds_it():
    secret = "sk-never-shown"
    env = {"MMFR_COT_TEACHER_BASE_URL": " http://a/v1 ", "MMFR_COT_TEACHER_MODEL": "m",
           "MMFR_COT_TEACHER_MAX_CONCURRENCY": "7", "MMFR_COT_TEACHER_API_KEY": secret}
    got = settings.endpoint_environment("cot_teacher", env)
    assert got == settings.EndpointEnvironment("http://a/v1", "m", 7, "MMFR_COT_TEACHER_API_KEY")
    assert secret not in repr(got)
    endpoint = endpoint_class_for_role("cot_teacher", env)()
    assert isinstance(endpoint.api_key, dg.EnvVar) and endpoint.api_key.env_var_name == "MMFR_COT_TEACHER_API_KEY"
    assert settings.endpoint_environment("judge_llm", {}) == settings.EndpointEnvironment(None, None, None, None)
    for bad in ("lots", "0"):
        with pytest.raises(ValueError, match="MMFR_JUDGE_LLM_MAX_CONCURRENCY"):
            settings.endpoint_environment("judge_llm", {"MMFR_JUDGE_LLM_MAX_CONCURRENCY": bad})


def test_one_convention_environ_none_means_os_environ_at_call_time():
    readers = [f for name, f in vars(settings).items()
               if inspect.isfunction(f) and f.__module__ == settings.__name__ and not name.startswith("_")]
    with_environ = [f for f in readers if "environ" in inspect.signature(f).parameters]
    assert {f.__name__ for f in with_environ} >= {
        "source_location", "lake_location", "lake_storage_options", "llm_cache_location",
        "prompts_location", "report_location", "report_url", "endpoint_environment", "shard_count"}
    for f in with_environ:
        assert inspect.signature(f).parameters["environ"].default is None, f.__name__


def _mmfr_reads(tree: ast.AST) -> list[int]:
    """Lines where an `MMFR_*` name is looked up: `x.get("MMFR_..")`, `getenv(..)`,
    `x["MMFR_.."]`, `EnvVar("MMFR_..")` (f-strings included)."""

    def names_mmfr(node: ast.AST | None) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.startswith("MMFR_")
        if isinstance(node, ast.JoinedStr) and node.values:
            return names_mmfr(node.values[0])
        return False

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and names_mmfr(node.args[0]):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"get", "getenv", "EnvVar", "pop", "setdefault"}:
                lines.append(node.lineno)
        if isinstance(node, ast.Subscript) and names_mmfr(node.slice):
            lines.append(node.lineno)
    return lines


def test_no_module_but_settings_reads_an_mmfr_variable():
    # the scanner finds what it is meant to find
    assert _mmfr_reads(ast.parse('os.environ.get("MMFR_X")\nenv[f"MMFR_{r}_Y"]\ndg.EnvVar("MMFR_Z")')) == [1, 2, 3]
    readers = {path.relative_to(PACKAGE).as_posix(): _mmfr_reads(ast.parse(path.read_text()))
               for path in PACKAGE.rglob("*.py")}
    assert readers.pop("settings.py"), "settings.py reads the variables"
    assert {path: lines for path, lines in readers.items() if lines} == {}


def test_docs_variables_table_lists_what_settings_reads():
    page = (REPO / "docs" / "configuration.md").read_text()
    table = page.split("\n## Variables\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(MMFR_[A-Z_<>]+?)`", table))
    source = (PACKAGE / "settings.py").read_text()
    code = source.split('"""', 2)[2]                     # below the module docstring
    read = set(re.findall(r'"(MMFR_[A-Z_]+)"', code)) | {"MMFR_<ROLE>_BASE_URL"}
    assert read == listed
    # the settings docstring's table names the same variables
    documented = set(re.findall(r"`(MMFR_[A-Z_<>]+?)`", source.split('"""', 2)[1]))
    assert documented == listed


def test_the_default_source_is_not_written_by_reading_it(monkeypatch, tmp_path):
    """Loading the code location reads the source's location: that writes nothing. Without the
    sample, one line says how to write it."""
    monkeypatch.setattr(settings, "DEFAULT_SOURCE", tmp_path / "sample")
    with pytest.raises(InputError, match=r"the bundled sample is not written yet: `make sample` \(or `mmfr sample "):
        settings.source_location({})
    assert not (tmp_path / "sample").exists()
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "README.md").write_text("---\n---\n")
    assert settings.source_location({}) == str(tmp_path / "sample")
