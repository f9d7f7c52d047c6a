"""The lifecycle's vocabulary: the events the Ray driver feeds it and the commands it
answers with (see :mod:`raytuner._driver.lifecycle`). Frozen records, and the unions that
name them all (:data:`Event`, :data:`Command`); workers are opaque handles here, so tests
can drive the lifecycle with any hashable stand-in.

(:class:`raytuner._worker.protocol.Event`, a worker's answer, is another thing: it arrives
here inside :class:`Reported`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

from raytuner._worker import protocol
from raytuner._worker.protocol import Signal

Worker = Hashable


# -- events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fill:
    """Slots may be free: the pool's started idle workers, and how many are starting."""

    idle: tuple[Worker, ...] = ()
    starting: int = 0
    pool_size: int = 0


@dataclass(frozen=True)
class Reported:
    """A worker answered for ``trial_id``: its reports since the last call, maybe its exit."""

    trial_id: str
    answer: protocol.Event


@dataclass(frozen=True)
class CallFailed:
    """A call to the worker running ``trial_id`` raised instead of answering.

    ``worker_lost``: the actor, its process or its node died (else the worker lives on and
    only the call failed).
    """

    trial_id: str
    error: str
    worker_lost: bool


@dataclass(frozen=True)
class Deadline:
    """The experiment's time budget ran out: running and paused trials end as STOPPED."""


@dataclass(frozen=True)
class Interrupt:
    """Ctrl-C: running trials go back to PENDING, to restart from checkpoints on resume."""


@dataclass(frozen=True)
class Drained:
    """Nothing runs and nothing more can start: paused trials nobody resumes are closed."""


@dataclass(frozen=True)
class StopTrial:
    """A control command: end one trial now, as STOPPED."""

    trial_id: str
    origin: str = "user"


@dataclass(frozen=True)
class SetLimits:
    """A control command: change how many trials run at once, or in all, or the time
    budget (seconds of the experiment's run time, over all its runs: :mod:`raytuner._driver.run_clock`;
    the driver owns the deadline)."""

    max_concurrent: int | None = None
    num_trials: int | None = None
    origin: str = "user"
    time_budget_s: float | None = None


@dataclass(frozen=True)
class RetryTrial:
    """A control command: run a FAILED trial again, from its latest checkpoint."""

    trial_id: str
    origin: str = "user"


@dataclass(frozen=True)
class EndExperiment:
    """A control command: stop every trial and end the experiment cleanly."""

    origin: str = "user"


# -- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """Start (or resume, from the stored ``checkpoint`` of the trial) a trial on ``worker``."""

    worker: Worker
    trial_id: str
    config: dict[str, Any]
    checkpoint: str | None
    start_iteration: int
    start_time_s: float
    decide_at: float


@dataclass(frozen=True)
class Deliver:
    """Answer the worker of ``trial_id``: CONTINUE or None (no decision due) continues the
    trial up to ``decide_at``; STOP or PAUSE ends it, and the answer is its exit."""

    worker: Worker
    trial_id: str
    signal: Signal | None
    decide_at: float


@dataclass(frozen=True)
class StopSoon:
    """Tell the worker of ``trial_id`` at once that the trial's next report is its last (a
    StopTrial), beside the call that waits for the trial's news. The STOP that answers that
    call would reach a trial that streams its reports only after its next one: one report
    late, which with long epochs is a long wait."""

    worker: Worker
    trial_id: str


@dataclass(frozen=True)
class Spawn:
    count: int


@dataclass(frozen=True)
class Release:
    """The worker is free for another trial."""

    worker: Worker


@dataclass(frozen=True)
class Discard:
    """The worker is dead or must go (it runs something nobody waits for)."""

    worker: Worker


@dataclass(frozen=True)
class WriteConfig:
    trial_id: str
    config: dict[str, Any]


@dataclass(frozen=True)
class WriteTrial:
    trial_id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class AppendResults:
    trial_id: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class DeleteCheckpoints:
    """Remove checkpoint folders of a trial: beyond ``checkpoints_to_keep`` once newer ones
    are committed, or taken by an attempt that was lost."""

    trial_id: str
    folders: tuple[str, ...]


@dataclass(frozen=True)
class CopyCheckpoint:
    """Copy checkpoint ``source`` of ``source_trial`` to ``folder`` under ``trial_id``'s
    folder (a PBT exploit: the clone restarts from its own copy of its donor's checkpoint)."""

    source_trial: str
    source: str
    trial_id: str
    folder: str


@dataclass(frozen=True)
class AppendLog:
    """What the trial printed since its worker's last answer."""

    trial_id: str
    text: str


@dataclass(frozen=True)
class ShowWarnings:
    """raytuner's warnings inside the trial since its worker's last answer, (kind, text),
    for the terminal (they are in its log too)."""

    trial_id: str
    notes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AppendError:
    trial_id: str
    text: str


@dataclass(frozen=True)
class Notify:
    """Call ``hook`` on the callbacks: on_trial_start(trial_id, config),
    on_trial_result(trial_id, row), on_trial_end(trial) with the trial as it is now."""

    hook: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class ControlApplied:
    """A control command was applied (``accepted``) or refused, and why: for the history."""

    command: Control
    accepted: bool
    message: str
    ended: tuple[str, ...] = ()  # the trials an EndExperiment stopped: what a resume replays


#: What the Ray driver feeds :meth:`raytuner._driver.lifecycle.Lifecycle.handle`.
Event = Fill | Reported | CallFailed | Deadline | Interrupt | Drained | StopTrial | SetLimits | RetryTrial | EndExperiment
#: The control commands among the events (from ``raytuner control`` or the dashboard).
Control = StopTrial | SetLimits | RetryTrial | EndExperiment
#: What the lifecycle answers with, for the driver to carry out in order.
Command = (Launch | Deliver | StopSoon | Spawn | Release | Discard | WriteConfig | WriteTrial | AppendResults
           | DeleteCheckpoints | CopyCheckpoint | AppendLog | AppendError | Notify | ControlApplied)
