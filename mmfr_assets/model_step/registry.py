"""Every model step of the pipeline, one line each: the one place `definitions.py` builds
model-step assets from.

Adding a step: declare it (a `ModelStep` subclass in its stage's folder: upstream, columns,
prompt, output schema, `needs`/`render`/`parse`/`without_model`, its `Config`), write its prompt
(`prompts/<prompt>.system.txt` / `.user.txt`), add its line here and its node in
`lineage.py` (what it reads; the step's `upstream` is read from there). The asset, its
pool, its checks, its resources and its metadata follow; a consumer reads its columns with
`join.take(step, ...)`. A declaration that does not hold together (a reason column it does not
write, a role with no endpoint resource, two steps with one name) fails when the code location
loads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import dagster as dg

from mmfr_assets.cleaning.answers import AnswerExtraction, AnswerExtractionConfig
from mmfr_assets.cleaning.review import QuestionReview, QuestionReviewConfig
from mmfr_assets.distillation.teachers import CaptionTeacher, CaptionTeacherConfig, CotTeacher, CotTeacherConfig
from mmfr_assets.llm.resource import ROLES
from mmfr_assets.model_step.asset import ModelStepConfig, model_step_asset
from mmfr_assets.model_step.declaration import ModelStep
from mmfr_assets.rl.configs import RlRolloutsConfig, RlVerdictsConfig
from mmfr_assets.rl.steps import RlRolloutsStep, RlVerdictsStep
from mmfr_assets.selection.configs import AnswerVerdictsConfig, StudentRolloutsConfig, StudentVerdictsConfig
from mmfr_assets.selection.steps import AnswerVerdictsStep, StudentRolloutsStep, StudentVerdictsStep


@dataclass(frozen=True)
class Registered:
    """One model step: its declaration, the `Config` its asset takes, its asset group."""

    step: type[ModelStep]
    config: type[ModelStepConfig]
    group: str


MODEL_STEPS: tuple[Registered, ...] = (
    Registered(QuestionReview, QuestionReviewConfig, "cleaning"),
    Registered(AnswerExtraction, AnswerExtractionConfig, "cleaning"),
    Registered(CaptionTeacher, CaptionTeacherConfig, "distillation"),
    Registered(CotTeacher, CotTeacherConfig, "distillation"),
    Registered(AnswerVerdictsStep, AnswerVerdictsConfig, "selection"),
    Registered(StudentRolloutsStep, StudentRolloutsConfig, "selection"),
    Registered(StudentVerdictsStep, StudentVerdictsConfig, "selection"),
    Registered(RlRolloutsStep, RlRolloutsConfig, "rl"),
    Registered(RlVerdictsStep, RlVerdictsConfig, "rl"),
)


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
    return [model_step_asset(r.step, partitions, config_type=r.config, group=r.group) for r in steps]
