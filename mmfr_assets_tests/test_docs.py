"""The manual (`README.md` and `docs/*.md`) keeps up with the code: every name a user types or
sees is read from the code and must appear in it, and every relative link and anchor resolves.

Read from the code, not listed here: the `mmfr` commands and flags (the parser
`mmfr_assets.cli.build_parser()` builds), the `MMFR_*` variables (every such token in the
package's source, each endpoint role's `MMFR_<ROLE>_*` family, and the variables the tests,
the bench and the devkit read from the environment), and the assets, asset checks and resources
of the code location. A name the docs lack fails the test; nothing is skipped.
"""

from __future__ import annotations

import argparse
import ast
import re
import unicodedata
from pathlib import Path

import pytest

from mmfr_assets.cli import build_parser
from mmfr_assets.llm.resource import ROLES
from mmfr_assets.settings import role_env_prefix

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "mmfr_assets"
PAGES = [REPO / "README.md", REPO / "deploy" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# Where the environment is read besides the package: what a developer or operator sets.
ENV_READERS = [REPO / "mmfr_assets_tests", REPO / "mmfr_devkit", REPO / "bench"]


def _text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def _missing(names, text: str) -> list[str]:
    """The names that occur nowhere in `text` as a whole word (`--config` is not found inside
    `--config-file`, `report` not inside `report_dir`)."""
    return sorted(n for n in set(names) if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text))


# ---------------------------------------------------------------------------- the mmfr command


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """{command: its options and positionals} of the `mmfr` parser."""
    commands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                flags = []
                for a in sub._actions:
                    if isinstance(a, argparse._HelpAction):
                        continue
                    flags.extend(a.option_strings or [a.metavar or a.dest.upper()])
                commands[name] = flags
    return commands


def test_the_parser_is_read():
    commands = _commands(build_parser())
    assert {"run", "funnel", "export", "sample", "serve-report"} <= set(commands)
    assert "--max-samples" in commands["run"] and "--think-format" in commands["export"]


def test_every_mmfr_command_and_flag_is_documented():
    text = _text()
    commands = _commands(build_parser())
    assert _missing([f"mmfr {name}" for name in commands], text) == []
    flags = {flag for options in commands.values() for flag in options if flag.startswith("--")}
    assert _missing(flags, text) == []
    # each command's flags in a usage line of that command: `mmfr export ... --shard-mb`
    usage = {name: "\n".join(re.findall(rf"mmfr {re.escape(name)}\b[^\n]*(?:\n {{8,}}[^\n#]*)*", text))
             for name in commands}
    undocumented = {name: _missing([f for f in options if f.startswith("--")], usage[name])
                    for name, options in commands.items()}
    assert {name: flags for name, flags in undocumented.items() if flags} == {}


# ---------------------------------------------------------------------------- MMFR_* variables

_TOKEN = re.compile(r"\bMMFR_[A-Z0-9_]*[A-Z0-9]\b")


