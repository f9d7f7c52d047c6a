"""raytuner: distributed hyperparameter tuning on Ray core.

>>> import raytuner as rt
>>> rt.loguniform(1e-4, 1e-1)
loguniform(0.0001, 0.1)

The Tuner runs trials as Ray actors; a searcher (:mod:`raytuner.search`) proposes configs and a
scheduler (:mod:`raytuner.schedulers`) stops, pauses or promotes trials from their reports. The
searchers and schedulers a user needs are re-exported here (``rt.ASHAScheduler``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from raytuner._worker.session import TrialContext, get_checkpoint, get_context, in_trial, report
from raytuner.errors import (
    ConfigError,
    ExperimentError,
    NotInTrialError,
    ProtocolError,
    RayTunerError,
    ReportError,
    ResourceError,
    StorageError,
    TrialsFailedError,
    TrialStopped,
)

if TYPE_CHECKING:
    from raytuner._callbacks import Callback
    from raytuner._driver.pool import release_workers
    from raytuner._results import Results, load
    from raytuner._trial import TrialResult, TrialStatus
    from raytuner._tuner import Tuner
    from raytuner.schedulers import (ASHAScheduler, FIFOScheduler, HyperbandScheduler, MedianStoppingScheduler,
                                     PB2Scheduler, PBTReplay, PBTScheduler)
    from raytuner.search import GPSearcher, GridSearcher, HyperOptSearcher, OptunaSearcher, RandomSearcher, TPESearcher
    from raytuner.search import choice, grid, loguniform, qloguniform, quniform, randint, uniform

# The rest loads on first use (PEP 562): a trial worker imports this package to run
# trials, and needs the session, not the Tuner, pandas or numpy (0.1-0.2 s per worker).
_LAZY = {
    "Callback": "raytuner._callbacks",
    "release_workers": "raytuner._driver.pool",
    "Results": "raytuner._results",
    "TrialResult": "raytuner._trial",
    "load": "raytuner._results",
    "TrialStatus": "raytuner._trial",
    "Tuner": "raytuner._tuner",
    **dict.fromkeys(["choice", "grid", "loguniform", "qloguniform", "quniform", "randint", "uniform",
                     "GPSearcher", "GridSearcher", "HyperOptSearcher", "OptunaSearcher", "RandomSearcher",
                     "TPESearcher"], "raytuner.search"),
    **dict.fromkeys(["ASHAScheduler", "FIFOScheduler", "HyperbandScheduler", "MedianStoppingScheduler",
                     "PB2Scheduler", "PBTReplay", "PBTScheduler"], "raytuner.schedulers"),
}

__version__ = "0.1.0"

__all__ = [
    "ASHAScheduler",
    "Callback",
    "ConfigError",
    "ExperimentError",
    "FIFOScheduler",
    "GPSearcher",
    "GridSearcher",
    "HyperOptSearcher",
    "HyperbandScheduler",
    "MedianStoppingScheduler",
    "NotInTrialError",
    "OptunaSearcher",
    "PB2Scheduler",
    "PBTReplay",
    "PBTScheduler",
    "ProtocolError",
    "RandomSearcher",
    "RayTunerError",
    "ReportError",
    "ResourceError",
    "Results",
    "StorageError",
    "TPESearcher",
    "TrialContext",
    "TrialResult",
    "TrialStatus",
    "TrialStopped",
    "TrialsFailedError",
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
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    # Submodules with heavy imports (TensorFlow) load only when used: rt.keras.ReportCallback.
    if name in ("keras", "search", "schedulers"):
        return importlib.import_module(f"raytuner.{name}")
    raise AttributeError(f"module 'raytuner' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"keras", "search", "schedulers"})
