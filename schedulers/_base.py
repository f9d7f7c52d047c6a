"""The scheduler contract: early stopping, pausing and promotion from per-report values.

A scheduler sees trial ids, resources and values only. Values arrive already signed so that
lower is better; the resource is a non-decreasing number per trial (epochs, reports, samples).
It never touches actors or trial status: it returns a :class:`Decision` and the controller
applies it.
"""

from __future__ import annotations

import abc
import enum
import math
from typing import Any


class Decision(enum.Enum):
    """What the controller should do with a trial after one of its reports."""

    CONTINUE = "continue"
    """Keep training."""
    STOP = "stop"
    """End the trial now; it is never resumed. No checkpoint is needed."""
    PAUSE = "pause"
    """Checkpoint and free the slot. Unlike STOP, the trial stays a candidate: the
    scheduler may hand it back through :meth:`Scheduler.choose_trial_to_resume`, and it
    then continues from its checkpoint with its resource counting on."""
    COMPLETE = "complete"
    """The trial reached its full budget: end it now as COMPLETED (not STOPPED: its value
    is a full-fidelity one), and never resume it. The scheduler has closed the trial
    itself, so it is not told :meth:`Scheduler.on_trial_complete` again."""


class Scheduler(abc.ABC):
    """Base class of trial schedulers.

    The controller calls :meth:`on_trial_add` when a trial starts for the first time,
    :meth:`on_result` for every report, and at its end exactly one of
    :meth:`on_trial_complete` (the trainable returned or the Tuner's ``stop=`` ended it),
    :meth:`on_trial_error` (it failed for good) or :meth:`on_trial_remove` (the controller
    ended it for another reason, e.g. the time budget) — unless the end was this
    scheduler's own STOP or COMPLETE, which is *not* reported back.
    When a slot is free it first asks :meth:`choose_trial_to_resume`, and starts a new
    trial only if that returns None.
    """

    #: The resource a trial runs to under this scheduler (``inf`` if unbounded). Searchers
    #: use it to tell low-fidelity values from full-budget ones.
    max_resource: float = math.inf
    #: A key in each report that holds the resource, or None to count reports (1, 2, ...).
    resource_attr: str | None = None
    #: Whether :meth:`on_result` compares values, so the Tuner must be given a ``metric``.
    #: False only for a scheduler that decides on resources alone (FIFO).
    needs_metric: bool = True

    def on_trial_add(self, trial_id: str) -> None:
        """A new trial is about to start."""

    @abc.abstractmethod
    def on_result(self, trial_id: str, resource: float, value: float) -> Decision:
        """Decide after one report of a running trial.

        ``resource`` must increase strictly from one report of a trial to the next
        (schedulers raise :class:`raytuner.errors.ResourceError` otherwise), with one exception: the first report after
        the trial was resumed through :meth:`choose_trial_to_resume` may start over (a trial
        resumed without a checkpoint restarts from scratch). ``value`` is signed so that
        lower is better; NaN counts as the worst possible value. A trial id never passed to
        :meth:`on_trial_add` is added implicitly. A report from a trial the scheduler has
        already ended gets STOP.
        """

    def decision_point(self, trial_id: str, resource: float) -> float:
        """The smallest resource above ``resource`` at which :meth:`on_result` may return
        something other than CONTINUE for this trial.

        Reports below it stream to the controller without the training loop waiting for a
        decision (the hot-path optimisation of the report path). The controller still calls
        :meth:`on_result` for every report. Return ``resource`` itself (or less) to require
        a decision on every report; ``math.inf`` if the scheduler never intervenes.
        """
        return -math.inf

    def on_trial_complete(self, trial_id: str) -> None:
        """The trial ended on its own (or by the Tuner's ``stop=``)."""

    def on_trial_error(self, trial_id: str) -> None:
        """The trial failed for good; forget it as a candidate."""

    def on_trial_remove(self, trial_id: str) -> None:
        """The controller ended the trial for a reason of its own (e.g. time budget)."""

    def on_search_finished(self) -> None:
        """No new trial will be added from now on (trial budget spent or space exhausted).

        Schedulers that wait for a group of trials (a Hyperband bracket) must then close
        their partly filled groups, or the paused trials in them would wait forever.
        """

    def choose_trial_to_resume(self) -> str | None:
        """A PAUSED trial to resume in a free slot, or None to start a new trial.

        The controller resumes the returned trial at once, so each call that returns an id
        commits to that promotion.
        """
        return None

    def trials_to_stop(self) -> list[str]:
        """PAUSED trials that will never be resumed; the controller ends them.

        A scheduler cannot stop a paused trial through :meth:`on_result`, so it hands such
        trials over here (each id once: the list is drained on read). The controller calls
        this after every other call into the scheduler (after applying the decision
        :meth:`on_result` returned) and ends each trial as if :meth:`on_result` had
        returned STOP for it; as for STOP, it does not report the end back through
        :meth:`on_trial_remove` (schedulers ignore it if it does).
        """
        return []

    def describe(self) -> str | None:
        """One short line on the scheduler's state for the live progress view, or None."""
        return None

    def config(self) -> dict[str, Any] | None:
        """This scheduler as data: its class name under ``"type"`` and the constructor
        arguments that rebuild it through :func:`raytuner.schedulers.from_config`
        (JSON-able; ``max_resource`` may be ``inf``).

        None if it cannot describe itself: the default, so a scheduler of your own is
        pickled instead. Built-in schedulers implement :meth:`_config`.
        """
        args = self._config()
        return None if args is None else {"type": type(self).__name__, **args}

    def _config(self) -> dict[str, Any] | None:
        """The constructor arguments, as a dict (see :meth:`config`); None if unknown."""
        return None

    def milestones(self) -> dict[str, Any]:
        """Where this scheduler decides, as plain data for the report and the dashboard.

        Keys: ``kind`` (``"none"``, ``"rungs"``, ``"brackets"`` or ``"grace_period"``),
        ``levels`` (every resource below ``max_resource`` at which a trial may be stopped or
        paused, ascending), ``pauses`` (whether trials PAUSE there rather than being
        stopped), ``max_resource``; and per kind the detail (ASHA: ``brackets``, the rung
        levels of each bracket ``s``; Hyperband: ``brackets``, each ``{"s", "n", "r",
        "rounds": [[n_i, r_i], ...]}``).
        """
        return {"kind": "none", "levels": [], "pauses": False, "max_resource": self.max_resource}

    def state(self) -> dict[str, Any]:
        """Everything needed to continue scheduling later; picklable."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state` returned."""
