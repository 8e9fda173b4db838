"""Every third-party module the package imports comes from a declared dependency.

Why: a developer's virtualenv collects packages that no dependency asks for (a transitive
dependency of some tool, a manual `pip install`), and the package then imports them happily
until a fresh install lacks them. CI once failed that way on `aiohttp`, which the client's
transport needs through `openai[aiohttp]`.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = Path(__file__).resolve().parents[1] / "mmfr_assets"
DEVKIT = PACKAGE.parent / "mmfr_devkit"  # tests' and demo's scaffolding: in a checkout, not the wheel


def imported_top_level_modules(root: Path) -> dict[str, str]:
    """Top-level module name -> one file importing it, for absolute imports under `root`."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(root.parent)))
    return found


def dependency_closure(distribution: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of `distribution` and everything its requirements (with the extras asked
    for, environment markers evaluated here) pull in, as installed."""
    seen: set[str] = set()
    todo = [(distribution, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen and not wanted:
            continue
        seen.add(key)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # not installed: it provides no module either
            continue
        for line in requirements:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(e) for e in environments):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


#: Modules imported only where a feature needs them (inside a function, with a message naming
#: the extra when missing) -> the extra that declares them.
OPTIONAL_IMPORTS = {"psycopg2": "postgres"}  # MMFR_LLM_CACHE on PostgreSQL (llm/cache.py)


@pytest.mark.parametrize("root, extras", [(PACKAGE, frozenset()), (DEVKIT, frozenset({"test"}))],
                         ids=["package", "devkit"])
def test_every_import_of_the_package_is_a_declared_dependency(root, extras):
    """The devkit may use the test extra too (it runs in a checkout, installed with it)."""
    declared = dependency_closure("mmfr-assets", extras)
    providers = metadata.packages_distributions()
    undeclared = {}
    for module, where in imported_top_level_modules(root).items():
        # mmfr_devkit: imported by the package only where a checkout has it (settings.sample_writer)
        if module in sys.stdlib_module_names or module in ("mmfr_assets", "mmfr_devkit", "__future__"):
            continue
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        extra = OPTIONAL_IMPORTS.get(module)
        if extra and distributions & dependency_closure("mmfr-assets", frozenset({extra})):
            continue
        if not distributions & declared:
            undeclared[module] = (where, sorted(distributions) or "not installed")
    assert not undeclared, f"imported but not declared in pyproject dependencies: {undeclared}"


def test_the_check_sees_an_undeclared_import(tmp_path):
    """The check itself can fail: pytest is installed (test extra) but no runtime dependency."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import os\nfrom pytest import fixture\n")
    modules = imported_top_level_modules(tmp_path / "pkg")
    assert set(modules) == {"os", "pytest"}
    provided = {canonicalize_name(d) for d in metadata.packages_distributions()["pytest"]}
    assert not provided & dependency_closure("mmfr-assets")


BUILT_WHEEL_RUN = """
import importlib.util
import sys
target, source, lake, checkout = sys.argv[1:5]
# only the wheel: without the path entry of the checkout's editable install (the entry itself:
# the virtualenv's site-packages may live inside the checkout, as `make install` puts it)
sys.path[:] = [p for p in sys.path if p.rstrip("/") != checkout.rstrip("/")]
import dagster as dg
import mmfr_assets
from mmfr_assets.cli import main
from mmfr_assets.definitions import build_definitions
from mmfr_assets.prompts import prompts_folder

assert mmfr_assets.__file__.startswith(target), mmfr_assets.__file__  # the wheel, not the checkout
assert importlib.util.find_spec("mmfr_devkit") is None
assert main(["sample", lake + "-sample"]) == 2  # its one line on stderr
try:
    build_definitions()  # no MMFR_SOURCE: the default source is the checkout's sample
except Exception as error:
    print(f"no source: {type(error).__name__}: {error}", file=sys.stderr)
assert str(prompts_folder()).startswith(target) and (prompts_folder() / "question_review.user.txt").is_file()
job = build_definitions(source, lake, {}).resolve_implicit_global_asset_job_def()
result = job.execute_in_process(
    partition_key="BMMR", instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    asset_selection=[dg.AssetKey("collected"), dg.AssetKey("question_reviews")],
)
assert result.success, [e.message for e in result.all_events if e.is_failure]
print("materialized", sorted(e.asset_key.path[-1] for e in result.get_asset_materialization_events()))
"""


def dockerfile_copies() -> list[str]:
    """The checkout's files and folders deploy/Dockerfile's COPY lines take into the image."""
    names = []
    for line in (PACKAGE.parent / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            names += line.split()[1:-1]
    return names


def test_the_image_copies_the_prompts_and_the_build_hook():
    """`prompts/` is outside the package: the image needs it and setup.py, which maps it in."""
    assert {"prompts", "setup.py", "MANIFEST.in", "pyproject.toml", "mmfr_assets"} <= set(dockerfile_copies())


@pytest.mark.e2e
def test_the_built_wheel_runs_a_model_step(tmp_path, real_sample):
    """The package as a wheel installs it (the Docker image does `pip install .`), not the
    checkout: its prompts must come with it, or every model step fails on its prompt file. The
    devkit (fake server, sample) must not, and what would use it says so in one line."""
    # what deploy/Dockerfile copies, and nothing else (no egg-info or build/ of earlier builds,
    # whose file lists setuptools would reuse), but the devkit: pyproject's package list is what
    # keeps it out of the wheel
    root = tmp_path / "src"
    root.mkdir()
    for name in [*dockerfile_copies(), DEVKIT.name]:
        source = PACKAGE.parent / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(root)],
                   check=True, cwd=tmp_path, capture_output=True)
    wheel = next(wheels.glob("mmfr_assets-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        packages = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        assert packages == {"mmfr_assets"}, packages
        assert not [n for n in archive.namelist() if "fake_server" in n or n.startswith("mmfr_assets/sample/")]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, cwd=tmp_path, capture_output=True)
    # the dependencies come from this environment; the package only from the wheel (PYTHONPATH
    # is searched before the checkout's editable finder), run from outside the checkout
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMFR_")}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", BUILT_WHEEL_RUN, str(target), str(real_sample), str(tmp_path / "lake"),
                           str(PACKAGE.parent)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # without the devkit, the sample's two users say so in one line each
    needs = "needs mmfr_devkit, which a checkout of mmfr-assets has (pip install -e .) and the installed wheel does not"
    assert f"mmfr: mmfr sample {needs}\n" in done.stderr, done.stderr[-3000:]
    assert (f"no source: InputError: MMFR_SOURCE is not set and the bundled sample {needs}: set MMFR_SOURCE to "
            "a hub-layout folder or a hub id\n") in done.stderr, done.stderr[-3000:]
    assert "materialized ['collected', 'question_reviews']" in done.stdout
