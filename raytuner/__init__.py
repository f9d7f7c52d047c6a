"""raytuner: distributed hyperparameter tuning on Ray core.

>>> import raytuner as rt
>>> rt.loguniform(1e-4, 1e-1)
LogUniform(low=0.0001, high=0.1)

The Tuner runs trials as Ray actors; a searcher (``search``) proposes configs and a
scheduler (``schedulers``) stops, pauses or promotes trials from their reports.
"""

from __future__ import annotations

from typing import Any

from raytuner._callbacks import Callback
from raytuner._pool import release_workers
from raytuner._results import Results, TrialResult, load
from raytuner._session import TrialContext, get_checkpoint, get_context, in_trial, report
from raytuner._trial import TrialStatus
from raytuner._tuner import Tuner
from raytuner.errors import (
    ConfigError,
    ExperimentError,
    NotInTrialError,
    RayTunerError,
    ReportError,
    TrialStopped,
)
from search import choice, grid, loguniform, qloguniform, quniform, randint, uniform

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "ConfigError",
    "ExperimentError",
    "NotInTrialError",
    "RayTunerError",
    "ReportError",
    "Results",
    "TrialContext",
    "TrialResult",
    "TrialStatus",
    "TrialStopped",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid",
    "in_trial",
    "load",
    "loguniform",
    "qloguniform",
    "quniform",
    "randint",
    "release_workers",
    "report",
    "uniform",
]


def __getattr__(name: str) -> Any:
    # Submodules with heavy imports (TensorFlow) load only when used: rt.keras.ReportCallback.
    if name in ("keras",):
        import importlib

        return importlib.import_module(f"raytuner.{name}")
    raise AttributeError(f"module 'raytuner' has no attribute {name!r}")
