"""The one mechanism every model-driven asset runs on (see `declaration.ModelStep`)."""

from mmfr_assets.model_step.declaration import ModelStep, ModelStepConfig, Parsed, Retry

__all__ = ["ModelStep", "ModelStepConfig", "Parsed", "Retry"]
