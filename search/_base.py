"""The searcher contract: what the controller asks of every search algorithm.

A searcher proposes configurations and learns from how trials end. It sees trial ids and
numbers only: values arrive already signed so that lower is better (the controller applies
the Tuner's ``mode`` once), so a searcher never needs to know the metric's name or direction.

**Several objectives.** With one objective (the default) a value is a float. An experiment
with k >= 2 objectives (``metric=[...]``) passes them to :meth:`Searcher.setup`
(``objectives=``); every value is then a tuple of k floats, each signed to minimise, in
:meth:`Searcher.on_trial_result` and :attr:`Outcome.value` alike. A NaN entry is the worst
in its objective; a value counts as finite (:func:`is_finite`) only if every entry is. A
searcher that cannot learn from such values keeps ``supports_multi_objective = False`` and
:meth:`Searcher.setup` refuses k >= 2 with a :class:`raytuner.errors.ConfigError`.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Mapping, Union

from raytuner.errors import ConfigError, ProtocolError

from ._checks import count_objectives
from ._space import describable, space_to_json

Value = Union[float, tuple[float, ...]]
"""A value as a searcher sees it: a float, or k floats with k objectives."""

MULTI_OBJECTIVE = "TPESearcher, OptunaSearcher, RandomSearcher or GridSearcher"
"""The built-in searchers with ``supports_multi_objective`` (a test keeps this true)."""


def is_finite(value: Value | None) -> bool:
    """Whether a value is there and finite: with several objectives, every entry."""
    if value is None:
        return False
    if isinstance(value, tuple):
        return all(math.isfinite(v) for v in value)
    return math.isfinite(value)


class _Finished:
    """Sentinel type for :data:`FINISHED`."""

    _instance: _Finished | None = None

    def __new__(cls) -> _Finished:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "FINISHED"

    def __reduce__(self) -> str:
        return "FINISHED"


FINISHED = _Finished()
"""Returned by :meth:`Searcher.suggest` once the search space is exhausted."""


class TrialEnd(enum.Enum):
    """How a trial ended, as a searcher learns it."""

    COMPLETED = "completed"
    """The trainable returned, or the Tuner's ``stop=`` criterion ended it."""
    STOPPED = "stopped"
    """A scheduler ended it early: its value is a low-fidelity one."""
    FAILED = "failed"
    """The trainable raised or its worker died, and no retry is left."""


@dataclass(frozen=True)
class Outcome:
    """The end of one trial, handed to :meth:`Searcher.on_trial_complete`.

    Attributes:
        end: How the trial ended.
        value: The last reported value of the metric, signed to minimize (a tuple of k
            floats with k objectives), or None if the trial never reported it.
        resource: The resource (epochs, reports...) the trial had reached when it ended,
            or None if it never reported.
        max_resource: The full budget a trial can reach under the experiment's scheduler
            (``inf`` when the scheduler sets none). ``resource < max_resource`` on a
            STOPPED trial marks ``value`` as a low-fidelity result.
    """

    end: TrialEnd
    value: Value | None = None
    resource: float | None = None
    max_resource: float = float("inf")

    @property
    def full_budget(self) -> bool:
        """Whether the trial ran its whole budget (see :func:`is_full_budget`)."""
        return is_full_budget(self.end, self.resource, self.max_resource)

    @property
    def failed(self) -> bool:
        """Whether the trial counts as FAILED: it failed, or it ran its full budget without
        a finite value, which leaves nothing to learn but that it failed."""
        return self.end is TrialEnd.FAILED or (self.full_budget and not is_finite(self.value))


def is_full_budget(end: TrialEnd | str, resource: float | None, max_resource: float) -> bool:
    """Whether a trial that ended so ran its whole budget: COMPLETED, or STOPPED at
    ``resource >= max_resource`` (the scheduler's stop only coincided with the end of
    training). ``end`` may be a :class:`TrialEnd` or its value, as records keep it."""
    end = end.value if isinstance(end, TrialEnd) else end
    return end == TrialEnd.COMPLETED.value or (
        end == TrialEnd.STOPPED.value and resource is not None and resource >= max_resource
    )


