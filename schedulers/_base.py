"""The scheduler contract: early stopping, pausing and promotion from per-report values.

A scheduler sees trial ids, resources and values only. Values arrive already signed so that
lower is better; the resource is a non-decreasing number per trial (epochs, reports, samples).
It never touches actors or trial status: it returns a :class:`Decision` and the controller
applies it.

**Several objectives.** With one objective (the default) a value is a float. An experiment
with k >= 2 objectives (``metric=[...]``) tells the scheduler once, before the first trial,
through :meth:`Scheduler.set_objectives`; its values are then tuples of k floats, each signed
to minimise, NaN or infinite (either sign) the worst in its objective. A scheduler that
cannot rank such values keeps ``supports_multi_objective = False`` and :meth:`Scheduler.set_objectives` refuses k >= 2
with a :class:`raytuner.errors.ConfigError`.
"""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from raytuner.errors import ConfigError, ProtocolError, invalid

Value = Union[float, tuple[float, ...]]
"""A report's value as a scheduler sees it: a float, or k floats with k objectives."""

MULTI_OBJECTIVE = "ASHAScheduler, HyperbandScheduler or FIFOScheduler"
"""The built-in schedulers with ``supports_multi_objective`` (a test keeps this true)."""


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


@dataclass(frozen=True)
class Exploit:
    """A trial to restart from a donor's latest checkpoint with a new config (PBT's exploit
    and explore), handed to the controller by :meth:`Scheduler.exploits`.

    Attributes:
        trial_id: The trial that restarts. The scheduler has PAUSEd it (or it was paused
            already); the controller relaunches it when :meth:`Scheduler.choose_trial_to_resume`
            returns it, from the donor's checkpoint instead of its own.
        donor: The trial whose latest committed checkpoint it restarts from. The trial
            itself to change the config and keep the model (a replayed schedule).
        config: The config it runs with from then on.
    """

    trial_id: str
    donor: str
    config: dict[str, Any]


