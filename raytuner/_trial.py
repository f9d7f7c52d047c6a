"""One trial: :class:`Trial`, the lifecycle's record of it, and :class:`TrialResult`, the
frozen view a user gets (in :class:`raytuner.Results` and the callbacks)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytuner._formats import checkpoint_iteration
from raytuner._objectives import as_value


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
    DAMAGED = "DAMAGED"
    """Shown by readers only (``rt.load``, the CLI, the dashboard), never set by the
    lifecycle: the trial's trial.json or config.json is not valid JSON or has a field of
    the wrong type, or its results.jsonl is damaged before its last line. The trial's
    ``damaged`` says which file and what fault."""

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
    #: Signed to minimize: a float, or a tuple of k floats with k objectives.
    last_value: float | tuple[float, ...] | None = None
    #: Signed to minimize, finite values only; None with several objectives, which have no
    #: one best report (their trials are ranked by Pareto order: ``raytuner._best``).
    best_value: float | None = None
    best_iteration: int | None = None
    time_total_s: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    checkpoint: str | None = None  # folder under the trial's directory (a PBT clone's copy: clone_<n>/...)
    checkpoint_iteration: int = 0
    checkpoint_time_s: float = 0.0
    num_failures: int = 0
    error: str | None = None
    note: str | None = None  # why the trial ended the way it did, when not obvious
    attempt: int = 0  # launches so far: each opens an attempt in results.jsonl
    #: The highest resource already fed to searcher and scheduler. It never rewinds: a
    #: restarted trial's reports count for them only past it (one iteration, one count).
    fed_resource: float | None = None
    #: PBT exploits carried out: each gave the trial a donor's model and a new config, so a
    #: trial with any records its config (the one in effect) in trial.json too.
    exploits: int = 0
    # Not in trial.json (rebuilt from results.jsonl on resume): the kept trajectory as
    # (iteration, resource, signed value), the checkpoints its rows commit, oldest first, with
    # the time, metrics and attempt of each one's row, which a restart from it rewinds to, and
    # the metrics and attempt of the newest one's row.
    trajectory: list[tuple[int, float | None, float | tuple[float, ...] | None]] = field(default_factory=list, repr=False)
    checkpoints: list[str] = field(default_factory=list, repr=False)
    checkpoint_metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The attempt whose line in results.jsonl committed the newest checkpoint: the row that
    #: names it, or for a PBT clone's copy the exploit's attempt marker. A PBT clone of this
    #: trial records it as ``cloned_from.attempt``; it is older than ``attempt`` while a
    #: restart from the checkpoint has reported nothing yet.
    checkpoint_attempt: int = field(default=0, repr=False)
    checkpoint_rows: dict[str, tuple[float, dict[str, Any], int]] = field(default_factory=dict, repr=False)

    def commit(self, name: str, iteration: int, time_total_s: float, metrics: dict[str, Any], attempt: int) -> None:
        """Checkpoint folder ``name``, made at report ``iteration`` and committed by a line
        of attempt ``attempt``, is now the newest."""
        self.checkpoint, self.checkpoint_iteration = name, iteration
        self.checkpoint_time_s, self.checkpoint_metrics, self.checkpoint_attempt = time_total_s, metrics, attempt
        self.checkpoints = [other for other in self.checkpoints if other != name] + [name]
        self.checkpoint_rows[name] = (time_total_s, metrics, attempt)

    def forget(self, names: list[str]) -> None:
        """Checkpoints ``names`` are no longer the trial's (pruned, lost, or gone); the newest
        left, if any, is the one it restarts from."""
        self.checkpoints = [name for name in self.checkpoints if name not in names]
        for name in names:
            self.checkpoint_rows.pop(name, None)
        if self.checkpoint is None or self.checkpoint not in names:
            return
        if not self.checkpoints:
            self.checkpoint, self.checkpoint_iteration = None, 0
            self.checkpoint_time_s, self.checkpoint_metrics, self.checkpoint_attempt = 0.0, {}, 0
            return
        newest = self.checkpoints[-1]
        self.checkpoint, self.checkpoint_iteration = newest, checkpoint_iteration(newest) or 0
        self.checkpoint_time_s, self.checkpoint_metrics, self.checkpoint_attempt = self.checkpoint_rows.get(
            newest, (0.0, {}, 0))

    def observe(self, iteration: int, resource: float, metrics: dict[str, Any], value: float | None, time_total_s: float) -> None:
        self.iteration = iteration
        self.resource = resource
        self.metrics = metrics
        self.time_total_s = time_total_s
        self.last_value = value
        self.trajectory.append((iteration, resource, value))
        if _rankable(value) and (self.best_value is None or value < self.best_value):
            self.best_value = value
            self.best_iteration = iteration

    def rewind(self, iteration: int, time_total_s: float) -> list[str]:
        """Back to the kept trajectory at ``iteration``: the trial restarts from its
        checkpoint made there (or from scratch, at 0). Returns the checkpoints it no longer
        has (those taken past ``iteration``, by the attempt that was lost)."""
        if iteration >= self.iteration:
            return []
        self.trajectory = [point for point in self.trajectory if point[0] <= iteration]
        self.iteration = iteration
        self.time_total_s = time_total_s
        self.resource, self.last_value = self.trajectory[-1][1:] if self.trajectory else (None, None)
        self.metrics = dict(self.checkpoint_metrics) if iteration and iteration == self.checkpoint_iteration else {}
        self.best_value = self.best_iteration = None
        for point_iteration, _, value in self.trajectory:
            if _rankable(value) and (self.best_value is None or value < self.best_value):
                self.best_value, self.best_iteration = value, point_iteration
        lost = [name for name in self.checkpoints if (checkpoint_iteration(name) or 0) > iteration]
        self.forget(lost)
        return lost

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
            "attempt": self.attempt,
            "fed_resource": self.fed_resource,
            "exploits": self.exploits,
        }
        if self.exploits:
            record["config"] = self.config  # config.json keeps the first one
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], config: dict[str, Any], error: str | None = None) -> Trial:
        trial = cls(record["trial_id"], config)
        for key, value in record.items():
            if key == "status":
                trial.status = TrialStatus(value)
            elif key == "last_value":
                trial.last_value = as_value(value)  # a list in JSON with several objectives
            elif key not in ("trial_id", "trajectory", "checkpoints", "checkpoint_metrics") and hasattr(trial, key):
                setattr(trial, key, value)
        trial.error = error
        return trial


def _rankable(value: float | tuple[float, ...] | None) -> bool:
    """Whether a value can be a trial's best: one finite float (several objectives have no
    one best value)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class TrialResult:
    """One trial as the user sees it.

    Attributes:
        trial_id: The trial's id ("00007").
        config: Its configuration.
        status: How it stands or ended (DAMAGED: see ``damaged``).
        metrics: Its last report.
        checkpoint: Its latest stored checkpoint folder, or None (none, or it was deleted).
        error: Traceback(s) of its failures, or None.
        iteration: Reports made.
        time_total_s: Training time, summed over pauses and retries.
        path: Its folder in the experiment storage. For an experiment in cloud storage,
            ``path`` and ``checkpoint`` are URIs (``str``: ``s3://bucket/exp/trials/00007``).
        damaged: For a DAMAGED trial, which file is damaged and how; else None.
    """

    trial_id: str
    config: dict[str, Any]
    status: TrialStatus
    metrics: dict[str, Any]
    checkpoint: Path | str | None
    error: str | None
    iteration: int
    time_total_s: float
    path: Path | str
    last_value: float | tuple[float, ...] | None = None  # signed to minimize (a tuple with several objectives)
    best_value: float | None = None  # signed to minimize; None with several objectives
    resource: float | None = None  # reached at the last report
    damaged: str | None = None

    @classmethod
    def from_trial(cls, trial: Trial, path: Path | Any, local: Path | None = None) -> TrialResult:
        """``path``: the trial's folder as shown (a URI for cloud storage); ``local``: where
        its files are on this machine, to check that its checkpoint is still there (a folder
        deleted by hand is no checkpoint); None: not checked (it may not be written yet)."""
        checkpoint = path / trial.checkpoint if trial.checkpoint else None
        if checkpoint is not None and local is not None and not (local / trial.checkpoint).is_dir():
            checkpoint = None
        return cls(
            trial.trial_id,
            trial.config,
            trial.status,
            dict(trial.metrics),
            checkpoint,
            trial.error,
            trial.iteration,
            trial.time_total_s,
            path,
            trial.last_value,
            trial.best_value,
            trial.resource,
        )
