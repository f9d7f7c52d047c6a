"""What crosses the actor boundary between the driver and a trial worker.

The driver keeps one call outstanding per busy worker (docs/architecture.md, "The report path"):
``start(TrialSpec)``, then ``next_event(signal, decide_at)`` or ``finish(signal)``. Each call
returns an :class:`Event`: the reports made since the last one and, once the trial is over,
its :class:`TrialExit`. Decisions sent to a worker and the ways a trial ends are one enum,
:class:`Signal`, so neither side compares strings.

Pure dataclasses: the driver's lifecycle imports this module without Ray or a worker. On
the wire they travel as tuples of plain values (:func:`spec_to_wire`, :meth:`Event.to_wire`),
which Ray packs with msgpack instead of pickling object by object (0.1-0.2 ms less per
round trip here; benchmarks/RESULTS.md, "The worker's data path"). The part of a
:class:`TrialSpec` that is the same for every trial of a run goes to each worker once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # records of the storage seam, imported where they are made and used
    from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation


class Signal(str, enum.Enum):
    """A decision sent to a trial, or how a trial ended.

    Sent to a worker: CONTINUE, STOP or PAUSE (a scheduler's COMPLETE travels as STOP: for
    the training loop both mean "end now"; the driver remembers which it was). Returned in
    a :class:`TrialExit`: STOP or PAUSE (the decision was applied), COMPLETED (the
    trainable returned, or the Tuner's ``stop=`` was reached) or ERROR (it raised).
    """

    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"
    COMPLETED = "completed"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run (or resume) one trial."""

    trial_id: str
    experiment_name: str
    config: dict[str, Any]
    trainable: list[Any]  # [ObjectRef]: wrapped in a list so Ray does not resolve it per call
    metric: str | list[str] | None  # a list with several objectives
    resource_attr: str | None
    stop: Any  # raytuner._driver.stop.StopCriteria
    decide_at: float
    storage_dir: str  # the trial's folder, as the driver names it (its log's key)
    storage: ExperimentLocation  # where the worker puts checkpoints and reads them back
    resources: dict[str, float] = field(default_factory=dict)
    start_iteration: int = 0
    start_time_s: float = 0.0
    restore: CheckpointRef | None = None  # the stored checkpoint to restart from
    checkpoints_to_keep: int | None = None  # the Tuner's; set: the outbox throttles stores, drops overtaken ones
    checkpoint_interval_s: float | None = None  # the Tuner's: the throttle's interval; None: adaptive


#: The fields of a :class:`TrialSpec` that are the same for every trial of a run: sent to a
#: worker with its first trial of the run only.
_SHARED = ("experiment_name", "trainable", "metric", "resource_attr", "stop", "storage", "resources",
           "checkpoints_to_keep", "checkpoint_interval_s")
_OWN = ("trial_id", "config", "decide_at", "storage_dir", "start_iteration", "start_time_s", "restore")


def spec_to_wire(spec: TrialSpec, *, shared: bool) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """The spec as plain values; ``shared=False`` leaves out the run's part, which the
    worker kept from its first trial of this run."""
    own = tuple(getattr(spec, name) for name in _OWN)
    return own, tuple(getattr(spec, name) for name in _SHARED) if shared else None


def spec_from_wire(own: tuple[Any, ...], shared: tuple[Any, ...]) -> TrialSpec:
    return TrialSpec(**dict(zip(_OWN, own)), **dict(zip(_SHARED, shared)))


@dataclass(frozen=True)
class Report:
    """One ``raytuner.report`` call, as the worker recorded it. ``checkpoint``: the folder's
    name in the trial's storage, where the worker put it before sending the report."""

    iteration: int
    resource: float
    metrics: dict[str, Any]
    time_total_s: float
    timestamp: float
    checkpoint: str | None = None
    awaits_decision: bool = False  # the training loop is blocked until the decision arrives


@dataclass(frozen=True)
class TrialExit:
    """How the trial's thread ended on the worker.

    Attributes:
        signal: STOP or PAUSE (a decision was applied), COMPLETED or ERROR.
        error: The formatted traceback, for ERROR.
        error_type: The exception's class name, for ERROR.
        message: ``str(exception)``, for ERROR.
        fatal: The error is a bug in the experiment itself (a report the Tuner cannot
            use), the same in every trial: the experiment ends instead of retrying.
    """

    signal: Signal
    error: str | None = None
    error_type: str | None = None
    message: str | None = None
    fatal: bool = False


@dataclass(frozen=True)
class Event:
    """A worker's answer: reports since the last call, the trial's end if it ended, and
    what the trial printed meanwhile (``log``: it travels with the answer, so a trial on
    any node has its log in the driver's storage), and raytuner's warnings among it
    (``notes``: (kind, text), for the terminal; see :mod:`raytuner._worker.notes`)."""

    reports: list[Report]
    exit: TrialExit | None = None
    log: str = ""
    notes: list[tuple[str, str]] = field(default_factory=list)

    def to_wire(self) -> tuple[Any, ...]:
        reports = [(r.iteration, r.resource, r.metrics, r.time_total_s, r.timestamp, r.checkpoint, r.awaits_decision)
                   for r in self.reports]
        end = self.exit
        exit = None if end is None else (end.signal.value, end.error, end.error_type, end.message, end.fatal)
        return reports, exit, self.log, [tuple(note) for note in self.notes]

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> Event:
        reports, exit, log, notes = wire
        return cls([Report(*fields) for fields in reports],
                   None if exit is None else TrialExit(Signal(exit[0]), *exit[1:]), log,
                   [(str(kind), str(text)) for kind, text in notes])
