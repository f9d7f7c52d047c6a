"""What the lifecycle holds of a trial besides its record: the status changes it allows,
and, for a trial on a worker, where that worker stands with the driver.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Callable

from raytuner._driver.events import Worker
from raytuner._trial import Trial, TrialStatus
from raytuner.schedulers import Decision

_S = TrialStatus
logger = logging.getLogger("raytuner")

#: The statuses a trial may move to from each (:meth:`Lifecycle._set_status` checks every
#: change against it). A trial enters the lifecycle PENDING, or as storage recorded it.
TRANSITIONS: dict[TrialStatus, frozenset[TrialStatus]] = {
    # A worker takes it, or a StopTrial ends it while it waits; or, on resume, the end its
    # last driver decided at its last report is carried out (Lifecycle.reconcile).
    _S.PENDING: frozenset({_S.RUNNING, _S.STOPPED, _S.PAUSED, _S.COMPLETED}),
    # Its end (or a retry, or a Ctrl-C, back to PENDING).
    _S.RUNNING: frozenset({_S.PENDING, _S.PAUSED, _S.COMPLETED, _S.STOPPED, _S.FAILED}),
    # Resumed on a free worker, queued once its promotion's pause is in, or closed.
    _S.PAUSED: frozenset({_S.PENDING, _S.RUNNING, _S.STOPPED}),
    # A RetryTrial command runs it again.
    _S.FAILED: frozenset({_S.PENDING}),
    _S.COMPLETED: frozenset(),
    _S.STOPPED: frozenset(),
    # Readers' verdict on damaged files: never a trial in the lifecycle (resume refuses them).
    _S.DAMAGED: frozenset(),
}


class RunPhase(enum.Enum):
    """Where a trial on a worker stands with the driver: what it was last told, and whether
    its worker has moved on. Every phase but RUNNING has the run's ``decision``."""

    RUNNING = "running"
    """No end decided: its reports go to the searcher and the scheduler."""
    STOP_QUEUED = "stop queued"
    """A StopTrial came while a call was out: the STOP answers that call's return, instead
    of racing it as a second call."""
    ENDING = "ending"
    """STOP, COMPLETE or PAUSE sent; the worker keeps the slot until the trial's end is in."""
    HANDED_ON = "handed on"
    """STOP or COMPLETE sent, and the worker already has its next trial, queued behind this
    end: the slot is free."""
    PROMOTED = "promoted"
    """PAUSE sent, and the scheduler chose to resume the trial before the pause came back:
    it goes out again once the pause is in."""


@dataclass
class Run:
    """A trial on a worker, and what the driver last told that worker."""

    worker: Worker
    phase: RunPhase = RunPhase.RUNNING
    decision: Decision | None = None  # the end decided (STOP, COMPLETE or PAUSE), once it is
    cloned_at: int | None = None  # a PBT clone's run: the donor's report it restarted from


def drop_gone_checkpoints(trial: Trial, stored: Callable[[str, str], bool] | None, location: str) -> bool:
    """Before ``trial``'s relaunch (a retry, a paused trial resumed, a promotion, a resume):
    a checkpoint folder deleted by hand is no checkpoint, live as on resume. The trial
    forgets its checkpoints no longer in storage (``stored(trial_id, folder)``), newest
    first, so that it restarts from the newest one still there, else from scratch; the
    launch's rewind then supersedes its reports past that, and searcher and scheduler hear
    only of progress past what they were fed, as for any restart. One warning names the
    trial and the folders (under ``location``, the experiment's). Whether any was gone."""
    gone = []
    while stored is not None and trial.checkpoint is not None and not stored(trial.trial_id, trial.checkpoint):
        gone.append(trial.checkpoint)
        trial.forget([trial.checkpoint])
    if gone:
        what = f"checkpoint {gone[0]} is" if len(gone) == 1 else f"checkpoints {', '.join(gone)} are"
        logger.warning(
            "Trial %s: its %s gone from %s/trials/%s (deleted by hand?). It restarts from %s; its reports after "
            "that are kept in results.jsonl for audit but leave its history.", trial.trial_id, what, location,
            trial.trial_id, trial.checkpoint or "scratch")
    return bool(gone)


def checkpoint_gone(trial: Trial, stored: Callable[[str, str], bool] | None) -> bool:
    """After ``trial``'s worker found the checkpoint it was launched from gone (deleted by
    hand after the launch checked it, :func:`drop_gone_checkpoints`): whether the storage
    says so too. Then the trial waits for a worker again with no failure counted, and its
    relaunch starts from its newest checkpoint still there; else (the storage still holds
    it) the worker's error is a failure as any other."""
    return stored is not None and trial.checkpoint is not None and not stored(trial.trial_id, trial.checkpoint)


@dataclass
class LifecycleSettings:
    """What the Tuner fixed for the trial lifecycle (:class:`raytuner._driver.lifecycle.Lifecycle`)."""

    metric: str | list[str] | None  # a list with several objectives (raytuner._objectives)
    mode: str | list[str]
    num_trials: int
    max_concurrent: int
    resource_attr: str | None
    max_failures: int
    fail_fast: bool
    checkpoints_to_keep: int | None
    experiment_path: str = ""
    checkpoint_interval_s: float | None = None  # the Tuner's; None: adapted to the stores' cost
