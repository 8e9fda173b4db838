"""Every model step of the pipeline, read from its lineage line: the one place `definitions.py`
builds model-step assets from.

Adding a step is three files ([development](../../docs/development.md#adding-a-model-step)):
its module (a `ModelStep` subclass in its stage's folder: asset name, role, columns, prompt,
output schema, `needs`/`render`/`parse`/`without_model`, its `config_class`), its prompt
(`prompts/<prompt>.system.txt` / `.user.txt`), and its node line in `lineage.py`, which names
the class (`model_step="mmfr_assets.distillation.teachers:CotTeacher"`) beside what the step reads. The rest
is derived: its `upstream` and deps from that node, its asset group from its package, its asset,
pool, checks, resources and metadata from the builder; a consumer reads its columns with
`join.take(step, ...)`. A declaration that does not hold together (a class the line names that
is not there, a step whose `asset` is not its line's name, a reason column it does not write, a
role with no endpoint resource, two steps with one name) fails when the code location loads.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from mmfr_assets.lineage import PAPER_LINEAGE, Node
from mmfr_assets.llm.resource import ROLES
from mmfr_assets.model_step.asset import model_step_asset
from mmfr_assets.model_step.declaration import ModelStep, ModelStepConfig
from mmfr_assets.stage.asset import group_of


@dataclass(frozen=True)
class Registered:
    """One model step: its declaration; the `Config` its asset takes and its asset group are
    the step's (`config_class`, its package)."""

    step: type[ModelStep]

    @property
    def config(self) -> type[ModelStepConfig]:
        return self.step.config_class

    @property
    def group(self) -> str:
        return group_of(self.step.__module__)


def declared_step(node: Node) -> type[ModelStep]:
    """The `ModelStep` class a lineage line names (`module:Class`)."""
    module, _, name = (node.model_step or "").partition(":")
    try:
        step = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"{node.name}: model_step={node.model_step!r} names no class ({error}); "
                         "write it as 'package.module:Class'") from None
    if not (isinstance(step, type) and issubclass(step, ModelStep)) or step.asset != node.name:
        raise ValueError(f"{node.name}: model_step={node.model_step!r} is not the ModelStep of "
                         f"this table (its asset: {getattr(step, 'asset', None)!r})")
    if not hasattr(step, "upstream"):  # a step of the pipeline has its paper node's already
        step.upstream = node.upstream
    return step


def registered(nodes: Iterable[Node] = PAPER_LINEAGE) -> tuple[Registered, ...]:
    """The model steps the lineage's lines name, in lineage order."""
    return tuple(Registered(declared_step(n)) for n in nodes if n.model_step)


MODEL_STEPS: tuple[Registered, ...] = registered()


def step_named(name: str, steps: tuple[Registered, ...] = MODEL_STEPS) -> type[ModelStep]:
    """The registered step whose table is `name` (a consumer's join names the step's table)."""
    for r in steps:
        if r.step.asset == name:
            return r.step
    raise KeyError(f"{name!r} is no registered model step (mmfr_assets/model_step/registry.py)")


def check_registry(steps: tuple[Registered, ...] = MODEL_STEPS) -> None:
    """Names unique, every role one of the endpoint resources (`llm/resource.py` ROLES)."""
    twice = [name for name, n in Counter(r.step.asset for r in steps).items() if n > 1]
    if twice:
        raise ValueError(f"model steps registered twice: {', '.join(twice)}")
    for r in steps:
        if r.step.role not in ROLES:
            raise ValueError(f"{r.step.asset}: role {r.step.role!r} is not an endpoint role ({', '.join(ROLES)}); "
                             "add it to ROLE_DEFAULTS in mmfr_assets/llm/resource.py")


def build_model_steps(partitions: dg.PartitionsDefinition,
                      steps: tuple[Registered, ...] = MODEL_STEPS) -> list[dg.AssetsDefinition]:
    """The asset of every registered step."""
    check_registry(steps)
    return [model_step_asset(r.step, partitions) for r in steps]
