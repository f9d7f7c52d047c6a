"""What a trainable sees while it runs: report, get_checkpoint and get_context.

The worker installs one :class:`Session` for the trial it runs; these functions find it
through a module global (a worker runs one trial at a time).
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from raytuner.errors import NotInTrialError, ReportError

if TYPE_CHECKING:
    from raytuner._worker.actor import TrialRun


@dataclass(frozen=True)
class TrialContext:
    """Facts about the running trial, from :func:`get_context`.

    Attributes:
        trial_id: The trial's id within its experiment ("00007").
        experiment_name: The experiment's name (its folder under the storage root).
        trial_dir: A directory for the trial's own files. On the driver's node this is
            the trial's folder in the experiment storage; elsewhere a local scratch folder.
        config: The trial's configuration.
        resources: What the trial's worker was given (``{"cpu": 1, "gpu": 0.25}``).
        iteration: Reports made so far, counting those before a pause or a retry.
    """

    trial_id: str
    experiment_name: str
    trial_dir: Path
    config: Mapping[str, Any]
    resources: Mapping[str, float] = field(default_factory=dict)
    iteration: int = 0


_current: TrialRun | None = None


def _install(run: TrialRun | None) -> None:
    global _current
    _current = run


def _require(func: str) -> TrialRun:
    if _current is None:
        msg = (
            f"raytuner.{func}() was called outside a trial. Call it from the function you "
            "pass to raytuner.Tuner (it runs inside a trial worker), not from the driver script."
        )
        raise NotInTrialError(msg)
    return _current


def in_trial() -> bool:
    """Whether the calling code runs inside a raytuner trial."""
    return _current is not None


def report(metrics: Mapping[str, Any], checkpoint: str | os.PathLike[str] | None = None) -> None:
    """Record one result of the running trial, and apply the scheduler's decision.

    Args:
        metrics: Names to numbers (Python or numpy numbers; NaN and inf are recorded but
            never chosen as best). Must hold the Tuner's ``metric``.
        checkpoint: A directory to keep as the trial's checkpoint at this report. It is
            copied before ``report`` returns, so the directory may be reused afterwards.

    Raises:
        TrialStopped: The scheduler stopped or paused the trial; let it propagate.
        NotInTrialError: Called outside a trial.
        ReportError: ``metrics`` is not a mapping of names to numbers, or lacks the metric.
    """
    _require("report").report(metrics, checkpoint, raise_on_stop=True)


def get_checkpoint() -> Path | None:
    """The checkpoint directory to resume from (after a pause or a retry), or None."""
    return _require("get_checkpoint").checkpoint_dir


def get_context() -> TrialContext:
    """The running trial's :class:`TrialContext`."""
    return _require("get_context").context()


def clean_metrics(metrics: Any, trial_id: str) -> dict[str, float | int]:
    """Check that ``metrics`` maps names to numbers; return it with plain Python numbers."""
    if not isinstance(metrics, Mapping):
        msg = (
            f"raytuner.report() expects a mapping of metric names to numbers; trial {trial_id} "
            f"passed {type(metrics).__name__} {metrics!r:.80}. Report a dict such as "
            "{'val_loss': 0.31}."
        )
        raise ReportError(msg)
    clean: dict[str, float | int] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            msg = f"raytuner.report(): metric names must be str; trial {trial_id} reported key {key!r}."
            raise ReportError(msg)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d arrays, tensors
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                msg = (
                    f"raytuner.report(): metric {key!r} of trial {trial_id} is "
                    f"{type(value).__name__} {value!r:.80}, not a number. Report numbers only "
                    "(convert tensors with float(x)); keep other data in the trial directory."
                )
                raise ReportError(msg)
        clean[key] = int(value) if isinstance(value, numbers.Integral) else float(value)
    return clean
