"""Every `MMFR_*` variable the package reads, read here and nowhere else, so a variable's name,
its default and its meaning have one home (docs/configuration.md's Variables table lists the same).

| variable | function |
| --- | --- |
| `MMFR_SOURCE` | `source_location` |
| `MMFR_LAKE` | `lake_location` |
| `MMFR_LAKE_STORAGE_OPTIONS` | `lake_storage_options` |
| `MMFR_SHARDS` | `shard_count` |
| `MMFR_TARGET` | `target_setting` |
| `MMFR_LLM_CACHE` | `llm_cache_location` |
| `MMFR_PROMPTS` | `prompts_location` |
| `MMFR_REPORT_DIR` | `report_location` |
| `MMFR_REPORT_URL` | `report_url` |
| `MMFR_<ROLE>_BASE_URL`, `_MODEL`, `_MAX_CONCURRENCY`, `_API_KEY`, `_OUTPUT_TOKENS_PER_S`, `_GPUS_PER_REPLICA`, `_PRICE_PER_GPU_HOUR`, `_PRICE_PER_MILLION_TOKENS` | `endpoint_environment` |

One convention: each function takes an optional `environ` mapping; `None` (the default) means
`os.environ` read at call time (rather than `os.environ` as the default value itself, so
`help()` and signature dumps never print the environment, API keys included). Tests pass a dict.

One base for relative paths: a relative path *given* in a variable is relative to the current
directory of the process that reads it (the lake URI and the cache file are handed on as
given, the report folder is made absolute at once). The *defaults* all live in one folder,
`DATA_DIR` (the git-ignored `data/` of the checkout), whatever the current directory: `dagster
dev` started from `.dagster` (as `make ui` does) uses the same sample, lake, report and response
cache as `mmfr run` started from the repo.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional
from urllib.parse import urlparse
from urllib.request import url2pathname

from mmfr_assets.errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_SOURCE = DATA_DIR / "sample"
DEFAULT_LAKE = DATA_DIR / "lake"
DEFAULT_REPORT_DIR = DATA_DIR / "report"
DEFAULT_LLM_CACHE = DATA_DIR / "llm_cache.sqlite"
#: The prompt files: the checkout's top-level `prompts/`, their one home; a built wheel (the
#: Docker image) carries that folder as `mmfr_assets/prompt_files/` (setup.py maps it in).
INSTALLED_PROMPTS = PACKAGE_DIR / "prompt_files"
DEFAULT_PROMPTS = INSTALLED_PROMPTS if INSTALLED_PROMPTS.is_dir() else REPO_ROOT / "prompts"

LLM_CACHE_ENV = "MMFR_LLM_CACHE"
PROMPTS_ENV = "MMFR_PROMPTS"
REPORT_DIR_ENV = "MMFR_REPORT_DIR"
REPORT_URL_ENV = "MMFR_REPORT_URL"


def _env(environ: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def source_location(environ: Optional[Mapping[str, str]] = None) -> str:
    """The configured source, else the bundled sample's folder. Reading it writes nothing (the
    code location reads it as it loads): `make sample` / `mmfr sample` writes the sample, and a
    missing one is one line saying so."""
    configured = _env(environ).get("MMFR_SOURCE")
    if configured:
        return configured
    if not (DEFAULT_SOURCE / "README.md").exists():
        hint = ": set MMFR_SOURCE to a hub-layout folder or a hub id"
        sample_writer("MMFR_SOURCE is not set and the bundled sample", hint)  # no devkit: says so
        raise InputError(f"MMFR_SOURCE is not set and the bundled sample is not written yet: `make sample` "
                         f"(or `mmfr sample {DEFAULT_SOURCE}`) writes it{hint}")
    return str(DEFAULT_SOURCE)


def sample_writer(what: str, hint: str = "") -> Callable[..., Path]:
    """`write_sample` of `mmfr_devkit`, the scaffolding beside this package in a checkout and not
    in the wheel; without it, one line (`InputError`) saying so rather than a traceback."""
    try:
        from mmfr_devkit.sample import write_sample
    except ModuleNotFoundError as missing:
        if missing.name != "mmfr_devkit":
            raise
        raise InputError(f"{what} needs mmfr_devkit, which a checkout of mmfr-assets has (pip install -e .) "
                         f"and the installed wheel does not{hint}") from None
    return write_sample


def lake_location(environ: Optional[Mapping[str, str]] = None) -> str:
    """The Delta root URI (`MMFR_LAKE`: a local folder or `s3://bucket/prefix`), else `data/lake`."""
    return _env(environ).get("MMFR_LAKE") or str(DEFAULT_LAKE)


def lake_storage_options(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """deltalake storage options as JSON in `MMFR_LAKE_STORAGE_OPTIONS` (no secrets: those
    belong in the standard AWS_* variables, which deltalake and pyarrow read themselves)."""
    raw = _env(environ).get("MMFR_LAKE_STORAGE_OPTIONS")
    return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else {}


def shard_count(environ: Optional[Mapping[str, str]] = None) -> int:
    """`MMFR_SHARDS`: how many shards each subset is split into after `collected` (default 1:
    partitions are the subset names, as before shards). Set once per lake: a lake written with
    another count is refused (mmfr_assets/lake/shards.py)."""
    raw = (_env(environ).get("MMFR_SHARDS") or "1").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"MMFR_SHARDS must be a whole number of shards >= 1, got {raw!r}")
    return int(raw)


def target_setting(environ: Optional[Mapping[str, str]] = None) -> str:
    """`MMFR_TARGET`: the order the graph is built in when the code location loads: `all` (the
    default, the paper's: every row distilled, then the student) or a hard subset, `123k` or
    `586k` (the student first, the teachers only for rows that can still pass it;
    mmfr_assets/student_first/)."""
    from mmfr_assets.student_first.target import parse_target

    return parse_target(_env(environ).get("MMFR_TARGET"), "MMFR_TARGET")


def export_target(target: str) -> None:
    """Set `MMFR_TARGET` for the processes this one starts (`mmfr run --target`'s workers are
    spawned and build the graph from the environment, so they build it in the same order)."""
    from mmfr_assets.student_first.target import parse_target

    os.environ["MMFR_TARGET"] = parse_target(target)


def llm_cache_location(environ: Optional[Mapping[str, str]] = None) -> str:
    """The response cache (`MMFR_LLM_CACHE`): a SQLite file or a `postgresql://` URL; else
    `data/llm_cache.sqlite` (`data/` is git-ignored). The URL may hold a password: callers
    show it through `llm.cache.redacted`, never as read."""
    return _env(environ).get(LLM_CACHE_ENV) or str(DEFAULT_LLM_CACHE)


def llm_cache_is_set(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether `MMFR_LLM_CACHE` is given: the cache resource then passes it on as a
    `dagster.EnvVar` (read at run time, never shown) rather than as its value."""
    return bool(_env(environ).get(LLM_CACHE_ENV))


def prompts_location(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The folder of prompt files: `MMFR_PROMPTS`, else the shipped ones (`prompts/`)."""
    return Path(_env(environ).get(PROMPTS_ENV) or DEFAULT_PROMPTS)


def report_location(configured: str = "", lake_uri: Optional[str] = None,
                    environ: Optional[Mapping[str, str]] = None) -> Path:
    """Where the report and the row viewer are written, absolute: the asset's config, else
    `MMFR_REPORT_DIR`, else a `report` folder beside a local lake (`data/report` for the
    default `data/lake`), else `data/report` (a lake on an object store)."""
    given = configured or _env(environ).get(REPORT_DIR_ENV)
    if given:
        return Path(given).absolute()
    local = local_lake_folder(lake_uri) if lake_uri else None
    if local is not None:
        return local.absolute().parent / "report"
    return DEFAULT_REPORT_DIR.absolute()


def local_lake_folder(lake_uri: str) -> Optional[Path]:
    """The folder of a lake on this machine (a path, or a `file://` URI), None for a lake on an
    object store (`s3://`, `gs://`...): the one test of "is the lake local" (where the report
    goes, whether it is published to `<lake>/_report/`)."""
    if "://" not in lake_uri:
        return Path(lake_uri)
    if lake_uri.startswith("file://"):
        return Path(url2pathname(urlparse(lake_uri).path))
    return None


def report_url(configured: str = "", environ: Optional[Mapping[str, str]] = None) -> str:
    """The HTTP address serving `<lake>/_report/` (config, else `MMFR_REPORT_URL`), or ''."""
    return (configured or _env(environ).get(REPORT_URL_ENV, "")).strip().rstrip("/")


def role_env_prefix(role: str) -> str:
    """``cot_teacher`` -> ``MMFR_COT_TEACHER_``."""
    return f"MMFR_{role.upper()}_"


@dataclass(frozen=True)
class EndpointEnvironment:
    """What the environment says about one role's endpoint; `None` = not set (the role's
    default applies). The API key is only named, never read: `api_key_var` is the variable
    that holds it (set and non-empty), for `dagster.EnvVar` to resolve at run time."""

    base_url: Optional[str]
    model: Optional[str]
    max_concurrency: Optional[int]
    api_key_var: Optional[str]
    #: How fast and how dear the endpoint is (`mmfr plan`, the report's cost per kept row):
    #: the `LLMEndpoint` field name -> value, for the variables that are set.
    economics: Mapping[str, float] = dataclasses.field(default_factory=dict)


#: `MMFR_<ROLE>_<suffix>` -> the `LLMEndpoint` field it sets (a number >= 0).
ECONOMICS_VARIABLES: Mapping[str, str] = {
    "OUTPUT_TOKENS_PER_S": "output_tokens_per_s",
    "GPUS_PER_REPLICA": "gpus_per_replica",
    "PRICE_PER_GPU_HOUR": "price_per_gpu_hour",
    "PRICE_PER_MILLION_TOKENS": "price_per_million_tokens",
}


def _economics(env: Mapping[str, str], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for suffix, name in ECONOMICS_VARIABLES.items():
        text = (env.get(prefix + suffix) or "").strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{prefix}{suffix} must be a number, got {text!r}") from None
        if value < 0 or value != value:
            raise ValueError(f"{prefix}{suffix} must be >= 0, got {text!r}")
        out[name] = value
    return out


def endpoint_environment(role: str, environ: Optional[Mapping[str, str]] = None) -> EndpointEnvironment:
    """``MMFR_<ROLE>_BASE_URL`` (unset/empty = the endpoint is disabled; several URLs
    comma-separated), ``_MODEL``, ``_MAX_CONCURRENCY`` (an integer >= 1, else `ValueError`
    naming the variable) and the presence of ``_API_KEY``."""
    env = _env(environ)
    prefix = role_env_prefix(role)
    concurrency_text = (env.get(prefix + "MAX_CONCURRENCY") or "").strip()
    try:
        concurrency = int(concurrency_text) if concurrency_text else None
    except ValueError:
        raise ValueError(f"{prefix}MAX_CONCURRENCY must be an integer, got {concurrency_text!r}") from None
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"{prefix}MAX_CONCURRENCY must be >= 1, got {concurrency}")
    return EndpointEnvironment(
        base_url=(env.get(prefix + "BASE_URL") or "").strip() or None,
        model=(env.get(prefix + "MODEL") or "").strip() or None,
        max_concurrency=concurrency,
        api_key_var=prefix + "API_KEY" if env.get(prefix + "API_KEY") else None,
        economics=_economics(env, prefix),
    )