STOPPED_POLICIES = ("penalize", "last", "ignore")
"""What a searcher makes of a trial that a scheduler STOPPED below ``max_resource``, a
low-fidelity value: rank it behind every full-budget result (``"penalize"``), take its last
value as final (``"last"``, as Ray Tune's adapters do), or leave it out (``"ignore"``)."""


class Searcher(abc.ABC):
    """Base class of search algorithms.

    The controller calls, in order: :meth:`setup` once, then :meth:`suggest` whenever a
    slot is free, :meth:`on_trial_result` for each report, and :meth:`on_trial_complete`
    exactly once per suggested trial. :meth:`state` and :meth:`restore` let a resumed
    experiment continue the same search (a resumed one is set up, then restored).
    """

    space: Mapping[str, Any] | None = None
    num_trials: int | None = None
    #: Whether the searcher learns from values, so the Tuner must be given a ``metric``.
    #: False for searchers that never look at results (random, grid).
    needs_metric: bool = True
    #: Whether the searcher takes several objectives (tuple values); False refuses them in
    #: :meth:`setup`, the safe default for a searcher of one's own.
    supports_multi_objective: bool = False
    #: Why a single-objective searcher is one, for the error ("hyperopt's TPE ranks one loss").
    single_objective_reason: str = ""
    #: k, the number of objectives; values are tuples of k floats when k >= 2.
    num_objectives: int = 1

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        """Bind the Tuner's space, trial budget and objectives; called once before
        :meth:`suggest`.

        A searcher built with its own space keeps it; the Tuner rejects a second space
        before calling this. Subclasses that derive a trial count from the space (grid
        search) override :attr:`num_trials` here: the controller stops launching trials
        at ``searcher.num_trials``.

        Args:
            space: The Tuner's space, or None.
            num_trials: The Tuner's trial budget.
            objectives: The metric names, in the order of each value's entries (their
                number is what matters; the names go into error messages), or just their
                number k. The controller passes it only for k >= 2, so that a searcher of
                one's own whose ``setup`` predates it keeps working with one objective.

        Raises:
            ConfigError: If neither the searcher nor the Tuner has a space; for k >= 2 if
                the searcher is single-objective, naming it, the objectives and the
                searchers that take several.
        """
        owner = type(self).__name__
        k, described = count_objectives(owner, objectives)
        if k >= 2 and not self.supports_multi_objective:
            why = f" ({self.single_objective_reason})" if self.single_objective_reason else ""
            raise ConfigError(f"{owner} is single-objective{why}; with {described} use {MULTI_OBJECTIVE}.")
        self.num_objectives = k
        if self.space is None:
            if space is None:
                msg = (
                    f"{type(self).__name__} has no search space: pass `space=` to the Tuner "
                    f"or to {type(self).__name__}(space=...)."
                )
                raise ConfigError(msg)
            self.space = space
        self.num_trials = num_trials

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any] | None | _Finished:
        """Propose the configuration of a new trial.

        Returns:
            A config dict of plain Python values; None for "not now" (for example while
            waiting on results); or :data:`FINISHED` when the space is exhausted.
        """

    def on_trial_result(self, trial_id: str, resource: float, value: Value) -> None:
        """Called for each report of a running trial (value signed to minimize; a tuple of
        k floats with k objectives)."""

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        """Called exactly once when a suggested trial ends, however it ended."""

    def correct_config(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        """After a resume: ``trial_id`` ran with ``config`` before the crash, and keeps it,
        but this searcher, restored from a snapshot older than the trial, has just proposed
        another config for it. Return True once its results will be credited to ``config``;
        False (the default) if the searcher cannot, and keeps its own proposal.
        """
        return False

    def config(self) -> dict[str, Any] | None:
        """This searcher as data: its class name under ``"type"``, its space as
        :func:`space_to_json` describes it (None if it has none yet) and the constructor
        arguments that rebuild it through :func:`raytuner.search.from_config`.

        None if it cannot describe itself: the default, so a searcher of your own is
        pickled instead; and so is a built-in one whose space holds hyperopt expressions,
        tuples or other objects JSON cannot carry. Built-in searchers implement
        :meth:`_config`.
        """
        args = self._config()
        if args is None or (self.space is not None and not describable(self.space)):
            return None
        space = None if self.space is None else space_to_json(self.space)
        return {"type": type(self).__name__, "space": space, **args}

    def _config(self) -> dict[str, Any] | None:
        """The constructor arguments but the space, as JSON-able data; None if unknown."""
        return None

    @classmethod
    def _from_config(cls, space: Mapping[str, Any] | None, args: dict[str, Any]) -> Searcher:
        """Build from :meth:`config`'s arguments; override to decode what JSON changed."""
        return cls(space, **args)  # type: ignore[call-arg]

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this search later; picklable."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state` returned."""


def check_version(owner: str, state: Any, version: int) -> None:
    """Refuse a ``state`` that :meth:`Searcher.state` of another version wrote."""
    found = state.get("version") if isinstance(state, Mapping) else None
    if found != version:
        msg = f"{owner}: cannot restore state version {found!r}; this version reads {version}."
        raise ConfigError(msg)


class TrialRecord:
    """What :func:`close_record` writes into a searcher's record of one trial (the
    record, a dataclass, declares these fields itself)."""

    end: str  # "pending" or a TrialEnd value
    value: Value | None
    resource: float | None
    max_resource: float

    @property
    def full_budget(self) -> bool:
        """Whether the trial ran its whole budget (see :func:`is_full_budget`)."""
        return is_full_budget(self.end, self.resource, self.max_resource)


def check_value(owner: str, trial_id: str, value: Any, k: int) -> tuple[float, ...]:
    """A value with k >= 2 objectives as a tuple of k floats; anything else is the
    controller's bug."""
    if not isinstance(value, (tuple, list)) or len(value) != k:
        msg = (f"{owner}: trial {trial_id!r} has the value {value!r}, but the experiment has {k} "
               "objectives: the controller must pass a tuple of that many floats.")
        raise ProtocolError(msg)
    return tuple(float(v) for v in value)


def check_saved_objectives(owner: str, saved: int, given: int) -> None:
    """Refuse a saved search of ``saved`` objectives in an experiment of ``given``."""
    if saved != given:
        msg = (
            f"{owner}: the saved state has {saved} objective(s), but the experiment has {given}. "
            "Resume with the metrics the experiment started with, or fork with "
            "warm_start=rt.load(path).observations()."
        )
        raise ConfigError(msg)


def not_set_up(owner: str) -> ProtocolError:
    """The error for :meth:`Searcher.suggest` before :meth:`Searcher.setup`."""
    return ProtocolError(f"{owner}.setup() must be called before suggest(); the Tuner does it.")


def already_suggested(owner: str, trial_id: str) -> ProtocolError:
    """The error for :meth:`Searcher.suggest` with an id it was given before."""
    return ProtocolError(f"{owner}: trial {trial_id!r} was already suggested; ids must be new.")


def ended_twice(owner: str, trial_id: str, *, suggested: bool) -> ProtocolError:
    """The error for :meth:`Searcher.on_trial_complete` on a trial that was never
    suggested, or that has already ended."""
    state = "has already ended" if suggested else "was never suggested"
    return ProtocolError(f"{owner}: trial {trial_id!r} {state}; each trial ends exactly once.")


def end_trial(owner: str, trial_id: str, record: TrialRecord | None, outcome: Outcome) -> None:
    """:meth:`Searcher.on_trial_complete` for a searcher that keeps a record per trial
    (``None`` if never suggested; ``end == "pending"`` while it runs): checks the contract,
    then :func:`close_record`."""
    if record is None or record.end != "pending":
        raise ended_twice(owner, trial_id, suggested=record is not None)
    close_record(record, outcome)


def close_record(record: TrialRecord, outcome: Outcome) -> None:
    """Write how a trial ended into a searcher's record of it (``end``, ``value``,
    ``resource``, ``max_resource``). A trial that ran its full budget without a finite
    value counts as FAILED (:attr:`Outcome.failed`)."""
    value = outcome.value
    record.end = TrialEnd.FAILED.value if outcome.failed else outcome.end.value
    if not is_finite(value):
        record.value = None
    else:
        record.value = tuple(map(float, value)) if isinstance(value, tuple) else float(value)  # type: ignore[arg-type]
    record.resource = None if outcome.resource is None else float(outcome.resource)
    record.max_resource = float(outcome.max_resource)
