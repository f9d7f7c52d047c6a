"""One trial: :class:`Trial`, the lifecycle's record of it, and :class:`TrialResult`, the
frozen view a user gets (in :class:`raytuner.Results` and the callbacks)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TrialStatus(str, enum.Enum):
    """Where a trial stands. Only the lifecycle changes it (``Lifecycle._set_status``, along
    :data:`raytuner._driver.trial_state.TRANSITIONS`)."""

    PENDING = "PENDING"
    """Created, waiting for a worker (new, or waiting for a retry)."""
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    """Checkpointed and off its worker; the scheduler may resume it."""
    COMPLETED = "COMPLETED"
    """The trainable returned, or the Tuner's ``stop=`` ended it."""
    STOPPED = "STOPPED"
    """Ended early by the scheduler (or by the experiment's end or time budget)."""
    FAILED = "FAILED"

    def is_finished(self) -> bool:
        return self in (TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.FAILED)


@dataclass
class Trial:
    """Mutable state of one trial, owned by the lifecycle (:mod:`raytuner._driver.lifecycle`)
    and persisted as trial.json."""

    trial_id: str
    config: dict[str, Any]
    status: TrialStatus = TrialStatus.PENDING
    iteration: int = 0
    resource: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    last_value: float | None = None  # signed to minimize
    best_value: float | None = None  # signed to minimize, finite values only
    best_iteration: int | None = None
    time_total_s: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    checkpoint: str | None = None  # folder name under the trial's directory
    checkpoint_iteration: int = 0
    checkpoint_time_s: float = 0.0
    num_failures: int = 0
    error: str | None = None
    note: str | None = None  # why the trial ended the way it did, when not obvious

    def observe(self, iteration: int, resource: float, metrics: dict[str, Any], value: float | None, time_total_s: float) -> None:
        self.iteration = iteration
        self.resource = resource
        self.metrics = metrics
        self.time_total_s = time_total_s
        self.last_value = value
        if value is not None and math.isfinite(value) and (self.best_value is None or value < self.best_value):
            self.best_value = value
            self.best_iteration = iteration

    def to_record(self) -> dict[str, Any]:
        record = {
            "trial_id": self.trial_id,
            "status": self.status.value,
            "iteration": self.iteration,
            "resource": self.resource,
            "metrics": self.metrics,
            "last_value": self.last_value,
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
            "time_total_s": self.time_total_s,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "checkpoint": self.checkpoint,
            "checkpoint_iteration": self.checkpoint_iteration,
            "checkpoint_time_s": self.checkpoint_time_s,
            "num_failures": self.num_failures,
            "note": self.note,
        }
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], config: dict[str, Any], error: str | None = None) -> Trial:
        trial = cls(record["trial_id"], config)
        for key, value in record.items():
            if key == "status":
                trial.status = TrialStatus(value)
            elif key != "trial_id" and hasattr(trial, key):
                setattr(trial, key, value)
        trial.error = error
        return trial


@dataclass(frozen=True)
class TrialResult:
    """One trial as the user sees it.

    Attributes:
        trial_id: The trial's id ("00007").
        config: Its configuration.
        status: How it stands or ended.
        metrics: Its last report.
        checkpoint: Its latest stored checkpoint directory, or None.
        error: Traceback(s) of its failures, or None.
        iteration: Reports made.
        time_total_s: Training time, summed over pauses and retries.
        path: Its folder in the experiment storage.
    """

    trial_id: str
    config: dict[str, Any]
    status: TrialStatus
    metrics: dict[str, Any]
    checkpoint: Path | None
    error: str | None
    iteration: int
    time_total_s: float
    path: Path
    last_value: float | None = None  # signed to minimize
    best_value: float | None = None  # signed to minimize
    resource: float | None = None  # reached at the last report

    @classmethod
    def from_trial(cls, trial: Trial, path: Path) -> TrialResult:
        return cls(
            trial.trial_id,
            trial.config,
            trial.status,
            dict(trial.metrics),
            path / trial.checkpoint if trial.checkpoint else None,
            trial.error,
            trial.iteration,
            trial.time_total_s,
            path,
            trial.last_value,
            trial.best_value,
            trial.resource,
        )