def _package_variables() -> set[str]:
    """Every complete `MMFR_*` token in the package's source, but per-role names (documented
    as their family, `MMFR_<ROLE>_...`, checked below)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        found |= set(_TOKEN.findall(path.read_text()))
    prefixes = tuple(role_env_prefix(role) for role in ROLES)
    return {name for name in found if not name.startswith(prefixes)}


def _is_prefix(node: ast.AST) -> bool:
    """`prefix` or `role_env_prefix(...)`: the `MMFR_<ROLE>_` of a role."""
    return (isinstance(node, ast.Name) and node.id == "prefix") or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "role_env_prefix")


def _role_suffixes() -> set[str]:
    """The `MMFR_<ROLE>_*` suffixes the package reads: each `prefix + "SUFFIX"` or
    `f"{prefix}SUFFIX"` (prefix a `role_env_prefix`)."""
    return set().union(*(_suffixes_in(ast.parse(path.read_text())) for path in PACKAGE.rglob("*.py")))


def _suffixes_in(tree: ast.AST) -> set[str]:
    suffixes = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_prefix(node.left)
                and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)):
            suffixes.add(node.right.value)
        elif (isinstance(node, ast.JoinedStr) and len(node.values) >= 2
              and isinstance(node.values[0], ast.FormattedValue) and _is_prefix(node.values[0].value)
              and isinstance(node.values[1], ast.Constant)):
            suffixes.add(node.values[1].value)
    return {s for s in suffixes if re.fullmatch(r"[A-Z0-9_]+", s)}


def _environment_reads(tree: ast.AST) -> set[str]:
    """`MMFR_*` names read from the environment: `os.environ.get("X")`, `os.getenv("X")`,
    `os.environ["X"]` (loaded, not assigned)."""
    names = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr == "get" and isinstance(func.value, ast.Attribute) and func.value.attr == "environ")
                or func.attr == "getenv"
            ):
                key = node.args[0].value
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and isinstance(node.value, ast.Attribute) and node.value.attr == "environ"
              and isinstance(node.slice, ast.Constant)):
            key = node.slice.value
        if isinstance(key, str) and key.startswith("MMFR_"):
            names.add(key)
    return names


def _other_variables() -> set[str]:
    found = set()
    for folder in ENV_READERS:
        for path in folder.rglob("*.py"):
            found |= _environment_reads(ast.parse(path.read_text()))
    for script in (REPO / "deploy").glob("*.sh"):        # `${MMFR_PG_ROLE:-mmfr}`
        found |= set(re.findall(r"\$\{?(MMFR_[A-Z0-9_]*[A-Z0-9])", script.read_text()))
    return found


def test_the_variables_are_read():
    assert {"MMFR_SOURCE", "MMFR_LAKE", "MMFR_SHARDS", "MMFR_LLM_CACHE"} <= _package_variables()
    assert {"BASE_URL", "MODEL", "MAX_CONCURRENCY", "API_KEY"} <= _role_suffixes()
    assert _suffixes_in(ast.parse('env.get(prefix + "A")\nf"{role_env_prefix(r)}B_C"\nprefix + x')) == {"A", "B_C"}
    assert {"MMFR_TEST_POSTGRES_URL", "MMFR_REAL_SAMPLE", "MMFR_PG_ROLE"} <= _other_variables()
    assert _environment_reads(ast.parse('os.environ.get("MMFR_A")\nos.environ["MMFR_B"]\n'
                                        'os.environ["MMFR_C"] = "1"\nos.getenv("MMFR_D")')) == {
        "MMFR_A", "MMFR_B", "MMFR_D"}


def test_every_variable_is_documented():
    text = _text()
    assert _missing(_package_variables() | _other_variables(), text) == []
    # the family of every role's variables, and each role's own prefix
    assert _missing([f"MMFR_<ROLE>_{suffix}" for suffix in _role_suffixes()], text) == []
    prefixes = [role_env_prefix(role) for role in ROLES]
    assert sorted(p for p in prefixes if f"`{p}*`" not in text) == []


# ---------------------------------------------------------------------------- assets


@pytest.fixture(scope="module")
def definitions(real_sample, tmp_path_factory):
    from mmfr_assets.definitions import build_definitions

    return build_definitions(str(real_sample), str(tmp_path_factory.mktemp("lake")), {})


def test_every_asset_check_and_resource_is_documented(definitions):
    graph = definitions.resolve_asset_graph()
    assets = {key.path[-1] for key in graph.get_all_asset_keys()}
    checks = {key.name for key in graph.asset_check_keys}
    resources = set(definitions.resources or {})
    assert {"collected", "difficulty_filtered_586k", "report"} <= assets
    assert {"rows_accounted_for", "model_ran"} <= checks and "cot_teacher" in resources
    text = _text()
    assert _missing(assets | checks | resources, text) == []


def test_the_run_config_examples_of_the_thresholds_are_valid(definitions):
    """Every YAML run config the configuration and running pages show is one the asset job
    accepts, except the one shown as the thresholds' former place, which the CLI refuses."""
    import dagster as dg
    import yaml

    from mmfr_assets.cli.inputs import validate_run_config
    from mmfr_assets.errors import InputError

    job = definitions.resolve_implicit_global_asset_job_def()
    blocks = [yaml.safe_load(block) for page in ("configuration.md", "running.md")
              for block in re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / page).read_text(), re.S)]
    configs = [b for b in blocks if isinstance(b, dict) and ("resources" in b or "ops" in b)]
    former = [c for c in configs if "min_response_words" in str(c.get("ops", {}))]
    assert len(former) == 1 and any("quality_thresholds" in str(c.get("resources", {})) for c in configs)
    for config in configs:
        if config in former:
            with pytest.raises(InputError, match="resources.quality_thresholds.config"):
                validate_run_config(job, config, "docs")
        else:
            assert dg.validate_run_config(job, config), config


# ---------------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation but `-` and `_` dropped,
    spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").strip().lower()
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(m.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)   # not inside code blocks
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_slugs_are_githubs():
    assert _slug("The instance (`dagster.yaml`)") == "the-instance-dagsteryaml"
    assert _slug("Serving it: `mmfr serve-report`") == "serving-it-mmfr-serve-report"
    assert _slug("`extracted_answers`") == "extracted_answers"


def test_every_relative_link_and_anchor_resolves():
    assert len(PAGES) > 10 and all(page.exists() for page in PAGES)
    broken = []
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+:", link):            # http:, https:, mailto:
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(REPO)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.relative_to(REPO)}: {link} (no such heading)")
    assert broken == []


def test_every_docs_page_is_in_the_readme_contents():
    readme = (REPO / "README.md").read_text()
    pages = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md"))
    assert [p for p in pages if f"]({p})" not in readme] == []