class Scheduler(abc.ABC):
    """Base class of trial schedulers.

    The controller calls :meth:`set_objectives` once before anything else (with the
    experiment's metrics), :meth:`on_trial_add` when a trial starts for the first time,
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
    #: Whether the scheduler ranks values of several objectives (tuples); False refuses
    #: them in :meth:`set_objectives`, the safe default for a scheduler of one's own.
    supports_multi_objective: bool = False
    #: Why a single-objective scheduler is one, for the error (e.g. "it compares means").
    single_objective_reason: str = ""
    #: k, the number of objectives; values are tuples of k floats when k >= 2.
    num_objectives: int = 1
    #: Whether the scheduler changes trials' configs while they run (PBT). The Tuner then
    #: draws the first configs at random and refuses a searcher that learns from configs.
    changes_configs: bool = False
    #: Whether every trial must have a checkpoint when it reaches a decision point (PBT
    #: clones them); the controller ends the experiment with a ConfigError otherwise.
    requires_checkpoints: bool = False

    def set_objectives(self, objectives: int | Sequence[str]) -> None:
        """Tell the scheduler the experiment's objectives; called once, before the first trial.

        Args:
            objectives: The metric names, in the order of each value's entries (only their
                number matters to the scheduler; the names go into error messages), or
                just their number k.

        Raises:
            ConfigError: For k >= 2 if the scheduler is single-objective, naming it, the
                objectives and the schedulers that take several; for a malformed argument;
                or if a restored state was saved with another number of objectives.
        """
        owner = type(self).__name__
        k, described = count_objectives(owner, objectives)
        if k >= 2 and not self.supports_multi_objective:
            why = f" ({self.single_objective_reason})" if self.single_objective_reason else ""
            msg = f"{owner} is single-objective{why}; with {described} use {MULTI_OBJECTIVE}."
            raise ConfigError(msg)
        self._fix_objectives(k, "the experiment has")

    def _fix_objectives(self, k: int, source: str) -> None:
        """Set k, once: a second, different k (the Tuner's and a saved state's) is refused."""
        fixed = getattr(self, "_objectives_fixed", None)
        if fixed is not None and k != self.num_objectives:
            msg = (
                f"{type(self).__name__}: {fixed} {self.num_objectives} objective(s), but {source} {k}. "
                "Resume an experiment with the metrics it started with."
            )
            raise ConfigError(msg)
        self.num_objectives = k
        self._objectives_fixed = source

    def _restore_objectives(self, state: dict[str, Any]) -> None:
        """Take k from a state that :meth:`state` wrote (1 if it predates several objectives)."""
        self._fix_objectives(int(state.get("objectives", 1)), "the saved state has")

    def on_trial_add(self, trial_id: str) -> None:
        """A new trial is about to start."""

    def on_trial_config(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """The config a new trial starts with; called after :meth:`on_trial_add`. Only
        schedulers that change configs (PBT) need it."""

    def on_trial_restore(self, trial_id: str, config: Mapping[str, Any], paused: bool,
                         resource: float | None = None, value: Value | None = None) -> None:
        """A driver resumes the experiment: ``trial_id`` will run again with ``config``,
        either relaunched at once or (``paused``) when :meth:`choose_trial_to_resume`
        returns it. Called after :meth:`restore` for every trial not finished, as the
        trials' folders say, which may be newer than the saved state. ``resource``: the
        last resource the trial was fed before the resume (a pending clone's: its donor's),
        its next report's lower bound; None if it reported nothing. ``value``: the value
        it reported there (signed to minimize), None if none; a scheduler whose saved state
        predates that report ranks the trial by it. Either is passed only to a scheduler
        whose method takes it (one written before them keeps working).

        The trial may restart from a checkpoint older than its last report, but its
        resources still increase as :meth:`on_result` sees them: the controller feeds only
        resources above the last one it fed for the trial and drops the reports it repeats,
        so a scheduler may refuse one at or below (:class:`raytuner.errors.ResourceError`).
        The exception is an exploit's clone (:meth:`exploits`), which goes on from its
        donor's resource: a scheduler that makes exploits (PBT) accepts a restored trial's
        next report below its last."""

    def check_experiment(self, space: Mapping[str, Any] | None, searcher: Any, num_trials: int) -> None:
        """Refuse, before anything runs, a space, searcher or number of trials this
        scheduler cannot work with (:class:`raytuner.errors.ConfigError`); called by the
        Tuner once the searcher is set up."""

    def exploits(self) -> list[Exploit]:
        """Trials to restart from a donor's checkpoint with a new config (PBT).

        Drained on read, like :meth:`trials_to_stop`, and called after every other call
        into the scheduler. Each named trial is PAUSED as far as the scheduler knows.
        """
        return []

    @abc.abstractmethod
    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        """Decide after one report of a running trial.

        ``value`` is a float, or a tuple of k floats after ``set_objectives`` with k >= 2.
        ``resource`` increases strictly from one report of a trial to the next: the
        controller feeds only resources above the last one it fed for the trial (a trial
        restarted from an older checkpoint repeats reports, and those are dropped), except
        that an exploit's clone goes on from its donor's resource. The built-in schedulers
        raise :class:`raytuner.errors.ResourceError` on a resource that does not increase,
        but accept one that starts over on the first report after the trial was cloned or
        resumed through :meth:`choose_trial_to_resume`. ``value`` is signed so that
        lower is better; a value that is not finite (NaN, +inf or -inf: a diverged trial)
        counts as the worst possible value. A trial id never passed to
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

    def on_search_reopened(self) -> None:
        """New trials will be added after all: the trial budget was raised (a control
        command, or a resume with a larger ``num_trials``) after :meth:`on_search_finished`.

        Schedulers that stop paused trials once no new trial can come (nothing could resume
        them) must go back to pausing them: the new trials may yet promote them. What the
        end settled stays settled: trials already stopped stay stopped, and a group closed
        by :meth:`on_search_finished` stays closed (Hyperband's partly filled bracket: its
        round may have been judged; the new trials fill new brackets).
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

    def __repr__(self) -> str:
        # The call that rebuilds the scheduler; the experiment's meta and `raytuner show` print it.
        args = self._config()
        if args is None:
            return super().__repr__()
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in args.items())})"

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


def count_objectives(owner: str, objectives: Any) -> tuple[int, str]:
    """(k, how the objectives read in a message) of an ``objectives`` argument: an int >= 1
    or a non-empty sequence of distinct metric names."""
    if isinstance(objectives, int) and not isinstance(objectives, bool) and objectives >= 1:
        return objectives, f"{objectives} objectives"
    names = list(objectives) if isinstance(objectives, Sequence) and not isinstance(objectives, str) else None
    if names and all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
        return len(names), f"metric={names!r}"
    raise invalid(owner, "objectives", objectives, "an int >= 1 or a list of distinct metric names",
                  "Pass the Tuner's metrics, e.g. ['val_loss', 'params'].")


def check_value(owner: str, trial_id: str, value: Any, k: int) -> tuple[float, ...]:
    """A report's value with k >= 2 objectives as a tuple of k floats, a value that is not
    finite (NaN, +inf or -inf: a diverged objective) -> +inf (the worst in its objective)."""
    if not isinstance(value, (tuple, list)) or len(value) != k:
        msg = (f"{owner}: trial {trial_id!r} reported value {value!r}, but the experiment has {k} "
               "objectives: the controller must pass a tuple of that many floats.")
        raise ProtocolError(msg)
    return tuple(float(v) if math.isfinite(v) else math.inf for v in value)
