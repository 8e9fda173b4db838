"""The one mechanism every model-driven asset runs on (see `declaration.ModelStep`)."""

from mmfr_assets.model_step.declaration import ModelStep, Parsed, Retry

__all__ = ["ModelStep", "Parsed", "Retry"]
