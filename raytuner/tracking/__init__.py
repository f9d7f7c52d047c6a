"""Loggers for experiment trackers, as :class:`raytuner.Callback` objects.

>>> from raytuner.tracking import TensorBoardCallback, MLflowCallback

``TensorBoardCallback`` is added by the Tuner by default when tensorboard is installed.
Each tracker's package is imported only when its callback is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MLflowCallback", "TensorBoardCallback"]


def __getattr__(name: str) -> Any:
    if name == "TensorBoardCallback":
        from raytuner.tracking.tensorboard import TensorBoardCallback

        return TensorBoardCallback
    if name == "MLflowCallback":
        from raytuner.tracking.mlflow import MLflowCallback

        return MLflowCallback
    raise AttributeError(f"module 'raytuner.tracking' has no attribute {name!r}")
