"""Training: a resumable loop (`loop.fit`) and the stage recipes built on it."""

from .loop import TrainConfig, fit, lr_at

__all__ = ["TrainConfig", "fit", "lr_at"]
